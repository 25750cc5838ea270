"""Reconcile cost: what a change to one app costs the platform with 1 app on the host and with 200.

A real Dockyard (``dockyard up``, runc dynos by default, see ``bench/dynos.py``'s ``Platform``) runs the
hello-world app ``app-0`` (1 web dyno). Each change sets a config var of ``app-0`` (a new release: the agent
replaces its one dyno, the new one first) and waits until the API reports the new dyno up and the old one
gone. Measured per change:

- **wall time**: from the ``PATCH`` of the config var until the new dyno is reported up;
- **CPU** of the agent, the API and the router (user plus system, their waited-for commands included:
  runc, ip, nft), from the ``PATCH`` until 3 s after the old dyno left, less what the same processes spend
  in as long a time without changes (measured before, over 20 s: the rounds every 0.5 s, reports, polls).

Then 199 more apps like it (1 web dyno each) are added and the same changes measured again, and the idle
cost per second of each process is reported for both. Medians of ``--changes`` (5) changes.

Prints one line: ``reconcile: a config change to one app, 1 app vs 200 apps on the host: new dyno up
X s vs Y s; CPU per change agent A vs B ms, API C vs D ms, router E vs F ms; idle CPU agent G vs H ms/s,
API I vs J ms/s``.

    .venv/bin/python bench/reconcile.py [--apps 200] [--changes 5] [--runtime runc|process]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dynos import SERVER, Platform, descendants, load_average, scratch_dir

ROLES = ("agent", "api", "router")
IDLE = 20.0
"""Seconds of idle measurement (the agent's rounds every 0.5 s, its 10 s memory checks and reports)."""
SETTLE = 3.0
"""Seconds after the old dyno left that its change may still cost (the last report, the routers' polls)."""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system time of ``pid``, of the children it waited for, and of its live descendants
    (the router's workers)."""
    total = 0.0
    for each in {pid} | descendants(pid):
        try:
            text = Path(f"/proc/{each}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
    return total


def cpu_of(pids: Mapping[str, int]) -> dict[str, float]:
    return {role: cpu_seconds(pid) for role, pid in pids.items()}


@dataclass
class Round:
    apps: int
    walls: list[float]
    cpu: dict[str, list[float]]
    """Seconds of CPU per change, idle cost removed."""
    idle: dict[str, float]
    """Seconds of CPU per second without changes."""


def release_of(platform: Platform, app: str) -> int:
    releases = platform.api(
        "GET", f"/apps/{app}/releases", headers={"Range": "version ..; max=1000"}
    )
    return max(int(r["version"]) for r in releases.json())


def measure_idle(platform: Platform, pids: Mapping[str, int]) -> dict[str, float]:
    before, started = cpu_of(pids), time.monotonic()
    time.sleep(IDLE)
    after, elapsed = cpu_of(pids), time.monotonic() - started
    return {role: (after[role] - before[role]) / elapsed for role in pids}


def one_change(
    platform: Platform, pids: Mapping[str, int], idle: Mapping[str, float], n: int
) -> tuple[float, dict[str, float]]:
    app = "app-0"
    before, started = cpu_of(pids), time.monotonic()
    platform.api("PATCH", f"/apps/{app}/config-vars", json={"CHANGE": str(n)})
    version = release_of(platform, app)
    up_at = 0.0

    def replaced() -> bool:
        nonlocal up_at
        dynos = platform.dynos(app)
        new = [d for d in dynos if int(d["release"]["version"]) == version and d["state"] == "up"]
        if new and not up_at:
            up_at = time.monotonic()
        return bool(new) and len(dynos) == 1

    platform.wait_until(f"release v{version} of {app} replaced its dyno", replaced, timeout=120)
    time.sleep(SETTLE)
    after, elapsed = cpu_of(pids), time.monotonic() - started
    cost = {role: after[role] - before[role] - idle[role] * elapsed for role in pids}
    return up_at - started, cost


def measure(platform: Platform, apps: int, changes: int) -> Round:
    roles = platform.roles()
    pids = {role: roles[role] for role in ROLES}
    idle = measure_idle(platform, pids)
    walls: list[float] = []
    cpu: dict[str, list[float]] = {role: [] for role in ROLES}
    for n in range(changes):
        wall, cost = one_change(platform, pids, idle, n + apps * 1000)
        walls.append(wall)
        for role in ROLES:
            cpu[role].append(cost[role])
    return Round(apps, walls, cpu, idle)


def all_up(platform: Platform, count: int) -> bool:
    formation = platform.api("GET", "/apps", headers={"Range": "name ..; max=1000"}).json()
    if len(formation) < count:
        return False
    return all(
        len(d := platform.dynos(app["name"])) == 1 and d[0]["state"] == "up" for app in formation
    )


def bench(apps: int, changes: int, runtime: str) -> str:
    with scratch_dir() as base:
        platform = Platform(base, runtime=runtime)
        try:
            platform.start()
            platform.create_app("app-0", {"server.py": SERVER}, {"web": "python3 server.py"})
            platform.wait_until("app-0 up", lambda: all_up(platform, 1))
            load = [load_average()]
            small = measure(platform, 1, changes)
            load.append(load_average())
            began = time.monotonic()
            for n in range(1, apps):
                platform.create_app(f"app-{n}", {"server.py": SERVER}, {"web": "python3 server.py"})
            platform.wait_until(f"{apps} apps up", lambda: all_up(platform, apps), timeout=1200)
            print(
                f"{apps - 1} more apps created and up in {time.monotonic() - began:.0f} s",
                file=sys.stderr,
            )
            load.append(load_average())
            large = measure(platform, apps, changes)
            load.append(load_average())
        finally:
            platform.stop()
    return report(small, large, load, runtime)


def report(small: Round, large: Round, load: list[str], runtime: str) -> str:
    out = sys.stderr
    print(f"load average (1 min) at the start and end of each part: {' → '.join(load)}", file=out)
    for part in (small, large):
        walls = ", ".join(f"{w:.2f}" for w in part.walls)
        print(f"{part.apps} app(s) ({runtime} dynos): new dyno up after {walls} s", file=out)
        for role in ROLES:
            costs = ", ".join(f"{c * 1000:.0f}" for c in part.cpu[role])
            print(
                f"  {role}: CPU per change {costs} ms; idle {part.idle[role] * 1000:.1f} ms/s",
                file=out,
            )

    def cpu(role: str) -> str:
        return (
            f"{statistics.median(small.cpu[role]) * 1000:.0f} vs "
            f"{statistics.median(large.cpu[role]) * 1000:.0f} ms"
        )

    def idle(role: str) -> str:
        return f"{small.idle[role] * 1000:.0f} vs {large.idle[role] * 1000:.0f} ms/s"

    return (
        f"reconcile: a config change to one app, 1 app vs {large.apps} apps on the host "
        f"(median of {len(small.walls)}): new dyno up {statistics.median(small.walls):.2f} s vs "
        f"{statistics.median(large.walls):.2f} s; CPU per change agent {cpu('agent')}, API {cpu('api')}, "
        f"router {cpu('router')}; idle CPU agent {idle('agent')}, API {idle('api')}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--runtime", choices=["runc", "process"], default="runc")
    args = parser.parse_args()
    logging.getLogger("dockyard").setLevel(logging.ERROR)
    if args.runtime == "runc" and (os.geteuid() != 0 or shutil.which("runc") is None):
        print("reconcile: skipped (runc dynos need root and runc; try --runtime process)")
        return 0
    print(bench(args.apps, args.changes, args.runtime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
