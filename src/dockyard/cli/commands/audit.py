"""``audit events``, ``audit verify``, ``audit witness`` (also ``audit:events`` …): the audit log.

- ``events`` lists your account's (or an app's, or, for operators, everyone's) audit events, and checks
  that each is in the log's signed checkpoint (its inclusion proof);
- ``verify`` checks a whole log against its signed checkpoints and names the first entry that does not
  match: over the API (operators), from an export file, or from the log's directory on the host;
- ``witness`` watches a Dockyard's checkpoints from elsewhere, cosigns consistent ones, and alarms
  (a log line, exit status 1, an optional webhook) on a fork, a shrinking log, a bad signature, or no
  new checkpoint for more than two intervals.

Pin the log's key (``GET /audit/log-key``, or ``<data dir>/audit/key.pub`` on the host) with
``--log-key``: a key fetched from the log itself proves only that the log is consistent with itself.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from dockyard.audit.checkpoint import NoteVerifier, open_checkpoint
from dockyard.audit.merkle import leaf_hash, verify_inclusion
from dockyard.audit.verify import Report, verify_entries, verify_log_dir
from dockyard.audit.witness import Alarm, Witness, load_witness_key
from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import json_option
from dockyard.client.http import ApiClient
from dockyard.errors import DockyardError, InvalidError

LEAF_CHUNK = 10_000


def _signed_in(cli: CliContext) -> ApiClient:
    """The API with the stored credentials (closed when the command ends)."""
    return cli.platform().api


def _public(cli: CliContext, url: str | None = None) -> ApiClient:
    """An API (or webhook) client without credentials; the caller closes it."""
    return cli.api_factory((url or cli.api_url).rstrip("/"), None)


def _log_key(cli: CliContext, api: ApiClient, pinned: str | None) -> NoteVerifier:
    if pinned:
        return NoteVerifier.from_vkey(pinned)
    served = NoteVerifier.from_vkey(api.request("GET", "/audit/log-key").text)
    cli.out.note(
        f"(using the log key the server gives, {served.vkey()} — pin it with --log-key to detect "
        "a replaced key)"
    )
    return served


def _b64(hashes: list[Any]) -> list[bytes]:
    return [base64.b64decode(str(h)) for h in hashes]


# --- events --------------------------------------------------------------------------------------


@click.command("audit:events")
@click.option("-a", "--app", metavar="APP", help="Events of this app (default: your account's).")
@click.option("--all", "everything", is_flag=True, help="Every account's events (operators).")
@click.option("-n", "--num", "limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--log-key", metavar="VKEY", help="The log's verifier key to check proofs with.")
@json_option
@pass_cli
def events(
    cli: CliContext,
    app: str | None,
    everything: bool,
    limit: int,
    log_key: str | None,
    as_json: bool,
) -> None:
    """List audit events, each checked against the log's signed checkpoint."""
    api = _signed_in(cli)
    if everything:
        path = "/audit/events"
    elif app:
        path = f"/apps/{app}/audit-events"
    else:
        path = "/account/audit-events"
    page = api.request("GET", f"{path}?limit={max(1, min(limit, 1000))}").json()
    key = _log_key(cli, api, log_key) if not as_json else _log_key_quiet(api, log_key)
    checkpoint = open_checkpoint(str(page["checkpoint"]), key).checkpoint
    for item in page["events"]:
        leaf = leaf_hash(str(item["entry"]).encode())
        proof = _b64(item["inclusion_proof"])
        if not verify_inclusion(int(item["seq"]), checkpoint.size, leaf, proof, checkpoint.root):
            raise InvalidError(
                f"event {item['seq']} is not in the log's signed checkpoint of size "
                f"{checkpoint.size}: the log answered with an event it cannot prove"
            )
    if as_json:
        cli.out.json(page)
        return
    rows = [
        [
            str(e["event"].get("ts", ""))[:19].replace("T", " "),
            str(e["event"].get("action", "")),
            _actor(e["event"]),
            str(e["event"].get("ip", "")),
            _target(e["event"]),
            str(e["event"].get("outcome", "")),
        ]
        for e in page["events"]
    ]
    cli.out.table(["Time (UTC)", "Action", "Actor", "Address", "Target", "Outcome"], rows)
    cli.out.note(
        f"{len(rows)} event(s), each proven in the checkpoint of {checkpoint.size} entries signed "
        f"by {key.name}"
    )


