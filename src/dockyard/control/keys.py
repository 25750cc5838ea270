"""SSH keys of the signed-in account (used by git over SSH once it lands)."""

from __future__ import annotations

from dockyard.control.context import Platform
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


def add_key(platform: Platform, account: Account, public_key: str) -> SshKey:
    parsed = parse_public_key(public_key)
    with platform.store.transaction() as tx:
        return tx.add_ssh_key(account.id, parsed.openssh(), parsed.fingerprint, parsed.comment)


def remove_key(platform: Platform, account: Account, ref: str) -> SshKey:
    key = get_key(platform, account, ref)
    with platform.store.transaction() as tx:
        tx.delete_ssh_key(key.id)
    return key
