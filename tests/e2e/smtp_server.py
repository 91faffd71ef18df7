"""A real SMTP server for the tests, on loopback: aiosmtpd, storing what it accepts in
a maildir (`accept`), refusing every recipient by policy (`refuse`: 550 5.7.1), or
refusing only the recipients whose address contains "bounce" as unknown mailboxes
(`bounce`: 550 5.1.1) and storing the rest. With TLS, as a relay would be: `starttls`
insists on STARTTLS, then on a login (user `spark`, password `secret`); `tls` speaks TLS
from the start (smtps) and insists on the same login. Their certificate is for
127.0.0.1, signed by a CA made for the run (trustme), whose PEM file is written beside
the maildir.

It binds a free port itself (no other process can take the port between choosing and
listening) and prints `ready PORT [CA-FILE]` once it listens; stops when its stdin
closes (the test that started it ends).

usage: smtp_server.py MAILDIR accept|refuse|bounce|starttls|tls
"""

import os
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


class Refuse:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.7.1 the test server refuses everyone"


class Bounce(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "bounce" in address:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def login(server, session, envelope, mechanism, auth_data):
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"spark",
        b"secret",
    )
    return AuthResult(success=good)


class BoundController(Controller):
    """A controller on a socket bound before it starts."""

    def __init__(self, handler, **kwargs):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


def tls_context(maildir):
    """A server context for 127.0.0.1, and the file of the CA that signed it."""
    import trustme

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = os.path.join(os.path.dirname(os.path.abspath(maildir)), "smtp-ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    return context, ca_file


def main():
    maildir, mode = sys.argv[1], sys.argv[2]
    ca_file = None
    if mode in ("starttls", "tls"):
        context, ca_file = tls_context(maildir)
        secure = {"authenticator": login, "auth_required": True}
        if mode == "starttls":
            secure.update(tls_context=context, require_starttls=True)
        else:
            # aiosmtpd counts only STARTTLS as TLS for its rule that a login needs TLS;
            # this connection is TLS from its first byte.
            secure.update(ssl_context=context, auth_require_tls=False)
        controller = BoundController(Mailbox(maildir), **secure)
    else:
        handler = {"accept": Mailbox, "refuse": lambda _: Refuse(), "bounce": Bounce}[mode]
        controller = BoundController(handler(maildir))
    controller.start()
    print("ready", controller.port, *([ca_file] if ca_file else []), flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