def _log_key_quiet(api: ApiClient, pinned: str | None) -> NoteVerifier:
    return NoteVerifier.from_vkey(pinned or api.request("GET", "/audit/log-key").text)


def _actor(event: dict[str, Any]) -> str:
    actor = event.get("actor") or {}
    who = f"{actor.get('type', '')}:{actor.get('id', '')}".rstrip(":")
    return f"{who} ({event.get('auth', '')})"


def _target(event: dict[str, Any]) -> str:
    target = event.get("target") or {}
    return str(target.get("name") or f"{target.get('type', '')}:{target.get('id', '')}")


# --- verify --------------------------------------------------------------------------------------


@click.command("audit:verify")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Verify the log's files on this host (read-only), e.g. /var/lib/dockyard/audit.",
)
@click.option(
    "--export",
    "export_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Verify an export (GET /audit/export) saved to a file.",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The signed checkpoint to verify against (e.g. one a witness cosigned).",
)
@click.option("--log-key", metavar="VKEY", help="The log's verifier key.")
@pass_cli
def verify(
    cli: CliContext,
    log_dir: Path | None,
    export_file: Path | None,
    checkpoint_file: Path | None,
    log_key: str | None,
) -> None:
    """Verify the whole audit log against its signed checkpoints.

    Without --log-dir or --export the log is read through the API (operators only). Fails (exit
    status 1) naming the first entry that does not match."""
    note = checkpoint_file.read_text() if checkpoint_file else None
    if log_dir is not None:
        key = NoteVerifier.from_vkey(log_key or (log_dir / "key.pub").read_text())
        report = verify_log_dir(log_dir, key, note)
    elif export_file is not None:
        if note is None or not log_key:
            raise InvalidError("--export needs --checkpoint and --log-key to verify against")
        key = NoteVerifier.from_vkey(log_key)
        checkpoint = open_checkpoint(note, key).checkpoint
        with export_file.open("rb") as handle:
            report = verify_entries((line.rstrip(b"\n") for line in handle), checkpoint)
    else:
        report = _verify_remote(cli, note, log_key)
    _finish(cli, report)


def _verify_remote(cli: CliContext, note: str | None, pinned: str | None) -> Report:
    api = _signed_in(cli)
    key = _log_key(cli, api, pinned)
    checkpoint = open_checkpoint(note or api.request("GET", "/audit/checkpoint").text, key)
    leaves: dict[int, bytes] = {}

    def stored(index: int) -> bytes | None:
        if index not in leaves:
            leaves.clear()
            answer = api.request(
                "GET", f"/audit/leaf-hashes?start={index}&end={index + LEAF_CHUNK}"
            ).json()
            for offset, value in enumerate(_b64(answer["hashes"])):
                leaves[index + offset] = value
        return leaves.get(index)

    lines = _export_lines(api)
    return verify_entries(lines, checkpoint.checkpoint, stored_leaf=stored)


def _export_lines(api: ApiClient) -> Iterator[bytes]:
    for line in api.stream_lines("GET", "/audit/export"):
        if line:
            yield line.encode()


def _finish(cli: CliContext, report: Report) -> None:
    if not report.ok:
        raise InvalidError(report.summary())
    cli.out.line(report.summary())


# --- witness -------------------------------------------------------------------------------------


@click.command("audit:witness")
@click.option("--url", metavar="URL", help="The Dockyard API to watch (default: DOCKYARD_API_URL).")
@click.option("--log-key", metavar="VKEY", help="The log's verifier key (required the first time).")
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the witness keeps its key and the last checkpoint it accepted "
    "(default: ~/.dockyard-witness).",
)
@click.option("--name", metavar="NAME", help="The witness key's name (default: witness.<host>).")
@click.option(
    "--interval",
    default=60.0,
    show_default=True,
    help="The log's checkpoint interval in seconds (its audit.checkpoint_interval).",
)
@click.option("--poll", type=float, help="Seconds between two rounds (default: half the interval).")
@click.option("--once", is_flag=True, help="One round, then exit (for cron).")
@click.option("--webhook", metavar="URL", help="POST each alarm as JSON to this URL.")
@click.option(
    "--submit/--no-submit",
    default=True,
    show_default=True,
    help="Hand the cosigned checkpoint back to the log (POST /audit/cosignatures).",
)
@click.option("--show-key", is_flag=True, help="Print the witness's verifier key and exit.")
@pass_cli
def witness(
    cli: CliContext,
    url: str | None,
    log_key: str | None,
    state_dir: Path | None,
    name: str | None,
    interval: float,
    poll: float | None,
    once: bool,
    webhook: str | None,
    submit: bool,
    show_key: bool,
) -> None:
    """Watch a Dockyard's audit log from elsewhere: verify, cosign, alarm.

    Exits with status 1 at the first alarm (a fork, a shrinking log, a bad signature, no new checkpoint
    for more than two intervals)."""
    home = Path(cli.env.get("HOME") or Path.home())
    state = state_dir or home / ".dockyard-witness"
    signer = load_witness_key(state, name or f"witness.{socket.gethostname()}")
    if show_key:
        cli.out.line(signer.verifier.vkey())
        return
    pinned = _pinned_log_key(state, log_key)
    watcher = Witness(state, signer, pinned, interval=interval, clock=cli.clock)
    with contextlib.closing(_public(cli, url)) as api:
        cli.out.note(f"witness {signer.verifier.vkey()} watching {api.base_url} ({pinned.name})")
        _watch(
            cli,
            api,
            watcher,
            poll=poll,
            interval=interval,
            once=once,
            webhook=webhook,
            submit=submit,
        )


