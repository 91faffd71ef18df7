"""A real SMTP server for the tests, on loopback: aiosmtpd, storing what it accepts in
a maildir (`accept`), refusing every recipient by policy (`refuse`: 550 5.7.1), or
refusing only the recipients whose address contains "bounce" as unknown mailboxes
(`bounce`: 550 5.1.1) and storing the rest. It binds a free port itself (no other
process can take the port between choosing and listening) and prints `ready PORT` once
it listens; stops when its stdin closes (the test that started it ends).

usage: smtp_server.py MAILDIR accept|refuse|bounce
"""

import socket
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class Refuse:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.7.1 the test server refuses everyone"


class Bounce(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "bounce" in address:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class BoundController(Controller):
    """A controller on a socket bound before it starts."""

    def __init__(self, handler):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self.sock.getsockname()[1])

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock)


def main():
    maildir, mode = sys.argv[1], sys.argv[2]
    handler = {"accept": Mailbox, "refuse": lambda _: Refuse(), "bounce": Bounce}[mode](maildir)
    controller = BoundController(handler)
    controller.start()
    print("ready", controller.port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
