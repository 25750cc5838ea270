"""The release phase, and one-off processes run from a release's slug (``scripts.postdeploy``).

A release whose slug declares a ``release`` process type is created ``pending``. Its command then
runs once, in a one-off process started through the configured runtime from the new slug with the
release's config vars, named ``release.<version>``. It is never restarted. Its output goes to the
pusher (for git pushes), to the app's log as ``app[release.<version>]``, to a file that
``output_stream_url`` follows while it runs, and finally onto the release record. Exit status 0
makes the release ``succeeded`` (the dynos then roll to it); anything else, or running longer than
``[build] release_phase_timeout`` seconds, makes it ``failed`` and the previous release keeps
serving, because the data plane only ever runs an app's newest *succeeded* release.

Git pushes run the phase in the push (its outcome decides the push); config changes, rollbacks and
API releases answer at once with the pending release and run the phase in a background thread of
the API process (``start_in_background``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.build.output import BuildOutput
from dockyard.control.context import Platform
from dockyard.control.sources import signed_url, verify
from dockyard.domain.appjson import RELEASE_TYPE
from dockyard.domain.formation import DEFAULT_SIZE
from dockyard.errors import DockyardError
from dockyard.runtime.base import DynoSpec, RunningDyno, Runtime, load_runtime
from dockyard.store.records import App, Release, Slug

log = logging.getLogger(__name__)

FOLLOW_POLL = 0.2
"""Seconds between two looks at a growing output file or a pending record."""
POLL_INTERVAL = 0.1
"""Seconds between two looks at a running one-off process."""
OUTPUT_LIMIT = 1 << 20
"""Bytes of output kept on the release record (the newest; Heroku truncates from the start too)."""
KIND_LABEL = "dockyard.kind"
"""Label on the processes run here; its value is their process type (``release``,
``postdeploy``). The dyno manager leaves such dynos alone: they belong to no formation and are not
the one-off dynos (``one-off``) it starts itself."""
SUPERVISOR_LABEL = "dockyard.supervisor"
"""Label holding the id of the process that waits for a release phase (the API, or a git hook)."""
_READ_LIMIT = 1 << 16
_MAX_LINE = 64 << 10

OnLine = Callable[[str], None]


@dataclass(frozen=True)
class OneOffResult:
    exit_code: int | None
    """None when the process could not start, or was stopped at the timeout."""
    timed_out: bool
    output: str
    """The process's output (the newest ``OUTPUT_LIMIT`` bytes), one line per line."""
    error: str | None = None
    """Why the process could not start."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def output_path(platform: Platform, release_id: str) -> Path:
    """Where a release phase writes its output while it runs (``output_stream_url`` follows it)."""
    return platform.settings.data_dir / "release-output" / f"{release_id}.log"


class _Tail:
    """New whole lines of a file that another process appends to; the handle stays open, so the
    last lines can be read after the runtime has deleted the file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._handle: BinaryIO | None = None
        self._partial = b""

    def lines(self, *, final: bool = False) -> list[str]:
        if self._handle is None and self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._handle = self._path.open("rb")
        if self._handle is None:
            return []
        found: list[bytes] = []
        while data := self._handle.read(_READ_LIMIT):
            *whole, self._partial = (self._partial + data).split(b"\n")
            found.extend(whole)
            if len(self._partial) >= _MAX_LINE:
                found.append(self._partial)
                self._partial = b""
        if final and self._partial:
            found.append(self._partial)
            self._partial = b""
        return [line.decode("utf-8", "replace").rstrip("\r") for line in found]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _find(runtime: Runtime, dyno_id: str) -> RunningDyno | None:
    return next((d for d in runtime.list() if d.spec.id == dyno_id), None)


