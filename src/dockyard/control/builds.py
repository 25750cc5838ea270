"""Builds: list and info, the Build API (``POST /apps/{app}/builds`` from a source tarball), the
build output stream, and the build cache.

A Build API build is recorded ``pending`` and answered at once; a background worker (at most
``[build] max_concurrent_builds`` at a time, daemon threads of the API process) then waits for the
app's build lock (shared with git pushes, so builds of one app never interleave), fetches the
tarball (this API's own ``/sources`` URLs from disk, others over HTTP(S) with a size limit),
checks its ``checksum``, unpacks it safely and builds and releases it like a push. Its output is
appended to a file under the data directory while it runs, which ``output_stream_url`` follows; the
file is removed when the build (and its release phase) is over, and the stream then serves the
output kept on the build record.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard.build.archive import extract_tarball
from dockyard.build.output import BuildOutput
from dockyard.client.download import download
from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.buildpacks import canonical_list
from dockyard.control.context import Platform
from dockyard.control.deploys import build_and_release, build_lock
from dockyard.control.releasephase import FOLLOW_POLL, follow_file
from dockyard.control.sources import local_file, signed_url, verify
from dockyard.domain.requests import RequestContext
from dockyard.errors import BuildError, ConflictError, DockyardError, InvalidError
from dockyard.store.records import Account, App, Build

log = logging.getLogger(__name__)

CHECKSUM = re.compile(r"^SHA256:([0-9a-fA-F]{64})$")
LOCK_POLL = 1.0
"""Seconds between two tries of a busy build lock."""
_slots_lock = threading.Lock()
_semaphores: dict[int, threading.BoundedSemaphore] = {}


def list_builds(platform: Platform, account: Account, app_ref: str) -> tuple[App, list[Build]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.list_builds(app.id)


def get_build(
    platform: Platform, account: Account, app_ref: str, build_id: str
) -> tuple[App, Build]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, tx.get_build(app.id, build_id)


def output_file(platform: Platform, build_id: str) -> Path:
    return platform.settings.build_dir / "outputs" / f"{build_id}.log"


def output_stream_url(platform: Platform, build: Build) -> str:
    """A URL that streams the build's output without an API key (a signed one, like Heroku's)."""
    key = f"{build.app_id}/{build.id}"
    return signed_url(platform, f"/build-output/{key}", "build-output", key)


def _check_checksum(checksum: str | None) -> str | None:
    if checksum is None:
        return None
    match = CHECKSUM.match(checksum.strip())
    if match is None:
        raise InvalidError(
            f"source_blob.checksum {checksum!r} is not SHA256:<64 hex digits>",
            field="source_blob.checksum",
        )
    return match[1].lower()


def _check_url(url: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url.strip(), re.IGNORECASE):
        raise InvalidError(
            "source_blob.url must be the http(s) URL of a tarball (e.g. the get_url of "
            "POST /sources)",
            field="source_blob.url",
        )
    return url.strip()


def create_build(
    platform: Platform,
    account: Account,
    app_ref: str,
    *,
    url: str,
    checksum: str | None = None,
    version: str | None = None,
    buildpacks: Sequence[str] | None = None,
    context: RequestContext | None = None,
) -> tuple[App, Build]:
    """Record a pending build of the tarball at ``url`` and start it in the background."""
    url = _check_url(url)
    digest = _check_checksum(checksum)
    if version is not None and (len(version) > 200 or "\n" in version):
        raise InvalidError("source_blob.version must be one line of at most 200 characters")
    references = None if buildpacks is None else canonical_list(buildpacks, platform.settings)
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        build = tx.create_build(
            app.id,
            user_id=account.id,
            source_version=version,
            buildpacks=None if references is None else [u for u, _ in references],
        )
        audit.record_app_event(
            platform,
            "build.create",
            account,
            context,
            app,
            target=("build", build.id, ""),
            details={"source": "build_api", "version": version},
        )
    path = output_file(platform, build.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    job = _Job(platform, app, account, build, url, digest, path)
    threading.Thread(target=job.run, name=f"build-{app.name}-{build.id[:8]}", daemon=True).start()
    platform.log(app.id, "heroku", "api", f"Build {build.id[:8]} started by {account.email}")
    return app, build


def _slots(platform: Platform) -> threading.BoundedSemaphore:
    size = max(1, platform.settings.build.max_concurrent_builds)
    with _slots_lock:
        return _semaphores.setdefault(size, threading.BoundedSemaphore(size))


class _Job:
    def __init__(
        self,
        platform: Platform,
        app: App,
        account: Account,
        build: Build,
        url: str,
        digest: str | None,
        path: Path,
    ) -> None:
        self.platform = platform
        self.app = app
        self.account = account
        self.build = build
        self.url = url
        self.digest = digest
        self.path = path

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a worker thread must never die with an unhandled error
            log.exception("build %s of %s could not run", self.build.id, self.app.name)

    def _run(self) -> None:
        with self.path.open("a", encoding="utf-8") as stream:

            def write(line: str) -> None:
                stream.write(line + "\n")
                stream.flush()

            output = BuildOutput(write)
            try:
                with _slots(self.platform):
                    self._locked(output)
            except Exception as exc:
                if not isinstance(exc, DockyardError):
                    log.exception("build %s of %s failed", self.build.id, self.app.name)
                try:
                    self._finish_failed(output, exc)
                except Exception:  # the platform may be shutting down; recover() handles it
                    log.exception("could not record the failure of build %s", self.build.id)
            finally:
                self.path.unlink(missing_ok=True)

    def _locked(self, output: BuildOutput) -> None:
        lock = build_lock(self.platform, self.app)
        waited = False
        deadline = time.monotonic() + self.platform.settings.build.compile_timeout
        while True:
            try:
                lock.acquire()
                break
            except ConflictError:
                if time.monotonic() > deadline:
                    raise
                if not waited:
                    output.heading(f"Waiting for another build of {self.app.name} to finish")
                    waited = True
                time.sleep(LOCK_POLL)
        scratch = self.platform.settings.build_dir / f"api-{uuid.uuid4().hex}"
        try:
            scratch.mkdir(parents=True, mode=0o700)
            source = self._fetch(scratch, output)
            build_and_release(
                self.platform,
                self.app,
                source,
                user=self.account,
                commit=self.build.source_version,
                output=output,
                build_id=self.build.id,
                lock=False,
                buildpack_urls=self.build.buildpacks,
            )
        finally:
            lock.release()
            shutil.rmtree(scratch, ignore_errors=True)

    def _fetch(self, scratch: Path, output: BuildOutput) -> Path:
        settings = self.platform.settings
        output.heading("Fetching the source tarball")
        tarball = local_file(self.platform, self.url)
        if tarball is None:
            tarball = scratch / "source.tgz"
            download(self.url, tarball, max_bytes=settings.build.max_source_bytes)
        if self.digest is not None:
            actual = _sha256(tarball)
            if actual != self.digest:
                raise BuildError(
                    f"The source tarball's checksum is SHA256:{actual}, not the SHA256:"
                    f"{self.digest} given in source_blob.checksum — the file changed or the "
                    "checksum is wrong"
                )
        source = scratch / "source"
        extract_tarball(
            tarball,
            source,
            max_bytes=settings.build.max_repo_bytes,
            max_files=settings.build.max_source_files,
            max_depth=settings.build.max_source_depth,
            what="source tarball",
            unwrap=True,
        )
        return source

    def _finish_failed(self, output: BuildOutput, exc: BaseException) -> None:
        with self.platform.store.read() as tx:
            build = tx.get_build(self.app.id, self.build.id)
        if build.status != "pending":
            return  # build_and_release recorded it (or the build succeeded and its release failed)
        message = exc.message if isinstance(exc, DockyardError) else "Internal error while building"
        with contextlib.suppress(OSError):
            output.error(message)
        with self.platform.store.transaction() as tx:
            tx.finish_build(self.build.id, status="failed", output=output.text)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def follow_output(
    platform: Platform, app_id: str, build_id: str, signature: str | None
) -> Iterator[bytes]:
    """The output of a build as it is produced: the output file while the build runs, then (or when
    the build is over) the output kept on its record. The signature and the build are checked
    here; the iterator blocks between chunks (iterate it in a thread)."""
    verify(platform, "build-output", f"{app_id}/{build_id}", signature)
    with platform.store.read() as tx:
        tx.get_build(app_id, build_id)
    return follow_file(
        output_file(platform, build_id), lambda: _recorded(platform, app_id, build_id)
    )


def _recorded(platform: Platform, app_id: str, build_id: str) -> Iterator[bytes]:
    """A build's recorded output once it is over (a git push's build is recorded when it ends)."""
    while True:
        with platform.store.read() as tx:
            build = tx.get_build(app_id, build_id)
        if build.status != "pending":
            yield build.output.encode("utf-8")
            return
        time.sleep(FOLLOW_POLL * 5)


def purge_cache(platform: Platform, account: Account, app_ref: str) -> App:
    """Delete the app's build cache (``DELETE /apps/{app}/build-cache``); refused while it builds."""
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref, "deploy")
    lock = build_lock(platform, app)
    try:
        lock.acquire()
    except ConflictError as exc:
        raise ConflictError(
            f"A build of {app.name} is running; purge the build cache when it has finished"
        ) from exc
    try:
        shutil.rmtree(platform.settings.cache_dir / app.id, ignore_errors=True)
    finally:
        lock.release()
    platform.log(app.id, "heroku", "api", f"Build cache purged by {account.email}")
    return app


def recover(platform: Platform) -> list[str]:
    """Fail the Build API builds the API process was running when it stopped (their output files
    are left behind). Run at start-up of the API, before it accepts builds. Returns their ids."""
    directory = output_file(platform, "x").parent
    if not directory.is_dir():
        return []
    failed = []
    with platform.store.transaction() as tx:
        pending = {
            b.id: b
            for app in tx.list_apps()
            for b in tx.list_builds(app.id)
            if b.status == "pending"
        }
        for path in directory.glob("*.log"):
            build = pending.get(path.stem)
            if build is not None:
                text = path.read_text(encoding="utf-8", errors="replace")
                note = " !     The build was interrupted (the API restarted); start it again\n"
                tx.finish_build(build.id, status="failed", output=text + note)
                failed.append(build.id)
            path.unlink(missing_ok=True)
    return failed
