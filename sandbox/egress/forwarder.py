"""In-sandbox forwarder: listens on 127.0.0.1:PORT and pipes each connection to a Unix socket.

Run by the sandbox's own python3 (3.11, standard library only, nothing from this package):

    python3 -I -S forwarder.py SOCKET_PATH PORT [READY_FILE]

PORT 0 picks a free port. Once listening it prints `READY <port>` on stdout (flushed) and, if
READY_FILE is given, creates that file holding the port (written aside, then renamed), so a
launcher starts the user's code only once the proxy is reachable. One thread, one selector: no
thread per connection counts against the sandbox's process limit. It exits when its parent
exits (the parent id is checked twice a second) or on SIGTERM.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time

__all__ = ["Pipe", "main", "serve"]

CHUNK = 256 * 1024
PARENT_CHECK_S = 0.5


class Pipe:
    """One client connection and its Unix-socket twin, each with a bounded outgoing buffer."""

    def __init__(self, sel: selectors.BaseSelector, client: socket.socket, uds: socket.socket):
        self.sel = sel
        self.ends = (client, uds)
        self.pending = [b"", b""]  # bytes waiting to be written to ends[0], ends[1]
        self.eof = [False, False]  # ends[i] has sent its end of stream
        self.shut = [False, False]  # ends[i] has been shut down for writing
        self.registered = [True, True]
        self.closed = False
        for i, end in enumerate(self.ends):
            end.setblocking(False)
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:  # larger buffers: fewer wake-ups per megabyte
                    end.setsockopt(socket.SOL_SOCKET, option, 1 << 20)
                except OSError:
                    pass
            sel.register(end, selectors.EVENT_READ, (self, i))

    def close(self) -> None:
        """Close both ends."""
        self.closed = True
        for i, end in enumerate(self.ends):
            if self.registered[i]:
                self.sel.unregister(end)
                self.registered[i] = False
            end.close()

    def on_event(self, i: int, mask: int) -> None:
        """Move bytes for end `i` that is readable and/or writable."""
        if self.closed:
            return
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(i)
            if mask & selectors.EVENT_READ:
                self._read(i)
        except OSError:
            self.close()
            return
        if all(self.eof) and not any(self.pending):
            self.close()
        else:
            self._update()

    def _read(self, i: int) -> None:
        other = 1 - i
        try:
            data = self.ends[i].recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # a reset reads as an end of stream: what is buffered still goes out
            data = b""
        if not data:
            self.eof[i] = True
        else:
            self.pending[other] += data
        self._flush(other)

    def _flush(self, i: int) -> None:
        if self.pending[i]:
            try:
                sent = self.ends[i].send(self.pending[i])
            except (BlockingIOError, InterruptedError):
                sent = 0
            self.pending[i] = self.pending[i][sent:]
        if not self.pending[i] and self.eof[1 - i] and not self.shut[i]:
            self.shut[i] = True
            self.ends[i].shutdown(socket.SHUT_WR)

    def _update(self) -> None:
        for i, end in enumerate(self.ends):
            mask = 0
            # Read only while the other side's buffer has room: backpressure, bounded memory.
            if not self.eof[i] and len(self.pending[1 - i]) < CHUNK:
                mask |= selectors.EVENT_READ
            if self.pending[i]:
                mask |= selectors.EVENT_WRITE
            if mask and self.registered[i]:
                self.sel.modify(end, mask, (self, i))
            elif mask:
                self.sel.register(end, mask, (self, i))
            elif self.registered[i]:
                self.sel.unregister(end)
            self.registered[i] = bool(mask)


def serve(socket_path: str, port: int, ready_file: str | None = None) -> None:
    """Listen, announce readiness, and pipe connections until the parent process is gone."""
    parent = os.getppid()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    if ready_file:
        with open(ready_file + ".tmp", "w") as handle:
            handle.write(f"{port}\n")
        os.rename(ready_file + ".tmp", ready_file)
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    while os.getppid() == parent:
        for key, mask in sel.select(PARENT_CHECK_S):
            if key.data is None:
                _accept(sel, listener, socket_path)
            else:
                pipe, i = key.data
                pipe.on_event(i, mask)


def _accept(sel: selectors.BaseSelector, listener: socket.socket, socket_path: str) -> None:
    try:
        client, _ = listener.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return
    uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    uds.setblocking(False)
    # A Unix connect completes at once, or fails with EAGAIN while the proxy's backlog is full
    # (it never reports "in progress"): retry briefly, then give up on this client.
    for _ in range(100):
        try:
            uds.connect(socket_path)
            break
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    else:
        uds.close()
        client.close()
        return
    try:
        uds.getpeername()
    except OSError:  # the connect failed (no proxy listening)
        uds.close()
        client.close()
        return
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Pipe(sel, client, uds)


def main(argv: list[str]) -> int:
    """Parse `SOCKET_PATH PORT [READY_FILE]` and serve."""
    if len(argv) not in (3, 4) or not argv[2].isdigit() or int(argv[2]) > 65535:
        sys.stderr.write("usage: forwarder.py SOCKET_PATH PORT [READY_FILE]\n")
        return 2
    serve(argv[1], int(argv[2]), argv[3] if len(argv) == 4 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
