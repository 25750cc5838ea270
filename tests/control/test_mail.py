"""Mail goes to the outbox first: delivered over SMTP when a server is set, kept otherwise."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
from dockyard.control import mail
from dockyard.errors import UnavailableError
from tests.control.mailbox import (
    Mailbox,
    body,
    free_port,
    mailbox_fixture,
    open_platform,
    start_mailbox,
)


@pytest.fixture
def box() -> Iterator[Mailbox]:
    yield from mailbox_fixture()


def test_without_smtp_mail_stays_in_the_outbox(tmp_path: Path, clock: FakeClock) -> None:
    plat = open_platform(tmp_path / "data", clock)
    path = mail.send(plat, mail.Mail("a@example.com", "Hello", "Line one\n"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(plat.settings.outbox_dir.stat().st_mode) == 0o700
    [kept] = mail.read_outbox(plat.settings)
    assert (kept.to, kept.subject, kept.body) == ("a@example.com", "Hello", "Line one\n")
    assert mail.deliver_pending(plat.settings) == 0
    assert mail.pending(plat.settings) == [path]


def test_with_smtp_mail_is_delivered_and_leaves_the_outbox(
    tmp_path: Path, clock: FakeClock, box: Mailbox
) -> None:
    plat = open_platform(tmp_path / "data", clock, box.url)
    mail.send(plat, mail.Mail("a@example.com", "Hello", "Line one\n"))
    mail.deliver_pending(plat.settings)
    [message] = box.to("a@example.com")
    assert message["Subject"] == "Hello"
    assert message["From"] == "Dockyard <dockyard@dockyard.localhost>"
    assert body(message) == "Line one\n"
    assert mail.pending(plat.settings) == []


def test_an_unreachable_server_keeps_the_mail_for_later(tmp_path: Path, clock: FakeClock) -> None:
    port = free_port()
    plat = open_platform(tmp_path / "data", clock, f"smtp://127.0.0.1:{port}")
    mail.send(plat, mail.Mail("a@example.com", "Hello", "x\n"))
    with pytest.raises(UnavailableError, match="cannot reach the mail server"):
        mail.deliver_pending(plat.settings)
    assert len(mail.pending(plat.settings)) == 1
    box = start_mailbox(port)
    try:
        assert mail.deliver_pending(plat.settings) in (0, 1)  # the background delivery may win
        assert mail.pending(plat.settings) == []
        assert len(box.to("a@example.com")) == 1
    finally:
        box.controller.stop()
