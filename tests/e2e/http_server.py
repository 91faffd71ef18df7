"""A real HTTP server for the tests, on loopback: Python's own http.server, answering
every POST with STATUS and writing what it received (path, headers, body) as one JSON
line to LOG. With SECRET, it also checks each request's Spark-Signature as a receiver
would (README.md, "Sending the outbox") and records whether it held. Prints
`ready PORT` once it listens; stops when its stdin closes (the test that started it
ends).

STATUS may be FAIL:N instead: the first N POSTs are answered FAIL, the rest 200 (a
receiver that recovers).

usage: http_server.py LOG STATUS [SECRET]
"""

import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def signature_holds(secret, headers, body):
    """Spark-Signature: t=TIMESTAMP,v1=HEX, HEX the HMAC-SHA256 of
    TIMESTAMP.IDEMPOTENCY-KEY.BODY; refused when more than 5 minutes old."""
    fields = dict(
        part.split("=", 1) for part in headers.get("Spark-Signature", "").split(",") if "=" in part
    )
    if "t" not in fields or "v1" not in fields:
        return False
    message = f"{fields['t']}.{headers.get('Idempotency-Key', '')}.".encode() + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(fields["t"])) < 300
    return fresh and hmac.compare_digest(expected, fields["v1"])


def handler(log_path, status_of, secret):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            status = status_of()
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            request = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": raw.decode("utf-8"),
            }
            if secret is not None:
                request["signature_holds"] = signature_holds(secret, self.headers, raw)
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(request) + "\n")
            answer = b"" if status < 300 else b"the test server is busy"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format, *args):
            pass

    return Handler


def statuses(spec):
    """A function giving the status of each POST in turn, by STATUS or FAIL:N."""
    fail, _, count = spec.partition(":")
    failures = {"left": int(count) if count else None}
    lock = threading.Lock()

    def status_of():
        if failures["left"] is None:
            return int(fail)
        with lock:
            if failures["left"] > 0:
                failures["left"] -= 1
                return int(fail)
        return 200

    return status_of


def main():
    log_path, status_of = sys.argv[1], statuses(sys.argv[2])
    secret = sys.argv[3] if len(sys.argv) > 3 else None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(log_path, status_of, secret))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
