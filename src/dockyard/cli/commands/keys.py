"""``keys``, ``keys:add``, ``keys:remove``, ``keys:clear``: the SSH keys that may push over SSH.

The API accepts ed25519, ecdsa and RSA keys of at least 2048 bits and says why it refuses others.
"""

from __future__ import annotations

from pathlib import Path

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import json_option
from dockyard.client.platform import SshKey
from dockyard.errors import InvalidError, NotFoundError

DEFAULT_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
"""Tried in this order in ``~/.ssh`` when ``keys:add`` is given no file."""
MAX_KEY_FILE = 64 * 1024
_SHORT_KEY = 30
"""Key data up to this length is shown whole; longer data as its first and last ten characters."""


def _home(cli: CliContext) -> Path:
    return Path(cli.env.get("HOME") or Path.home())


def _default_key(cli: CliContext) -> Path:
    ssh_dir = _home(cli) / ".ssh"
    for name in DEFAULT_KEYS:
        if (ssh_dir / name).is_file():
            return ssh_dir / name
    raise InvalidError(
        f"No SSH public key found in {ssh_dir} ({', '.join(DEFAULT_KEYS)}) — create one with "
        "ssh-keygen -t ed25519, or give the path of a .pub file"
    )


def _read_public_key(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise InvalidError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE:
        raise InvalidError(f"{path} is too large to be an SSH public key")
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("-----BEGIN"):
        raise InvalidError(f"{path} is a private key — give its public half, {path}.pub")
    if not text:
        raise InvalidError(f"{path} is empty")
    return text


def _short(key: SshKey) -> str:
    """``ssh-ed25519 AAAAC3NzaC...x4Kq7MuUlm`` as Heroku shows keys, without the comment."""
    parts = key.public_key.split()
    if len(parts) < 2 or len(parts[1]) <= _SHORT_KEY:
        return " ".join(parts[:2])
    return f"{parts[0]} {parts[1][:10]}...{parts[1][-10:]}"


@click.command("keys")
@click.option("-l", "--long", "long_", is_flag=True, help="Show the whole public keys.")
@json_option
@pass_cli
def keys_list(cli: CliContext, long_: bool, as_json: bool) -> None:
    """List your SSH keys.

    These keys may push to your apps over SSH."""
    client = cli.platform()
    found = client.keys()
    out = cli.out
    if as_json:
        out.json([key.raw for key in found])
        return
    email = found[0].email if found and found[0].email else client.account().email
    out.header(f"{email} keys")
    if not found:
        out.line("You have no SSH keys.")
        return
    rows = [
        [key.fingerprint, key.public_key if long_ else _short(key), key.comment]
        for key in sorted(found, key=lambda k: (k.comment, k.fingerprint))
    ]
    out.table(["Fingerprint", "Key", "Comment"], rows, headers=False)


@click.command("keys:add")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_cli
def add(cli: CliContext, path: Path | None, as_json: bool) -> None:
    """Add an SSH public key to your account.

    Without PATH: ~/.ssh/id_ed25519.pub, else id_ecdsa.pub, else id_rsa.pub."""
    key_file = path if path is not None else _default_key(cli)
    if not key_file.is_absolute():
        key_file = cli.workdir / key_file
    text = _read_public_key(key_file)
    out = cli.out
    with out.action(f"Uploading {key_file} SSH key"):
        key = cli.platform().add_key(text)
    if as_json:
        out.json(key.raw)
        return
    out.line(f"Fingerprint: {key.fingerprint}")


def find_key(found: list[SshKey], ref: str) -> SshKey:
    """The key named by its id, fingerprint (``SHA256:`` optional) or comment."""
    wanted = ref.strip()
    exact = [k for k in found if wanted == k.id or k.fingerprint in (wanted, f"SHA256:{wanted}")]
    if exact:
        return exact[0]
    by_comment = [k for k in found if k.comment and k.comment == wanted]
    if len(by_comment) == 1:
        return by_comment[0]
    if by_comment:
        raise InvalidError(
            f"{len(by_comment)} keys have the comment {wanted!r} — remove one by its fingerprint "
            "(see dockyard keys)"
        )
    raise NotFoundError(f"No SSH key matches {wanted!r} — dockyard keys lists yours")


@click.command("keys:remove")
@click.argument("key")
@pass_cli
def remove(cli: CliContext, key: str) -> None:
    """Remove an SSH key from your account.

    KEY is its fingerprint, its comment (often user@host) or its id."""
    client = cli.platform()
    target = find_key(client.keys(), key)
    label = target.comment or target.fingerprint
    with cli.out.action(f"Removing {label} SSH key"):
        client.remove_key(target.id)


@click.command("keys:clear")
@pass_cli
def clear(cli: CliContext) -> None:
    """Remove all SSH keys from your account."""
    client = cli.platform()
    with cli.out.action("Removing all SSH keys") as action:
        found = client.keys()
        for key in found:
            client.remove_key(key.id)
        action.done(f"{len(found)} removed")


COMMANDS = (keys_list, add, remove, clear)
ALIASES = {"keys:index": "keys"}