def _watch(
    cli: CliContext,
    api: ApiClient,
    watcher: Witness,
    *,
    poll: float | None,
    interval: float,
    once: bool,
    webhook: str | None,
    submit: bool,
) -> None:
    while True:
        alarms = _round(cli, api, watcher, submit)
        if alarms:
            for alarm in alarms:
                cli.out.warn(alarm.line())
                if webhook:
                    _notify(cli, webhook, api.base_url, alarm)
            raise DockyardError(f"audit witness: {len(alarms)} alarm(s) about {api.base_url}")
        if once:
            return
        time.sleep(poll if poll is not None else max(1.0, interval / 2))


def _pinned_log_key(state: Path, given: str | None) -> NoteVerifier:
    path = state / "log.pub"
    if path.exists():
        pinned = NoteVerifier.from_vkey(path.read_text())
        if given and NoteVerifier.from_vkey(given) != pinned:
            raise InvalidError(
                f"--log-key differs from the key this witness pinned ({pinned.vkey()}); a log whose "
                f"key changed is a different log — use another --state to watch it"
            )
        return pinned
    if not given:
        raise InvalidError(
            "give the log's key with --log-key the first time (GET /audit/log-key, or "
            "<data dir>/audit/key.pub on the log's host)"
        )
    pinned = NoteVerifier.from_vkey(given)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(pinned.vkey() + "\n")
    return pinned


def _round(cli: CliContext, api: ApiClient, watcher: Witness, submit: bool) -> list[Alarm]:
    try:
        note = api.request("GET", "/audit/checkpoint", ok=(200,)).text
    except DockyardError as exc:
        cli.out.note(f"{_now(cli)} cannot fetch the checkpoint: {exc.message}")
        return watcher.unreachable(exc.message).alarms

    def consistency(first: int, second: int) -> list[bytes]:
        answer = api.request("GET", f"/audit/proof/consistency?first={first}&second={second}")
        return _b64(answer.json()["hashes"])

    observation = watcher.observe(note, consistency)
    if observation.ok and observation.checkpoint is not None:
        checkpoint = observation.checkpoint
        cli.out.note(
            f"{_now(cli)} OK size {checkpoint.size} root "
            f"{base64.b64encode(checkpoint.root).decode()} {'new, ' if observation.new else ''}"
            "cosigned"
        )
        if submit and observation.cosigned:
            try:
                api.request("POST", "/audit/cosignatures", json={"note": observation.cosigned})
            except DockyardError as exc:
                cli.out.note(f"{_now(cli)} the log did not take the cosignature: {exc.message}")
    return observation.alarms


def _notify(cli: CliContext, webhook: str, log_url: str, alarm: Alarm) -> None:
    body = {"log": log_url, "alarm": alarm.kind, "message": alarm.message, "at": _now(cli)}
    with contextlib.closing(_public(cli, webhook)) as hook:
        try:
            hook.request("POST", "", json=body)
        except DockyardError as exc:
            cli.out.warn(f"the webhook {webhook} did not take the alarm: {exc.message}")


def _now(cli: CliContext) -> str:
    return cli.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


audit_group = click.Group(
    "audit", help="The tamper-evident audit log: events, verify, witness.", no_args_is_help=True
)
audit_group.add_command(events, "events")
audit_group.add_command(verify, "verify")
audit_group.add_command(witness, "witness")

COMMANDS = (audit_group, events, verify, witness)
ALIASES: dict[str, str] = {}
