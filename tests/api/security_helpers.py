"""Accounts with passwords and second factors for the security tests."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from dockyard._util.clock import FakeClock
from dockyard.auth import mfa as totp
from dockyard.control import mfa, passwords
from dockyard.control.accounts import create_user
from dockyard.control.context import Platform
from dockyard.store.records import Account

PASSWORD = "correct horse battery staple 42"
ACCEPT = "application/vnd.heroku+json; version=3"


@dataclass
class Member:
    account: Account
    api_key: str
    secret: str | None
    clock: FakeClock

    def code(self) -> str:
        """A fresh TOTP code: the clock moves to the next 30-second step first (each code works once)."""
        assert self.secret is not None
        self.clock.advance(30)
        return totp.totp(self.secret, self.clock.now())

    @property
    def key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": ACCEPT}


def member(platform: Platform, clock: FakeClock, email: str, *, with_totp: bool = True) -> Member:
    user = create_user(platform, email)
    passwords.set_password(platform, user.account, PASSWORD)
    secret = None
    if with_totp:
        secret = mfa.begin_totp(platform, user.account).secret
        codes = mfa.confirm_totp(platform, user.account, totp.totp(secret, clock.now()))
        assert len(codes) == 10
    return Member(user.account, user.api_key, secret, clock)


def basic(email: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}", "Accept": ACCEPT}


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": ACCEPT, **extra}
