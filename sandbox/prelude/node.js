// Loaded before the code (`node --require`): stdout and stderr write synchronously and whole,
// as python's do. Node's own pipe streams queue what a write does not take at once, and a
// write to a pipe under gVisor takes at most 64 KiB (Linux would block for the rest): so
// `process.exit()` dropped queued output, and a tight write loop piled it up in memory (a flood
// ended as `memory_limit` instead of `output_limit`). The pipes stay blocking: these streams
// replace Node's before it makes them, and a refused write (EAGAIN) is retried.
'use strict';
const fs = require('fs');
const { Writable } = require('stream');

const pause = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, buffer) {
  let done = 0;
  while (done < buffer.length) {
    try {
      done += fs.writeSync(fd, buffer, done);
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

for (const [name, fd] of [['stdout', 1], ['stderr', 2]]) {
  const stream = new Writable({
    decodeStrings: false,
    write(chunk, encoding, callback) {
      try {
        writeAll(fd, typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
        callback();
      } catch (error) {
        callback(error);
      }
    },
  });
  stream.fd = fd;
  stream.isTTY = false;
  Object.defineProperty(process, name, { configurable: true, enumerable: true, value: stream });
}
