#!/usr/bin/env python3
"""The physical reference for scripts/bench-serve.sh: an HTTP server that only appends
each POST body to a local file (flushed, not fsynced, as a page-cache write) and
answers {"err":0,"errdesc":"OK"}. Python's threading server: one process, one thread
per connection.

    bench_serve_receiver.py PORT FILE
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

LOCK = threading.Lock()
OUT = open(sys.argv[2], "ab")
REPLY = b'{"err":0,"errdesc":"OK"}'


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with LOCK:
            OUT.write(body + b"\n")
            OUT.flush()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
