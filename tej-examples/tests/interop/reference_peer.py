#!/usr/bin/env python3
"""Drive the REAL TEJ reference implementation (`tej-protoc==0.2.4`) for interop tests.

Usage
-----
    reference_peer.py server [--host 127.0.0.1] [--timeout S] [ACTIONS...]
    reference_peer.py client  --port P [--host 127.0.0.1] [--timeout S] [ACTIONS...]

`server` starts a `tej_protoc.server.TPServer` on an OS-chosen port (port 0);
`client` connects a `tej_protoc.client.TPClient` to HOST:PORT. Frames are read by
the reference's own reader and reported through its own callbacks. `--timeout`
is the reference's idle timeout (seconds, passed to TPServer/TPClient).

Output: one JSON object per line on stdout, flushed after every line
-----------------------------------------------------------------------
    {"event":"listening","port":N}                server mode only, always the first line
    {"event":"connected","conn":C}
    {"event":"received","conn":C,"status":S,"version":V,
     "files":[{"name":NAME,"size":N,"sha256":HEX}, ...],
     "message_len":N,"message_hex":HEX|null,"message_sha256":HEX|null}
    {"event":"ping", ...same fields as "received"...}  frames with custom status 2
    {"event":"disconnected","conn":C}
    {"event":"send_error","conn":C,"error":TEXT}   a send of ours failed (peer gone)
    {"event":"error","type":NAME,"error":TEXT}     an exception escaped a reference thread
    {"event":"done"}                               normal end, exit code 0
    {"event":"deadline"}                           --deadline expired, exit code 3

C is the 1-based number of the connection in this process (always 1 for a client).
"status" is callback.custom_status and "version" callback.protocol_version, as the
reference set them for that frame. The reference reports a message of length 0 as
None: then message_len is 0 and message_hex/message_sha256 are null. message_hex
is given only when the message is at most 4096 bytes (else null), message_len and
message_sha256 always. Nothing but these JSON lines is written to stdout: the
reference's own print() calls and logging go to stderr.

Exit codes: 0 after "done", 3 after "deadline", 2 for bad arguments or a failed
connect (after an "error" line), 4 if stdout is gone.

Actions (what to SEND)
----------------------
    --send-on-connect SPEC   (repeatable) send SPEC once the connection is up
    --reply-to-each SPEC     (repeatable) send SPEC after each received non-ping frame
    --stream N               right after connect, a separate thread sends N frames with
                             status 0 and messages "msg-0" .. "msg-<N-1>", concurrently
                             with reading and with the other sends (full duplex)
    --exit-after-frames N    after N received non-ping frames (counted over all
                             connections): finish sending everything queued (and the
                             stream), half-close (shutdown SHUT_WR, so the peer reads
                             every frame then EOF), wait up to --close-grace seconds for
                             the peer to close, then shut down reading; once every
                             connection reported "disconnected", print "done" and exit 0.
                             Replies are not sent for frames arriving after the Nth.
    --exit-on-disconnect     print "done" and exit 0 once a disconnect leaves no open
                             connection. Always on in client mode (a TPClient has
                             exactly one connection).
    --deadline SECONDS       (default 60) hard stop: print "deadline" and exit 3.

Every send of a connection goes through that connection's lock and `sock.sendall`
(in chunks of 256 KiB, so a reference idle timeout, which Python applies to the
total duration of one sendall, bounds each chunk and not a whole large frame),
so two frames never interleave. Queued sends (--send-on-connect, --reply-to-each)
run on a per-connection writer thread, so the reference keeps reading while we send.
The reference's own `protocol.send()` is NOT used: without a timeout it does a
single `socket.send`, which may send only part of a large frame.

SPEC: a JSON object
-------------------
    {"status":0, "version":1, "message":"Hello", "message_hex":"00ff",
     "files":[{"name":"a.bin","size":1048576,"seed":7},
              {"name":"b.txt","text":"hi"}, {"name":"c.bin","data_hex":"0001"}],
     "ping":true, "repeat":1, "raw_hex":"8001..."}
All keys are optional. The frame is built with the reference's `BytesBuilder`:
"status" is the custom status (default 0), "ping":true means status 2, "version"
calls set_protocol_version, "message" is UTF-8 text, "message_hex" binary
(wins over "message"); an empty message is sent as length 0 by the reference.
File data is "data_hex", else "text" (UTF-8), else generated from size and seed.
"repeat" sends the same frame that many times. "raw_hex" sends those bytes
as-is instead of building a frame (for malformed input). `{"ping":true}` is the
reference's empty ping frame `82 01` + 16 zero bytes.

Generated file contents (the Rust side regenerates these to compare hashes)
-------------------------------------------------------------------------
    byte i of a file of (size, seed) is  (i * 31 + seed) & 0xFF   for 0 <= i < size
seed is 0..=255. E.g. size 4, seed 7 gives 07 26 45 64.
"""

import argparse
import hashlib
import json
import os
import queue
import socket
import sys
import threading
import time
import traceback

