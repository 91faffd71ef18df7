"""A real HTTP server for the tests, on loopback: Python's own http.server, answering
every POST with STATUS and writing what it received (path, headers, body) as one JSON
line to LOG. Prints `ready PORT` once it listens; stops when its stdin closes (the test
that started it ends).

usage: http_server.py LOG STATUS
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler(log_path, status):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length).decode("utf-8")
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(
                    json.dumps(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    + "\n"
                )
            answer = b"" if status < 300 else b"the test server is busy"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format, *args):
            pass

    return Handler


def main():
    log_path, status = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(log_path, status))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
