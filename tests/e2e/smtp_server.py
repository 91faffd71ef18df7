"""A real SMTP server for the tests, on loopback: aiosmtpd, storing what it accepts in
a maildir, or refusing every recipient. Prints `ready` once it listens; stops when its
stdin closes (the test that started it ends).

usage: smtp_server.py PORT MAILDIR accept|refuse
"""

import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class Refuse:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.7.1 the test server refuses everyone"


def main():
    port, maildir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    handler = Mailbox(maildir) if mode == "accept" else Refuse()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
