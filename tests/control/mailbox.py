"""Helpers of the account-security tests: a real SMTP server (aiosmtpd) that keeps what it receives, and
a platform whose passwords hash cheaply and whose audit events stay in memory."""

from __future__ import annotations

import email
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from dockyard._util.clock import FakeClock
from dockyard.audit.client import FakeAuditTrail
from dockyard.control import mail
from dockyard.control.context import Platform
from tests.conftest import make_settings

CHEAP_HASHING = {
    "DOCKYARD_AUTH_PASSWORD_MEMORY_KIB": "1024",
    "DOCKYARD_AUTH_PASSWORD_TIME_COST": "1",
    "DOCKYARD_AUTH_PASSWORD_PARALLELISM": "1",
    "DOCKYARD_AUTH_UNIFORM_ANSWER_SECONDS": "0",
}


@dataclass
class Mailbox:
    """What the SMTP server received, and the platform that sends to it."""

    controller: Controller
    url: str
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    text: str = part.get_content()
    return text.replace("\r\n", "\n")


def secret_in(message: EmailMessage, prefix: str) -> str:
    found = re.search(rf"\b({prefix}_[A-Za-z0-9_-]+)", body(message))
    assert found, body(message)
    return found.group(1)


def free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd cannot start on port 0
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def start_mailbox(port: int | None = None) -> Mailbox:
    box = Mailbox(controller=None, url="")  # type: ignore[arg-type]
    port = port or free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.controller = controller
    box.url = f"smtp://127.0.0.1:{port}"
    return box


def delivered(platform: Platform, box: Mailbox) -> Mailbox:
    """Deliver the outbox now (the background delivery may have done it already) and return ``box``."""
    mail.deliver_pending(platform.settings)
    return box


def open_platform(data_dir: Path, clock: FakeClock, smtp_url: str = "", **env: str) -> Platform:
    settings = make_settings(data_dir, **{"DOCKYARD_SMTP_URL": smtp_url, **CHEAP_HASHING, **env})
    return Platform.open(settings, clock=clock, audit=FakeAuditTrail())


def mailbox_fixture() -> Iterator[Mailbox]:
    box = start_mailbox()
    try:
        yield box
    finally:
        box.controller.stop()


def api_client(platform: Platform, address: str = "127.0.0.2") -> Any:
    """A TestClient on https (the session cookie is ``Secure``) whose requests come from ``address``."""
    from fastapi.testclient import TestClient

    from dockyard.api.app import create_app

    return TestClient(
        create_app(platform, internal_token="internal-test-token"),
        base_url="https://testserver",
        client=(address, 50000),
    )


def make_account(platform: Platform, email: str, password: str, name: str = "") -> Any:
    """An account with a verified address and a password, as a finished sign-up leaves it."""
    from dockyard.control import passwords

    with platform.store.transaction() as tx:
        account = tx.create_account(email, name)
        tx.add_account_email(account.id, email, verified=True)
    passwords.set_password(platform, account, password)
    return account
