"""A stand-in for Twilio's Messages.json on loopback: answers every POST with 201 and a sid.

Usage: python bench/standin.py PORT   (prints "ready" when listening)
`GET /` answers the number of sends received; `GET /arrivals` when the first send to each
recipient (`To`) arrived (wall clock), for the webhook-to-reply latency (bench/latency.py).
"""

import itertools
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

counter = itertools.count(1)
run = secrets.token_hex(6)  # sids stay unique across runs against the same database
lock = threading.Lock()
received = {"posts": 0}
first_arrival: dict[str, float] = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle's algorithm the body would wait for
    # the client's delayed ACK of the headers (tens of ms per send, which the pipeline target
    # measured as ours).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0) or 0)
        arrived = time.time()
        recipient = parse_qs(self.rfile.read(length).decode()).get("To", [""])[0]
        with lock:
            received["posts"] += 1
            first_arrival.setdefault(recipient, arrived)
            sid = f"SM{run}{next(counter):020d}"
        body = json.dumps({"sid": sid, "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        with lock:
            body = json.dumps(first_arrival if self.path == "/arrivals" else received).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
