"""A real SMTP server for Guildhall's tests, on aiosmtpd.

Usage: python3 smtp_sink.py OUT_DIR PORT [USER PASSWORD]

Listens on 127.0.0.1:PORT, prints READY once it accepts connections, and writes every
message it accepts to OUT_DIR as NNNNNN.eml (the bytes received) beside NNNNNN.rcpt (the
envelope recipients, one per line); the .rcpt file is renamed into place first, then the
.eml, so a reader that sees the .eml sees both whole. Stops when its standard input
closes (the test process ended or dropped it). With USER and PASSWORD it requires
authentication (PLAIN or LOGIN, allowed without TLS on loopback) and answers 535 to any
other credentials.

Recipients choose the server's answer by their local part:
  reject...    550 5.1.1 (permanent)
  tempfail...  451 4.3.0 every time (transient)
  greylist...  451 4.7.1 the first time that address is seen, accepted afterwards
  anything     accepted
"""

import os
import sys

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:
    print("MISSING aiosmtpd", flush=True)
    sys.exit(3)


class Sink:
    def __init__(self, out):
        self.out = out
        self.count = 0
        self.seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        if local.startswith("tempfail"):
            return "451 4.3.0 Mailbox temporarily unavailable"
        if local.startswith("greylist") and address not in self.seen:
            self.seen.add(address)
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out, "%06d" % self.count)
        content = getattr(envelope, "original_content", None) or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        for ext, data in ((".rcpt", "\n".join(envelope.rcpt_tos).encode()), (".eml", content)):
            temporary = base + ext + ".tmp"
            with open(temporary, "wb") as file:
                file.write(data)
            os.rename(temporary, base + ext)
        return "250 2.0.0 Message accepted"


def main():
    out, port = sys.argv[1], int(sys.argv[2])
    options = {}
    if len(sys.argv) > 4:
        user, password = sys.argv[3].encode(), sys.argv[4].encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (user, password)
            return AuthResult(success=ok, handled=False)

        options = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