# Keep the real stdout for our JSON lines; anything the library print()s
# (e.g. "Invalid starting bit") goes to stderr instead of corrupting them.
_REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr

from tej_protoc.callbacks import ResponseCallback  # noqa: E402
from tej_protoc.client import TPClient  # noqa: E402
from tej_protoc.protocol import BytesBuilder  # noqa: E402
from tej_protoc.server import TPServer  # noqa: E402

MESSAGE_HEX_LIMIT = 4096
SEND_CHUNK = 256 * 1024

# --------------------------------------------------------------------------- output

_out_lock = threading.Lock()
_finished = False


def _write_line(obj):
    line = json.dumps(obj, separators=(",", ":"))
    try:
        _REAL_STDOUT.write(line + "\n")
        _REAL_STDOUT.flush()
    except (OSError, ValueError):
        os._exit(4)


def emit(obj):
    """Print one JSON event line (nothing after the final done/deadline line)."""
    with _out_lock:
        if not _finished:
            _write_line(obj)


def finish(event, code):
    """Print the final event line and exit the whole process at once."""
    global _finished
    with _out_lock:
        if not _finished:
            _finished = True
            _write_line({"event": event})
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)


def _thread_excepthook(args):
    if args.exc_type is SystemExit:
        return
    emit({"event": "error", "type": args.exc_type.__name__, "error": str(args.exc_value)})
    traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback, file=sys.stderr)


threading.excepthook = _thread_excepthook

# --------------------------------------------------------------------------- frames


def generated_file(size, seed):
    """Byte i is (i * 31 + seed) & 0xFF. The pattern repeats every 256 bytes."""
    block = bytes(((i * 31 + seed) & 0xFF) for i in range(256))
    reps, rest = divmod(size, 256)
    return block * reps + block[:rest]


def build_frame(spec):
    """Build the wire bytes for one SPEC (see the module doc)."""
    if "raw_hex" in spec:
        return bytes.fromhex(spec["raw_hex"])
    status = 2 if spec.get("ping") else int(spec.get("status", 0))
    builder = BytesBuilder(status)
    if "version" in spec:
        builder.set_protocol_version(int(spec["version"]))
    for f in spec.get("files", []):
        if "data_hex" in f:
            data = bytes.fromhex(f["data_hex"])
        elif "text" in f:
            data = f["text"].encode("utf-8")
        else:
            data = generated_file(int(f.get("size", 0)), int(f.get("seed", 0)) & 0xFF)
        builder.add_file(f["name"], data)
    if spec.get("message_hex") is not None:
        builder.set_message(bytes.fromhex(spec["message_hex"]))
    elif spec.get("message") is not None:
        builder.set_message(spec["message"].encode("utf-8"))
    return builder.bytes()


def parse_spec(text):
    try:
        spec = json.loads(text)
        if not isinstance(spec, dict):
            raise ValueError("SPEC must be a JSON object")
        frame = build_frame(spec)
    except Exception as error:  # argparse turns this into a usage error, exit 2
        raise argparse.ArgumentTypeError(f"bad SPEC {text!r}: {error}")
    return frame, max(0, int(spec.get("repeat", 1)))


def frame_event(kind, conn, callback, files, message):
    event = {
        "event": kind,
        "conn": conn,
        "status": callback.custom_status,
        "version": callback.protocol_version,
        "files": [
            {"name": f.name, "size": len(f.data), "sha256": hashlib.sha256(f.data).hexdigest()}
            for f in files
        ],
    }
    if message is None:
        event.update(message_len=0, message_hex=None, message_sha256=None)
    else:
        event.update(
            message_len=len(message),
            message_hex=message.hex() if len(message) <= MESSAGE_HEX_LIMIT else None,
            message_sha256=hashlib.sha256(message).hexdigest(),
        )
    return event


# --------------------------------------------------------------------------- connections

_CLOSE = object()


