// Sandgate's in-sandbox runner for Node.js: protocol `sandgate-runner/1` (see PROTOCOL.md).
//
// Runs as the sandbox's first process, on the image's own node, after the prelude:
//
//     node --max-old-space-size=MB --require /sandgate/prelude /sandgate/runner.js
//
// It writes a `ready` record on stdout and waits for one frame on stdin; the frame's code then
// runs as the CommonJS main module /sandgate/main.js in /work, as `node /sandgate/main.js` would
// run it: `process.exit(n)`, exit 1 with the stack on stderr for an uncaught exception or
// rejection, `require` by NODE_PATH and relative to /sandgate. Whatever follows the frame on
// stdin is the code's stdin. A process refused for the process limit (EAGAIN) is reported once
// in a `limit` record.
'use strict';
const fs = require('fs');
const Module = require('module');
const childProcess = require('child_process');
const { constants } = require('os');

const PROTOCOL = 1;
const MAGIC = 'SGR/1';
const FEATURES = ['once', 'limit-report', 'binary-files'];
const MAX_FRAME = 256 << 20;
const MAIN_FILE = '/sandgate/main.js';
const WORK_DIR = '/work';
const BAD_FRAME = 125; // the runner, not the code, failed: the host reports a sandbox error
const pause = new Int32Array(new SharedArrayBuffer(4));

// Records go to the host on a descriptor of our own: the code closing fd 1 does not stop them.
function recordFd() {
  try {
    return fs.openSync('/proc/self/fd/1', 'w');
  } catch (error) {
    return 1; // a socket cannot be reopened (ENXIO): the records share the code's fd 1
  }
}
const channel = { fd: recordFd(), token: '-' };

function send(type, fields) {
  const line = `\x1e${MAGIC} ${channel.token} ${JSON.stringify({ type, ...fields })}\n`;
  try {
    fs.writeSync(channel.fd, line); // one write: a pipe keeps up to 4096 bytes whole
  } catch (error) {
    // the host is gone; nothing left to tell
  }
}

function readSome(buffer, offset, length) {
  for (;;) {
    try {
      return fs.readSync(0, buffer, offset, length, null);
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

// One frame from stdin, not a byte more: `SGR/1 <length>\n`, then that many bytes of JSON.
function readFrame() {
  const byte = Buffer.alloc(1);
  let header = '';
  while (!header.endsWith('\n')) {
    if (readSome(byte, 0, 1) === 0 || header.length > 32) throw new Error('no frame header on stdin');
    header += byte.toString('latin1');
  }
  const [magic, size] = header.trim().split(' ');
  if (magic !== MAGIC || !/^\d+$/.test(size || '') || Number(size) > MAX_FRAME) {
    throw new Error(`not a ${MAGIC} frame header: ${JSON.stringify(header.slice(0, 32))}`);
  }
  const body = Buffer.alloc(Number(size));
  for (let done = 0; done < body.length; ) {
    const got = readSome(body, done, body.length - done);
    if (got === 0) throw new Error('stdin ended inside the frame');
    done += got;
  }
  const frame = JSON.parse(body.toString('utf8'));
  if (frame === null || typeof frame !== 'object' || frame.type !== 'execute') {
    throw new Error('the frame is not an `execute` frame');
  }
  return frame;
}

// Write the frame's files under /work (text as UTF-8, or base64 bytes).
function writeFiles(files) {
  for (const [name, content] of Object.entries(files)) {
    const parts = name.split('/');
    if (name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
      throw new Error(`file path ${JSON.stringify(name)} is not relative to /work`);
    }
    if (parts.length > 1) fs.mkdirSync(`${WORK_DIR}/${parts.slice(0, -1).join('/')}`, { recursive: true });
    let data;
    if ('base64' in content) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content.base64) || content.base64.length % 4) {
        throw new Error(`file ${JSON.stringify(name)} is not valid base64`);
      }
      data = Buffer.from(content.base64, 'base64');
    } else {
      data = Buffer.from(String(content.text), 'utf8');
    }
    fs.writeFileSync(`${WORK_DIR}/${name}`, data);
  }
}

// Report the first process refused for the process limit; the error then goes to the code.
function reportRefusedForks() {
  let reported = false;
  const refused = (call) => {
    if (!reported) {
      reported = true;
      send('limit', { limit: 'processes', call });
    }
  };
  const isRefusal = (error) => error != null && (error.code === 'EAGAIN' || error.errno === -constants.errno.EAGAIN);
  const proto = childProcess.ChildProcess.prototype;
  const spawn = proto.spawn; // what spawn, exec, execFile and fork go through
  proto.spawn = function (...args) {
    const error = spawn.apply(this, args);
    if (error === -constants.errno.EAGAIN) refused('spawn');
    return error;
  };
  for (const name of ['spawnSync', 'execSync', 'execFileSync']) {
    const real = childProcess[name];
    childProcess[name] = {
      [name](...args) {
        let result;
        try {
          result = real.apply(this, args);
        } catch (error) {
          if (isRefusal(error) || isRefusal(error.error)) refused(name);
          throw error;
        }
        if (result != null && isRefusal(result.error)) refused(name);
        return result;
      },
    }[name];
  }
}

// Run `source` as the main module, as `node /sandgate/main.js` would.
function run(source) {
  const main = new Module('.', null);
  main.filename = MAIN_FILE;
  main.paths = Module._nodeModulePaths('/sandgate');
  Module._cache[MAIN_FILE] = main;
  process.mainModule = main;
  process.argv[1] = MAIN_FILE;
  // Started from the event loop, through a bound function: no frame of this file in the stack.
  setImmediate(Module.prototype._compile.bind(main, source, MAIN_FILE));
  setImmediate(() => {
    main.loaded = true;
  });
}

function boot() {
  send('ready', { protocol: PROTOCOL, runner: 'node', features: FEATURES });
  let frame;
  try {
    frame = readFrame();
    channel.token = String(frame.token);
    process.chdir(WORK_DIR);
    writeFiles(frame.files || {});
  } catch (error) {
    send('error', { detail: `${error.name}: ${error.message}`.slice(0, 1000) });
    process.reallyExit(BAD_FRAME);
  }
  reportRefusedForks();
  process.on('exit', (code) => send('end', { exit_code: process.exitCode ?? code }));
  run(String(frame.code ?? ''));
}

boot();