def run_one_off(
    platform: Platform,
    app: App,
    release: Release,
    slug: Slug,
    *,
    process_type: str,
    command: str,
    timeout: float,
    on_line: OnLine | None = None,
    runtime: Runtime | None = None,
    size: str | None = None,
) -> OneOffResult:
    """Run ``command`` once from ``slug`` with ``release``'s config, as ``<process_type>.<version>``;
    wait for it to exit (stopping it after ``timeout`` seconds). Its output goes to ``on_line`` and
    to the app's log as ``app[<name>]``."""
    runtime = runtime or load_runtime(platform.settings)
    name = f"{process_type}.{release.version}"
    captured = BuildOutput(limit=OUTPUT_LIMIT)

    def emit(line: str) -> None:
        captured.line(line)
        platform.log(app.id, "app", name, line)
        if on_line is not None:
            with contextlib.suppress(OSError):  # a pusher that hung up does not stop the phase
                on_line(line)

    spec = DynoSpec(
        id=str(uuid.uuid4()),
        app_id=app.id,
        app_name=app.name,
        name=name,
        process_type=process_type,
        release_version=int(release.version),
        slug_digest=slug.digest,
        command=command,
        env=dict(release.config),
        size=size or DEFAULT_SIZE,
        labels={KIND_LABEL: process_type, SUPERVISOR_LABEL: str(os.getpid())},
    )
    platform.log(app.id, "heroku", name, f"Starting process with command `{command}`")
    try:
        started = runtime.start(spec)
    except DockyardError as exc:
        platform.log(app.id, "heroku", name, "State changed from starting to crashed")
        return OneOffResult(None, False, captured.text, error=exc.message)
    platform.log(app.id, "heroku", name, "State changed from starting to up")
    tail = _Tail(started.output_path)
    deadline = time.monotonic() + timeout
    exit_code: int | None = None
    timed_out = False
    try:
        while True:
            seen = _find(runtime, spec.id)
            for line in tail.lines():
                emit(line)
            if seen is None or seen.state == "exited":
                exit_code = None if seen is None else seen.exit_code
                break
            if time.monotonic() >= deadline:
                timed_out = True
                platform.log(app.id, "heroku", name, f"Timed out after {timeout:g} seconds")
                runtime.stop(spec.id, timeout=platform.settings.agent.stop_timeout)
                break
            time.sleep(POLL_INTERVAL)
        for line in tail.lines(final=True):
            emit(line)
    finally:
        tail.close()
        with contextlib.suppress(DockyardError):
            runtime.stop(spec.id, timeout=platform.settings.agent.stop_timeout)
    if exit_code is not None:
        platform.log(app.id, "heroku", name, f"Process exited with status {exit_code}")
    platform.log(app.id, "heroku", name, "State changed from up to complete")
    return OneOffResult(exit_code, timed_out, captured.text)


def failure_reason(result: OneOffResult, command: str, timeout: float) -> str:
    if result.error is not None:
        return f"the command `{command}` could not start: {result.error}"
    if result.timed_out:
        return f"the command `{command}` did not finish within {timeout:g} seconds and was stopped"
    if result.exit_code is None:
        return f"the command `{command}` was stopped before it finished"
    return f"the command `{command}` exited with status {result.exit_code}"


def release_command(platform: Platform, release: Release) -> tuple[Slug, str] | None:
    """The slug and ``release`` command of a release, if its slug declares one."""
    if release.slug_id is None:
        return None
    with platform.store.read() as tx:
        slug = tx.get_slug(release.slug_id)
    command = slug.process_types.get(RELEASE_TYPE)
    return None if not command else (slug, command)


