"""SSH keys of the signed-in account (used by git over SSH once it lands)."""

from __future__ import annotations

from dockyard.control import audit
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.domain.sshkeys import parse_public_key
from dockyard.errors import NotFoundError
from dockyard.store.records import Account, SshKey


def list_keys(platform: Platform, account: Account) -> list[SshKey]:
    with platform.store.read() as tx:
        return tx.list_ssh_keys(account.id)


def get_key(platform: Platform, account: Account, ref: str) -> SshKey:
    for key in list_keys(platform, account):
        if ref in (key.id, key.fingerprint, key.comment):
            return key
    raise NotFoundError(f"Couldn't find that key: {ref}")


def add_key(
    platform: Platform, account: Account, public_key: str, *, context: RequestContext | None = None
) -> SshKey:
    """Register a key; audited (fails with nothing added when the audit log is unavailable)."""
    parsed = parse_public_key(public_key)
    with platform.store.transaction() as tx:
        key = tx.add_ssh_key(account.id, parsed.openssh(), parsed.fingerprint, parsed.comment)
        _record(platform, "ssh_key.add", account, context, key)
        return key


def remove_key(
    platform: Platform, account: Account, ref: str, *, context: RequestContext | None = None
) -> SshKey:
    key = get_key(platform, account, ref)
    with platform.store.transaction() as tx:
        tx.delete_ssh_key(key.id)
        _record(platform, "ssh_key.remove", account, context, key)
    return key


def _record(
    platform: Platform, action: str, account: Account, context: RequestContext | None, key: SshKey
) -> None:
    audit.record_account_event(
        platform,
        action,
        account,
        context,
        target=("ssh_key", key.id, key.fingerprint),
        details={"fingerprint": key.fingerprint, "comment": key.comment},
    )
