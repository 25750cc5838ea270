"""Outgoing mail: written to the outbox first, then sent over SMTP — never silently dropped.

``send`` writes the message as an ``.eml`` file into the outbox directory (mode 0700, files 0600) and
returns; the request that sent it does not wait for, or depend on the speed of, the mail server. When
``DOCKYARD_SMTP_URL`` is set, a background thread of the process delivers the outbox and removes each
message once the server accepted it; a message the server refuses or cannot take now stays and is tried
again a minute later. Without an SMTP server the messages stay in the outbox, where
``dockyard admin:outbox`` shows them to the operator.

    smtp://[user:password@]host[:port][?starttls=true]   (port 25 by default)
    smtps://[user:password@]host[:port]                   (TLS from the start, port 465 by default)
"""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import threading
import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dockyard.control.context import Platform
from dockyard.errors import UnavailableError
from dockyard.settings import Settings

log = logging.getLogger("dockyard.mail")
RETRY_INTERVAL = 60.0
SMTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class OutboxMail:
    path: Path
    to: str
    subject: str
    date: str
    body: str


def sender(settings: Settings) -> str:
    return settings.smtp.from_address or f"Dockyard <dockyard@{settings.domain}>"


def _outbox(settings: Settings) -> Path:
    directory = settings.outbox_dir
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def send(platform: Platform, mail: Mail) -> Path:
    """Put ``mail`` in the outbox (durably) and wake the delivery; returns the message's file."""
    settings = platform.settings
    message = EmailMessage(policy=policy.default)
    message["From"] = sender(settings)
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(platform.clock.now())
    message["Message-ID"] = make_msgid(domain=settings.domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body)
    directory = _outbox(settings)
    stamp = platform.clock.now().strftime("%Y%m%dT%H%M%S%f")
    path = directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
    temporary = directory / f".{path.name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(message.as_bytes())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    if settings.smtp.url:
        _deliverer(settings).wake()
    return path


def pending(settings: Settings) -> list[Path]:
    """Messages in the outbox, oldest first."""
    directory = settings.outbox_dir
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".eml" and p.is_file())


def read_outbox(settings: Settings) -> list[OutboxMail]:
    mails = []
    for path in pending(settings):
        with contextlib.suppress(FileNotFoundError):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain",))
            mails.append(
                OutboxMail(
                    path=path,
                    to=str(message["To"] or ""),
                    subject=str(message["Subject"] or ""),
                    date=str(message["Date"] or ""),
                    body=body.get_content() if body is not None else "",
                )
            )
    return mails


# -- delivery over SMTP ---------------------------------------------------------------------------------


def _connect(url: str) -> smtplib.SMTP:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    query = parse_qs(parts.query)
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host,
                parts.port or 465,
                timeout=SMTP_TIMEOUT,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT)
            if query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"):
                client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
    except (OSError, smtplib.SMTPException) as exc:
        raise UnavailableError(f"cannot reach the mail server {host}: {exc}") from exc
    return client


def deliver_pending(settings: Settings) -> int:
    """Send every message of the outbox now; returns how many were sent. Messages that fail stay (and
    ``UnavailableError`` says why when the server could not be reached at all)."""
    if not settings.smtp.url:
        return 0
    with _lock_for(settings.outbox_dir):
        paths = pending(settings)
        if not paths:
            return 0
        sent = 0
        client = _connect(settings.smtp.url)
        try:
            for path in paths:
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                message = BytesParser(policy=policy.default).parsebytes(data)
                try:
                    client.send_message(message)
                except smtplib.SMTPRecipientsRefused as exc:
                    log.warning("mail %s: every recipient was refused (%s); kept", path.name, exc)
                    continue
                except (OSError, smtplib.SMTPException) as exc:
                    log.warning("mail %s not sent (%s); it stays in the outbox", path.name, exc)
                    break
                path.unlink(missing_ok=True)
                sent += 1
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()
        return sent


_LOCKS: dict[Path, threading.Lock] = {}
_DELIVERERS: dict[Path, _Deliverer] = {}
_REGISTRY_LOCK = threading.Lock()


def _lock_for(directory: Path) -> threading.Lock:
    with _REGISTRY_LOCK:
        return _LOCKS.setdefault(directory, threading.Lock())


class _Deliverer:
    """One background thread per outbox: delivers when woken, and retries every minute."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dockyard-mail", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(RETRY_INTERVAL)
            self._wake.clear()
            try:
                deliver_pending(self.settings)
            except UnavailableError as exc:
                log.warning("%s; mail stays in the outbox and is tried again", exc.message)
            except Exception:  # the thread must live on: log and retry later
                log.exception("mail delivery failed; mail stays in the outbox")


def _deliverer(settings: Settings) -> _Deliverer:
    with _REGISTRY_LOCK:
        deliverer = _DELIVERERS.get(settings.outbox_dir)
        if deliverer is None or deliverer.settings.smtp != settings.smtp:
            deliverer = _DELIVERERS[settings.outbox_dir] = _Deliverer(settings)
        return deliverer
