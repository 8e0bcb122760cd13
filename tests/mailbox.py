"""A real SMTP server on loopback (aiosmtpd) that keeps every message it is handed, for the
tests of mail the platform sends: invitations and sign-in links."""

import email
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://\S+#[A-Za-z0-9_.-]+")


@dataclass
class Mailbox:
    port: int = 0
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler hook
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def wait_for(self, to: str, timeout_s: float = 20) -> Message:
        """The newest message to `to`, once it has arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [m for m in self.messages if m["To"] == to]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} after {timeout_s}s; got {[m['To'] for m in self.messages]}")

    def link_to(self, to: str, timeout_s: float = 20) -> str:
        """The link in the newest message to `to`."""
        body = self.wait_for(to, timeout_s).get_payload(decode=True).decode()
        found = LINK.search(body)
        assert found, body
        return found.group(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