def run_release_phase(
    platform: Platform,
    app: App,
    release: Release,
    *,
    output: BuildOutput | None = None,
    runtime: Runtime | None = None,
) -> tuple[Release, str | None]:
    """Run the release command of a pending release and record the outcome on it.

    Returns the finished release and, when it failed, why (in words for the user). Lines go to
    ``output`` in Heroku's push style. A release that is not pending is returned unchanged."""
    found = release_command(platform, release)
    if release.status != "pending" or found is None:
        return release, None
    slug, command = found
    timeout = platform.settings.build.release_phase_timeout
    path = output_path(platform, release.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if output is not None:
        output.blank()
        output.line("Running release command...")
        output.blank()
    try:
        with path.open("a", encoding="utf-8") as stream:

            def on_line(line: str) -> None:
                stream.write(line + "\n")
                stream.flush()
                if output is not None:
                    output.line(line)

            result = run_one_off(
                platform,
                app,
                release,
                slug,
                process_type=RELEASE_TYPE,
                command=command,
                timeout=timeout,
                on_line=on_line,
                runtime=runtime,
            )
            reason = None if result.succeeded else failure_reason(result, command, timeout)
            if reason is not None:
                stream.write(reason + "\n")
        text = result.output if reason is None else f"{result.output}{reason}\n"
        with platform.store.transaction() as tx:
            finished = tx.finish_release(
                release.id, status="succeeded" if reason is None else "failed", output=text
            )
    finally:
        path.unlink(missing_ok=True)
    if output is not None:
        output.line(f"Waiting for release.... {'done' if reason is None else 'failed'}.")
    if reason is None:
        platform.log(app.id, "heroku", "api", f"Release v{release.version} command succeeded")
    else:
        platform.log(
            app.id, "heroku", "api", f"Release v{release.version} command failed: {reason}"
        )
    return finished, reason


def start_in_background(
    platform: Platform,
    app: App,
    release: Release,
    *,
    then: Callable[[Release], None] | None = None,
) -> threading.Thread | None:
    """Run the release phase of a pending release in a daemon thread of this process; ``then`` is
    called with the finished release. Returns None when there is nothing to run."""
    if release.status != "pending":
        return None

    def work() -> None:
        try:
            finished, _reason = run_release_phase(platform, app, release)
        except Exception:
            log.exception("release phase of %s v%s failed to run", app.name, release.version)
            try:
                with platform.store.transaction() as tx:
                    tx.finish_release(
                        release.id, status="failed", output="The release phase could not run.\n"
                    )
            except Exception:  # the platform may be shutting down; recover() handles it
                log.exception("could not record the failure of v%s", release.version)
            return
        if then is not None:
            then(finished)

    thread = threading.Thread(
        target=work, name=f"release-phase-{app.name}-v{release.version}", daemon=True
    )
    thread.start()
    return thread


def follow_file(path: Path, recorded: Callable[[], Iterator[bytes]]) -> Iterator[bytes]:
    """The content of an output file as it grows, until its writer removes it; ``recorded`` when
    there is no such file (the work is over, or ran in another way)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield from recorded()
        return
    with handle:
        while True:
            chunk = handle.read(1 << 16)
            if chunk:
                yield chunk
                continue
            if os.fstat(handle.fileno()).st_nlink == 0:  # removed: the work is over
                while chunk := handle.read(1 << 16):
                    yield chunk
                return
            time.sleep(FOLLOW_POLL)


def output_stream_url(platform: Platform, release: Release) -> str:
    """A signed URL (no API key needed) of the release command's output."""
    key = f"{release.app_id}/{release.id}"
    return signed_url(platform, f"/release-output/{key}", "release-output", key)


def follow_output(
    platform: Platform, app_id: str, release_id: str, signature: str | None
) -> Iterator[bytes]:
    """The output of a release's command as it runs, then as kept on the release. The signature
    and the release are checked here; the iterator blocks between chunks."""
    verify(platform, "release-output", f"{app_id}/{release_id}", signature)
    with platform.store.read() as tx:
        tx.get_release(app_id, release_id)

    def recorded() -> Iterator[bytes]:
        while True:
            with platform.store.read() as tx:
                release = tx.get_release(app_id, release_id)
            if release.status != "pending":
                yield release.output.encode("utf-8")
                return
            path = output_path(platform, release_id)
            if path.exists():  # the phase has started meanwhile
                yield from follow_file(path, recorded)
                return
            time.sleep(FOLLOW_POLL)

    return follow_file(output_path(platform, release_id), recorded)


INTERRUPTED = (
    "The release phase was interrupted (the platform restarted while it ran); "
    "deploy, roll back or change a config var to release again.\n"
)


def recover(platform: Platform, *, runtime: Runtime | None = None) -> list[Release]:
    """Fail the pending releases whose release phase nobody waits for any more: its process is gone,
    or the process that supervised it (the API before a restart, a git hook) has died, or it has
    run longer than its timeout allows; such processes are stopped. Run at start-up of the API,
    whose background threads supervise release phases. Returns the releases failed."""
    runtime = runtime or load_runtime(platform.settings)
    running: dict[tuple[str, int], RunningDyno] = {}
    for seen in runtime.list():
        if seen.spec.labels.get(KIND_LABEL) == RELEASE_TYPE and seen.state == "running":
            running[(seen.spec.app_id, seen.spec.release_version)] = seen
    limit = platform.settings.build.release_phase_timeout + 600
    with platform.store.read() as tx:
        pending = [
            r for app in tx.list_apps() for r in tx.list_releases(app.id) if r.status == "pending"
        ]
    failed = []
    for release in pending:
        dyno = running.get((release.app_id, int(release.version)))
        age = (platform.clock.now() - release.created_at).total_seconds()
        if dyno is not None and age <= limit and _alive(dyno.spec.labels.get(SUPERVISOR_LABEL)):
            continue  # still supervised (a git push's hook)
        if dyno is not None:
            runtime.stop(dyno.spec.id, timeout=platform.settings.agent.stop_timeout)
        with contextlib.suppress(DockyardError), platform.store.transaction() as tx:
            failed.append(
                tx.finish_release(release.id, status="failed", output=release.output + INTERRUPTED)
            )
        output_path(platform, release.id).unlink(missing_ok=True)
        platform.log(release.app_id, "heroku", "api", f"Release v{release.version} interrupted")
    return failed


def _alive(pid_text: str | None) -> bool:
    if not pid_text or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False  # this process has just started: it supervises nothing yet
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
