#!/usr/bin/env python3
"""The reference implementation (tej-protoc 0.2.4) on `tej bench`'s workloads.

    python_bench.py server --expect N      TPServer on 127.0.0.1:0; prints {"port": P},
                                           then, once N frames have arrived through its
                                           callbacks, {"end": time.monotonic()} and exits.
    python_bench.py client --port P --large BYTES
    python_bench.py client --port P --small COUNT --msg-size M
                                           builds the frames with BytesBuilder, prints
                                           {"start": time.monotonic()}, sends them with
                                           sendall (the reference's own send() may send
                                           only part of a large buffer), then waits.

CLOCK_MONOTONIC is system-wide on Linux, so end - start spans both processes.
"""
import argparse
import json
import os
import socket
import sys
import time

from tej_protoc import protocol
from tej_protoc.callbacks import ResponseCallback
from tej_protoc.logger import Log
from tej_protoc.server import TPServer


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(expect):
    Log.enabled = False
    state = {"frames": 0}

    class Counter(ResponseCallback):
        def received(self, files, message):
            state["frames"] += 1
            if state["frames"] == expect:
                emit({"end": time.monotonic()})
                os._exit(0)

    server = TPServer("127.0.0.1", 0, Counter)
    emit({"port": server.__server__.getsockname()[1]})
    server.listen()


def client(port, large, small, msg_size):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if large:
        frames = [protocol.BytesBuilder(0).add_file("large.bin", bytes(large)).bytes()]
    else:
        frame = protocol.BytesBuilder(0).set_message(b"Z" * msg_size).bytes()
        frames = [frame] * small
    emit({"start": time.monotonic()})
    for frame in frames:
        sock.sendall(frame)
    # Keep the connection open until the server has counted everything.
    sock.settimeout(600)
    try:
        sock.recv(1)
    except OSError:
        pass


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--expect", type=int, required=True)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--large", type=int, default=0)
    c.add_argument("--small", type=int, default=0)
    c.add_argument("--msg-size", type=int, default=64)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.expect)
    else:
        client(args.port, args.large, args.small, args.msg_size)


if __name__ == "__main__":
    main()
