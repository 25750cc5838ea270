"""``ps``, ``ps:scale``, ``ps:restart``: the formation and the dynos running it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import groupby

import click

from dockyard.cli.context import CliContext, pass_cli
from dockyard.cli.options import app_options, json_option
from dockyard.cli.output import ago, format_time, size_label
from dockyard.client.platform import Dyno, Formation, FormationUpdate
from dockyard.errors import NotFoundError

_CHANGE = re.compile(r"^(?P<type>[-\w]+?)(?:(?P<op>[=+-])(?P<qty>\d+))?(?::(?P<size>[-\w]+))?$")


def _dyno_order(dyno: Dyno) -> tuple[str, int, str]:
    kind, _, number = dyno.name.rpartition(".")
    return (dyno.type, int(number) if number.isdigit() else 0, kind)


def _since(cli: CliContext, dyno: Dyno) -> str:
    moment = dyno.updated_at or dyno.created_at
    if moment is None:
        return ""
    return f"{format_time(moment, cli.timezone)} ({ago(moment, cli.clock.now())})"


@click.command("ps")
@click.argument("types", nargs=-1, metavar="[TYPE]...")
@app_options
@json_option
@pass_cli
def ps(
    cli: CliContext, types: tuple[str, ...], app: str | None, remote: str | None, as_json: bool
) -> None:
    """List an app's dynos, grouped by process type."""
    name = cli.resolve_app(app, remote)
    dynos = sorted(cli.platform().dynos(name), key=_dyno_order)
    if types:
        dynos = [d for d in dynos if d.type in types]
    out = cli.out
    if as_json:
        out.json([d.raw for d in dynos])
        return
    if not dynos:
        out.line(f"No dynos on {name}")
        return
    first = True
    for (ptype, size, command), group in groupby(dynos, key=lambda d: (d.type, d.size, d.command)):
        members = list(group)
        if not first:
            out.line()
        first = False
        if ptype == "run":
            out.header(f"run: one-off processes ({len(members)})")
            for dyno in members:
                label = size_label(dyno.size)
                out.line(f"{dyno.name} ({label}): {dyno.state} {_since(cli, dyno)}: {dyno.command}")
            continue
        out.header(f"{ptype} ({size_label(size)}): {command} ({len(members)})")
        for dyno in members:
            retry = ""
            if dyno.state == "crashed" and dyno.next_retry_at is not None:
                retry = f"; next restart at {format_time(dyno.next_retry_at, cli.timezone)}"
            out.line(f"{dyno.name}: {dyno.state} {_since(cli, dyno)}".rstrip() + retry)


def _describe(formation: Sequence[Formation]) -> str:
    return " ".join(f"{f.type}={f.quantity}:{size_label(f.size)}" for f in formation)


def _parse(changes: Sequence[str]) -> list[tuple[str, str | None, int | None, str | None]]:
    parsed = []
    for change in changes:
        match = _CHANGE.fullmatch(change)
        if not match or (match["op"] is None and match["size"] is None):
            raise click.BadParameter(
                f"{change!r} is not a scale change — use TYPE=N, TYPE+N, TYPE-N, optionally with "
                ":SIZE (e.g. web=2:standard-2x worker+1)"
            )
        qty = int(match["qty"]) if match["qty"] is not None else None
        parsed.append((match["type"], match["op"], qty, match["size"]))
    return parsed


@click.command("ps:scale")
@click.argument("changes", nargs=-1, metavar="[TYPE=N[:SIZE]]...")
@app_options
@pass_cli
def scale(cli: CliContext, changes: tuple[str, ...], app: str | None, remote: str | None) -> None:
    """Scale process types.

    For example web=2, worker+1, web-1, web=2:standard-2x.

    Without arguments, show the formation."""
    parsed = _parse(changes)
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    out = cli.out
    if not parsed:
        formation = sorted(client.formation(name), key=lambda f: f.type)
        if not formation:
            raise NotFoundError(
                f"No process types on {name}. Push code with a Procfile to add process types."
            )
        out.line(_describe(formation))
        return
    current: dict[str, int] = {}
    if any(op in ("+", "-") for _, op, _, _ in parsed):
        current = {f.type: f.quantity for f in client.formation(name)}
    updates = []
    for ptype, op, qty, size in parsed:
        quantity = qty
        if op in ("+", "-") and qty is not None:
            quantity = current.get(ptype, 0) + (qty if op == "+" else -qty)
            if quantity < 0:
                raise click.BadParameter(
                    f"{ptype} has {current.get(ptype, 0)} dynos; it cannot be scaled {op}{qty}"
                )
        updates.append(FormationUpdate(ptype, quantity, size.lower() if size else None))
    with out.action("Scaling dynos") as action:
        result = client.scale(name, updates)
        changed = {u.type for u in updates}
        running = [f for f in sorted(result, key=lambda f: f.type) if f.type in changed]
        action.done(
            "now running "
            + ", ".join(f"{f.type} at {f.quantity}:{size_label(f.size)}" for f in running)
        )


@click.command("ps:restart")
@click.argument("target", required=False, metavar="[DYNO|TYPE]")
@click.option("-d", "--dyno-name", help="Name of the dyno to restart (e.g. web.1).")
@click.option("-p", "--process-type", help="Process type whose dynos restart (e.g. web).")
@app_options
@pass_cli
def restart(
    cli: CliContext,
    target: str | None,
    dyno_name: str | None,
    process_type: str | None,
    app: str | None,
    remote: str | None,
) -> None:
    """Restart an app's dynos.

    All of them, those of one process type, or one dyno."""
    which = dyno_name or process_type or target
    name = cli.resolve_app(app, remote)
    client = cli.platform()
    if which is None:
        with cli.out.action(f"Restarting dynos on {name}"):
            client.restart_all(name)
        return
    kind = "dyno" if "." in which else "dynos"
    with cli.out.action(f"Restarting {which} {kind} on {name}"):
        client.restart(name, which)


@click.command("ps:stop")
@click.argument("dyno")
@app_options
@pass_cli
def stop(cli: CliContext, dyno: str, app: str | None, remote: str | None) -> None:
    """Stop a dyno: a one-off dyno ends; a formation dyno is restarted by the platform, as on Heroku
    (scale the type down to stop it for good)."""
    name = cli.resolve_app(app, remote)
    with cli.out.action(f"Stopping {dyno} dyno on {name}"):
        cli.platform().stop_dyno(name, dyno)


COMMANDS = (ps, scale, restart, stop)
ALIASES = {
    "scale": "ps:scale",
    "restart": "ps:restart",
    "dyno:scale": "ps:scale",
    "stop": "ps:stop",
    "dyno:stop": "ps:stop",
}