class Conn:
    """Our side of one connection: a send lock, a writer queue, a close sequence."""

    def __init__(self, sock, index, opts):
        self.sock = sock
        self.index = index
        self.opts = opts
        self.send_lock = threading.Lock()
        self.queue = queue.Queue()
        self.disconnected = threading.Event()
        self.send_failed = False
        self.stream_thread = None
        self.reader_thread = threading.current_thread()
        threading.Thread(target=self._writer, daemon=True).start()

    def send_bytes(self, data):
        if self.send_failed:
            return False
        try:
            with self.send_lock:
                view = memoryview(data)
                for offset in range(0, len(view), SEND_CHUNK):
                    self.sock.sendall(view[offset:offset + SEND_CHUNK])
            return True
        except OSError as error:
            self.send_failed = True
            emit({"event": "send_error", "conn": self.index, "error": str(error)})
            return False

    def enqueue(self, frame, repeat):
        for _ in range(repeat):
            self.queue.put(frame)

    def start_stream(self, count):
        def run():
            for i in range(count):
                frame = BytesBuilder(0).set_message(f"msg-{i}".encode()).bytes()
                if not self.send_bytes(frame):
                    break

        self.stream_thread = threading.Thread(target=run, daemon=True)
        self.stream_thread.start()

    def close(self):
        self.queue.put(_CLOSE)

    def _writer(self):
        while True:
            item = self.queue.get()
            if item is _CLOSE:
                self._close_sequence()
                return
            self.send_bytes(item)

    def _close_sequence(self):
        if self.stream_thread is not None:
            self.stream_thread.join()
        try:
            self.sock.shutdown(socket.SHUT_WR)  # FIN after all our frames
        except OSError:
            pass
        if not self.disconnected.wait(self.opts.close_grace):
            try:
                self.sock.shutdown(socket.SHUT_RD)  # wakes the reference's blocked recv
            except OSError:
                pass


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.conns = []
        self.frames = 0
        self.exiting = False

    def register(self, sock):
        with self.lock:
            conn = Conn(sock, len(self.conns) + 1, self.opts)
            self.conns.append(conn)
            return conn

    def count_frame(self):
        """Count one non-ping frame; True when replies should still be sent."""
        with self.lock:
            if self.exiting:
                return False
            self.frames += 1
            limit = self.opts.exit_after_frames
            if limit and self.frames >= limit:
                self.exiting = True
                return "last"
            return True

    def begin_exit(self):
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            conn.close()

        def finisher():
            for conn in conns:
                conn.disconnected.wait()
            for conn in conns:
                conn.reader_thread.join(2.0)  # let an escaping exception be reported
            finish("done", 0)

        threading.Thread(target=finisher, daemon=True).start()

    def on_disconnect(self):
        if not self.opts.exit_on_disconnect:
            return
        with self.lock:
            conns = list(self.conns)
            if self.exiting or not all(c.disconnected.is_set() for c in conns):
                return
            self.exiting = True

        def finisher():
            for conn in conns:
                conn.reader_thread.join(2.0)
            finish("done", 0)

        threading.Thread(target=finisher, daemon=True).start()


STATE = None
OPTS = None


class PeerCallback(ResponseCallback):
    """One object per connection, made by the reference's TPServer/TPClient."""

    conn = None

    def connected(self, client):
        self.conn = STATE.register(client)
        emit({"event": "connected", "conn": self.conn.index})
        for frame, repeat in OPTS.send_on_connect:
            self.conn.enqueue(frame, repeat)
        if OPTS.stream:
            self.conn.start_stream(OPTS.stream)

    def received(self, files, message_data):
        emit(frame_event("received", self.conn.index, self, files, message_data))
        state = STATE.count_frame()
        if state:
            for frame, repeat in OPTS.reply_to_each:
                self.conn.enqueue(frame, repeat)
        if state == "last":
            STATE.begin_exit()

    def ping_received(self, files, message_data):
        emit(frame_event("ping", self.conn.index, self, files, message_data))

    def disconnected(self):
        if self.conn is None:  # connected() never ran
            return
        emit({"event": "disconnected", "conn": self.conn.index})
        self.conn.disconnected.set()
        STATE.on_disconnect()


# --------------------------------------------------------------------------- main


def main():
    global STATE, OPTS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1")
    common.add_argument("--timeout", type=float, default=None,
                        help="reference idle timeout in seconds (default: none)")
    common.add_argument("--send-on-connect", action="append", type=parse_spec, default=[],
                        metavar="SPEC")
    common.add_argument("--reply-to-each", action="append", type=parse_spec, default=[],
                        metavar="SPEC")
    common.add_argument("--stream", type=int, default=0, metavar="N")
    common.add_argument("--exit-after-frames", type=int, default=0, metavar="N")
    common.add_argument("--exit-on-disconnect", action="store_true")
    common.add_argument("--close-grace", type=float, default=5.0, metavar="SECONDS")
    common.add_argument("--deadline", type=float, default=60.0, metavar="SECONDS")

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    modes.add_parser("server", parents=[common])
    client_parser = modes.add_parser("client", parents=[common])
    client_parser.add_argument("--port", type=int, required=True)
    OPTS = parser.parse_args()
    if OPTS.mode == "client":
        OPTS.exit_on_disconnect = True
    STATE = State(OPTS)

    started = time.monotonic()
    if OPTS.mode == "server":
        server = TPServer(OPTS.host, 0, PeerCallback, timeout=OPTS.timeout)
        port = server.__server__.getsockname()[1]
        emit({"event": "listening", "port": port})
        server.listen(run_background=True, is_daemon=True)
    else:
        try:
            client = TPClient(OPTS.host, OPTS.port, PeerCallback, timeout=OPTS.timeout)
        except OSError as error:
            emit({"event": "error", "type": type(error).__name__,
                  "error": f"connect to {OPTS.host}:{OPTS.port} failed: {error}"})
            sys.stderr.flush()
            os._exit(2)
        client.listen(run_background=True, is_daemon=True)

    while True:
        remaining = OPTS.deadline - (time.monotonic() - started)
        if remaining <= 0:
            finish("deadline", 3)
        time.sleep(min(remaining, 1.0))


if __name__ == "__main__":
    main()
