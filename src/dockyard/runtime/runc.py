"""``RuncRuntime``: every dyno an OCI container run by ``runc``, sandboxed (see ``bundle.py`` for the rules).

One bundle per dyno in ``<dynos dir>/<dyno id>/`` (mode 0700)::

    config.json   the OCI configuration (mode 0600: it holds the config vars)
    dyno.json     our record: the spec, the container's init pid and its start time, $PORT, address
    output.log    the dyno's stdout and stderr (runc hands the file to the container; no helper process)

and its mount points in ``<run dir>/dynos/<dyno id>/`` (``/run/dockyard``: gone at a reboot like the container;
runc's init reaches them from inside the dyno's user namespace, so they must not sit below a private directory)::

    hosts         the dyno's /etc/hosts
    scratch/      a tmpfs capped at runtime.scratch_size_mb: upper/ and work/ of the /app overlay
    run/          a 1 MB tmpfs, the dyno's /run; its launcher writes the exit status in run/dyno/
    app/          the /app overlay: the dyno's writable scratch over an "owner layer" (the slug's directories,
                  owned by the dyno's user, so it can create files anywhere in /app as on Heroku) over
                  the release's slug (a read-only SquashFS mount shared by every dyno of that slug)

The container's PID 1 is ``bash`` running ``bundle.LAUNCHER``: it sources ``.profile.d/*.sh`` and ``.profile``,
runs the Procfile command in a subshell (so an ``exit`` in it ends the command, not the launcher), reaps orphans,
and writes the command's exit status before it exits. Because PID 1 of a PID namespace ignores signals it has no
handler for, ``runc kill --all TERM`` stops the app's processes and not the launcher, which then records how
they ended.

State survives the agent: a new agent lists ``dyno.json`` records and checks each container's init process in
``/proc`` (pid plus start time, so a reused pid never looks like a dyno). ``stop`` sends SIGTERM to every process
(``runc kill --all``), SIGKILL after the timeout, then ``runc delete``, unmounts and removes the bundle.

``prepare`` does a start ahead but for the command (``runc create``: the container's init waits on runc's exec
FIFO); ``start`` of that spec then only opens the FIFO, as ``runc start`` would, and the command runs.

Attached one-off dynos (``start_attached``) get a terminal: ``process.terminal`` and ``--console-socket``, over
which runc's init sends the pty master. Memory limits: ``cgroups.memory_limits``. Each dyno has a network
namespace of its own: with the host's ``DynoNetwork`` a veth link and an address (``RunningDyno.address`` is
``<address>:$PORT``), else only loopback (``listening()`` reads the dyno's own socket table).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import select
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from dockyard._util import proc
from dockyard.errors import CommandError, DockyardError, DynoError, SlugError
from dockyard.runtime import bundle, cgroups, console, seccomp
from dockyard.runtime.base import DynoSpec, RunningDyno
from dockyard.runtime.cgroups import memory_limits, swap_active
from dockyard.runtime.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount, runc_error, unmount
from dockyard.runtime.stack import DYNO_UID, StackImages
from dockyard.runtime.uids import UidRanges
from dockyard.settings import Settings
from dockyard.slug.mount import SlugMounter
from dockyard.slug.store import SlugStore

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STATE_FILE = "dyno.json"
OUTPUT_FILE = "output.log"
CONFIG_FILE = "config.json"
RUNC_LOG = "runc.log"
EXIT_FILE = "exit-status"
PORT_BASE = 5000
PORT_SPAN = 1000
"""``$PORT`` is 5000-5999 (derived from the dyno id): each dyno has its own network namespace."""
RUNC_TIMEOUT = 60.0
_POLL = 0.02
_KILL_WAIT = 10.0
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MOUNT_UNSAFE = re.compile(r"[,:\s\\]")
TCP_LISTEN = "0A"


class NetworkAttachment(Protocol):
    @property
    def netns_path(self) -> Path:
        """The network namespace the dyno's container joins."""
        ...

    @property
    def address(self) -> str:
        """The dyno's IP address, where the router reaches its ``$PORT``."""
        ...


class Network(Protocol):
    """What the runtime needs from the per-dyno network (``network.DynoNetwork``)."""

    def attach(self, dyno_id: str, app_id: str, *, port: int | None) -> NetworkAttachment:
        """Create the dyno's namespace, link and firewall entries; ``port`` is the one the router may open."""
        ...

    def detach(self, dyno_id: str) -> None:
        """Remove the dyno's namespace, link and rules; unknown ids are ignored."""
        ...


def default_network(settings: Settings) -> Network:
    """The host's dyno network (``network.DynoNetwork``), its firewall table set up (idempotent)."""
    from dockyard.runtime.network import DynoNetwork

    network = DynoNetwork(settings)
    try:
        network.setup_host()
    except DockyardError as exc:
        raise DynoError(
            f"cannot set up the dyno network ({exc.message}) — the runc runtime needs nftables and iproute2 "
            "(scripts/bootstrap installs them)"
        ) from exc
    return network


@dataclass(frozen=True)
class _State:
    spec: DynoSpec
    pid: int
    """The container's init process on the host; 0 while ``runc run`` has not answered yet."""
    pid_start: int
    port: int
    address: str
    started_at: datetime
    host_uid: int
    created: bool = False
    """Prepared: the container exists (``runc create``) and its init waits for ``start``."""

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "spec": self.spec.to_json(), "started_at": self.started_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _State:
        return cls(
            spec=DynoSpec.from_json(data["spec"]),
            pid=int(data["pid"]),
            pid_start=int(data["pid_start"]),
            port=int(data["port"]),
            address=str(data.get("address", "")),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            host_uid=int(data["host_uid"]),
            created=bool(data.get("created", False)),
        )


def _proc_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks after boot), or None when it is gone or a zombie."""
    try:  # os.open rather than pathlib: read for every dyno every round
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def _alive(state: _State) -> bool:
    return state.pid > 0 and _proc_start(state.pid) == state.pid_start


def dyno_port(dyno_id: str) -> int:
    digest = hashlib.sha256(dyno_id.encode()).digest()
    return PORT_BASE + int.from_bytes(digest[:4], "big") % PORT_SPAN


def listening_ports(pid: int) -> set[int]:
    """TCP ports with a listening socket in the network namespace of ``pid``."""
    ports = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


def user_namespaces_available() -> tuple[bool, str]:
    """Whether this host lets us create user namespaces, and why not."""
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text(encoding="ascii"))
    except (OSError, ValueError):
        limit = 1
    if limit == 0:
        return False, "user.max_user_namespaces is 0"
    try:
        result = proc.run(["unshare", "--user", "true"], check=False, timeout=10)
    except CommandError as exc:
        return False, exc.message
    if result.returncode != 0:
        return False, result.stderr.decode("utf-8", "replace").strip() or "unshare --user failed"
    return True, ""


def _runc_argv(root: Path, log_file: Path | None = None) -> list[str | Path]:
    logs: list[str | Path] = ["--log", log_file, "--log-format", "json"] if log_file else []
    return ["runc", "--root", root, *logs]


class _Child(Protocol):
    pid: int

    def wait(self, timeout: float | None = None) -> int: ...


def _readable(fd: int, timeout: float) -> bool:
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    return bool(waiter.poll(max(0.0, timeout) * 1000))


def _wait_exit(child: _Child, timeout: float) -> int:
    """``child.wait(timeout)`` without its polling: with a timeout, ``Popen.wait`` sleeps in doubling
    steps (0.5 ms up to 50 ms), which kept the caller of ``runc run`` waiting up to 50 ms after runc
    had ended. A pidfd turns readable the moment the child exits."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except OSError:  # a kernel before 5.3
        return child.wait(timeout=timeout)
    try:
        if not _readable(pidfd, timeout):
            raise TimeoutError(f"process {child.pid} still runs after {timeout:g} s")
    finally:
        os.close(pidfd)
    return child.wait()


class RuncRuntime:
    """Sandboxed dynos run by runc; see the module docstring.

    ``network``: ``"host"`` (the host's ``DynoNetwork``, per ``[network]`` settings), ``"none"`` (loopback only:
    tests and diagnostics), or a ``Network`` to use."""

    name = "runc"
    sandboxed = True

    def __init__(
        self,
        settings: Settings,
        *,
        mounter: SlugMounter | None = None,
        network: Network | Literal["host", "none"] = "host",
        stacks: StackImages | None = None,
    ) -> None:
        if os.geteuid() != 0:
            raise DynoError(
                "the runc runtime needs root (it mounts slugs and creates namespaces and cgroups) — run "
                'Dockyard as root, or set agent.runtime = "process" (not a sandbox)'
            )
        options = settings.runtime
        self.settings = settings
        self.root = settings.dynos_dir
        self.mounter = mounter or SlugMounter(
            settings.data_dir / "mounts", SlugStore(settings.slugs_dir), loop=True
        )
        self.stacks = stacks or StackImages(settings)
        self.network: Network | None
        if network == "host":
            self.network = default_network(settings)
        elif network == "none":
            self.network = None
            log.warning("dynos get a network namespace with only loopback: $PORT is not reachable")
        else:
            self.network = network
        self.run_root = Path(options.run_dir)
        self.runc_root = self.run_root / "runc"
        self.owners_root = settings.data_dir / "runtime" / "owners"
        self.uids = UidRanges(
            settings.data_dir / "runtime" / "uid-slots.json", options.uid_base, options.uid_slots
        )
        self.user_namespaces = self._choose_user_namespaces(options.user_namespaces)
        self.swap_limit = cgroups.memsw_supported()
        self.seccomp = seccomp.profile()
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[tuple[int, int, int], _State]] = {}
        self._slug_lock = threading.Lock()
        """Held from mounting a slug until its dyno is recorded, and while dropping unused slugs."""

    @staticmethod
    def _choose_user_namespaces(mode: str) -> bool:
        if mode == "off":
            log.warning(
                "user namespaces are switched off (runtime.user_namespaces = off): each app's dynos run "
                "as an unprivileged host uid of the app's own range, without a user namespace"
            )
            return False
        available, why = user_namespaces_available()
        if available:
            log.info(
                "dynos run in user namespaces: each app's uids map to its own unprivileged host range"
            )
            return True
        if mode == "on":
            raise DynoError(
                f"runtime.user_namespaces is on but this host cannot create user namespaces ({why}) — "
                "enable them (sysctl user.max_user_namespaces) or set runtime.user_namespaces = auto"
            )
        log.warning(
            "user namespaces are not available on this host (%s): dynos run without one, as an "
            "unprivileged host uid of their app's own range",
            why,
        )
        return False

    # -- the Runtime protocol ------------------------------------------------------------------

    def start(self, spec: DynoSpec) -> RunningDyno:
        """Start the dyno: a prepared one (same spec, see ``prepare``) by letting its waiting container run
        the command, any other from scratch."""
        state = self._read(self._dir(spec.id))
        if state is not None and state.created and state.spec == spec:
            return self._start_prepared(state)
        return self._start_new(spec, None)[0]

    def prepare(self, spec: DynoSpec) -> None:
        """Do now all a start of ``spec`` needs but the command: mounts, network, bundle, cgroup and the
        container, its init waiting (``runc create``); ``start(spec)`` then only lets it run the command.
        A prepared dyno holds memory (runc's waiting init: about 10 MB), is not in ``list()`` (it is in
        ``prepared()``) and is discarded by ``stop``, or by ``release_unused`` when its slug is unused."""
        self._start_new(spec, None, create=True)

    def prepared(self) -> list[DynoSpec]:
        """The specs of the prepared dynos (``prepare``) not started yet."""
        return [state.spec for state in self._records() if state.created]

    def _start_prepared(self, state: _State) -> RunningDyno:
        spec, directory = state.spec, self._dir(state.spec.id)
        if not _alive(state):  # its waiting init was killed: start afresh
            self._teardown(spec.id, directory)
            return self._start_new(spec, None)[0]
        try:
            self._let_run(spec.id)
        except (OSError, DockyardError) as exc:
            self._teardown(spec.id, directory)
            message = exc.message if isinstance(exc, DockyardError) else str(exc)
            raise DynoError(f"cannot start {spec.name} of {spec.app_name}: {message}") from exc
        state = replace(state, created=False, started_at=datetime.now(UTC))
        self._write(directory, state)
        return self._observe(state)

    def _start_new(
        self, spec: DynoSpec, terminal: console.Console | None, *, create: bool = False
    ) -> tuple[RunningDyno, int | None]:
        directory = self._dir(spec.id)
        exists = DynoError(f"a dyno with id {spec.id} already exists on this host")
        with self._slug_lock:
            if directory.exists():
                raise exists
            try:
                return self._start(spec, directory, terminal, create=create)
            except FileExistsError as exc:  # another process took the id: leave its dyno alone
                raise exists from exc
            except (OSError, DockyardError) as exc:
                self._teardown(spec.id, directory)
                message = (
                    exc.message if isinstance(exc, DockyardError) else exc.strerror or str(exc)
                )
                raise DynoError(f"cannot start {spec.name} of {spec.app_name}: {message}") from exc

    def stop(self, dyno_id: str, *, timeout: float) -> None:
        directory = self._dir(dyno_id)
        if not directory.is_dir():
            return
        state = self._read(directory)
        if state is not None:
            state = self._with_pid(state)
        if state is not None and _alive(state) and not state.created:  # a prepared one ran nothing
            self._runc("kill", "--all", dyno_id, "TERM")
            if not self._wait_gone(state, timeout):
                log.info("dyno %s ignored SIGTERM for %g s; sending SIGKILL", dyno_id, timeout)
                self._runc("kill", "--all", dyno_id, "KILL")
                if not self._wait_gone(state, _KILL_WAIT):
                    raise DynoError(
                        f"dyno {state.spec.name} ({dyno_id}) still runs after SIGKILL; a process may be "
                        "stuck in the kernel — check it with runc list"
                    )
        self._teardown(dyno_id, directory)

    def list(self) -> list[RunningDyno]:
        return [self._observe(state) for state in self._records() if not state.created]

    def _records(self) -> Sequence[_State]:
        names = sorted(os.listdir(self.root)) if self.root.is_dir() else []
        found = (self._read(self.root / name) for name in names)
        return [self._with_pid(state) for state in found if state is not None]

    def release_unused(self, digests_in_use: set[str]) -> None:
        """Drop slug mounts and owner layers no dyno uses, and prepared dynos of other slugs."""
        for spec in self.prepared():
            if spec.slug_digest not in digests_in_use:
                self.stop(spec.id, timeout=0)
        with self._slug_lock:
            in_use = set(digests_in_use) | {s.spec.slug_digest for s in self._records()}
            for digest in sorted(self.mounter.mounted() - in_use):
                try:
                    self.mounter.unmount(digest)
                except SlugError as exc:
                    log.warning("%s", exc.message)
            if self.owners_root.is_dir():
                for layer in self.owners_root.iterdir():
                    if layer.name.partition("-")[0] not in in_use:
                        shutil.rmtree(layer, ignore_errors=True)

    # -- beyond the protocol -------------------------------------------------------------------

    def start_attached(
        self, spec: DynoSpec, *, tty: bool, size: tuple[int, int] | None
    ) -> tuple[RunningDyno, int]:
        """Start a dyno on a terminal of its own (``dockyard run``); returns the terminal's master side,
        which the caller owns. runc's init opens a pty in the dyno's own ``/dev/pts``, makes the slave the
        launcher's stdio and controlling terminal and sends the master over ``--console-socket``.
        ``size``: ``(lines, columns)``; with ``tty`` echo and ``\\n`` → ``\\r\\n``, without (``--no-tty``)
        bytes pass as they are (Ctrl-D still ends the input)."""
        dyno, master = self._start_new(spec, console.Console(tty, size))
        if master is None:  # pragma: no cover - _start always answers with a master here
            raise DynoError(f"runc gave no terminal for {spec.name} of {spec.app_name}")
        return dyno, master

    def listening(self, dyno_id: str) -> bool:
        """Whether the dyno listens on its ``$PORT`` (read from its own socket table, so it works before
        any network is attached)."""
        state = self._read(self._dir(dyno_id))
        return state is not None and _alive(state) and state.port in listening_ports(state.pid)

    def usage(self, dyno_id: str) -> cgroups.Usage | None:
        """Memory and process figures of a dyno (for R14/R15), or None when it has no cgroup. For a dyno
        whose processes have all ended (the kernel killed it at its hard line: R15) ``memory_bytes`` is the
        most its cgroup ever held, what the R15 line reports, rather than the nothing it holds now."""
        state = self._read(self._dir(dyno_id))
        ended = state is not None and not _alive(self._with_pid(state))
        return cgroups.read_usage(dyno_id, peak=ended)

    # -- starting ------------------------------------------------------------------------------

    def _start(
        self, spec: DynoSpec, directory: Path, terminal: console.Console | None, *, create: bool
    ) -> tuple[RunningDyno, int | None]:
        limits = memory_limits(cgroups.limits_for(cgroups.size_of(spec.size)), swap=swap_active())
        stack_root = self.stacks.mount(self.stacks.require())
        slug_dir = self.mounter.mount(spec.slug_digest)
        host_base = self.uids.host_base(spec.app_id)
        host_uid = host_base + DYNO_UID
        owners = self._owner_layer(slug_dir, spec.slug_digest, host_uid)
        self.root.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)
        port = dyno_port(spec.id)
        state = _State(spec, 0, 0, port, "", datetime.now(UTC), host_uid)
        self._write(
            directory, state
        )  # before runc runs: a crash from here on leaves a record to clean
        mounts = self._mounts(spec.id)
        self._make_reachable(mounts)
        self._prepare_app(mounts, slug_dir, owners, host_uid)
        netns = None
        if self.network is not None:
            web = spec.process_type == "web"
            attachment = self.network.attach(spec.id, spec.app_id, port=port if web else None)
            netns = str(attachment.netns_path)
            state = replace(state, address=f"{attachment.address}:{port}")
        (mounts / "hosts").write_text(bundle.hosts_file_text(spec.name), encoding="utf-8")
        env = {"PATH": DEFAULT_PATH, "LANG": "en_US.UTF-8", **spec.env}
        env.update(HOME="/app", PORT=str(port), DYNO=spec.name)
        config = bundle.config(
            bundle.BundleSpec(
                hostname=spec.name,
                root=stack_root,
                app_dir=mounts / "app",
                hosts_file=mounts / "hosts",
                run_dir=mounts / "run",
                args=bundle.launcher_args(spec.command),
                env=env,
                uid=DYNO_UID if self.user_namespaces else host_uid,
                gid=DYNO_UID if self.user_namespaces else host_uid,
                limits=limits,
                cgroups_path=cgroups.cgroup_path(spec.id),
                seccomp=self.seccomp,
                tmp_size_mb=self.settings.runtime.tmp_size_mb,
                nofile=self.settings.runtime.nofile,
                id_map=bundle.IdMap(host_base) if self.user_namespaces else None,
                netns_path=netns,
                swap_limit=self.swap_limit,
                annotations={
                    "dockyard.app": spec.app_name,
                    "dockyard.dyno": spec.name,
                    "dockyard.release": str(spec.release_version),
                },
            )
        )
        if terminal is not None:
            config["process"]["terminal"] = True
            if terminal.size is not None:
                lines, columns = terminal.size
                config["process"]["consoleSize"] = {"height": lines, "width": columns}
        fd = os.open(directory / CONFIG_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        pid, master = self._run(spec, directory, terminal, create=create)
        try:
            started = _proc_start(pid)
            state = replace(
                state,
                pid=pid,
                pid_start=started or 0,
                started_at=datetime.now(UTC),
                created=create,
            )
            self._write(directory, state)
            return self._observe(state), master
        except BaseException:
            if master is not None:
                os.close(master)
            raise

    def _mounts(self, dyno_id: str) -> Path:
        return self.run_root / "dynos" / dyno_id

    def _make_reachable(self, directory: Path) -> None:
        """runc's init mounts the bind sources from inside the dyno's user namespace, as an unprivileged
        uid: every directory above them must be searchable by others."""
        for made in (self.run_root, directory.parent):
            made.mkdir(parents=True, exist_ok=True)
            made.chmod(0o711)
        directory.mkdir(mode=0o711)
        if not self.user_namespaces:
            return
        for parent in directory.parents:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                raise DynoError(
                    f"dynos cannot reach {directory}: {parent} is not searchable by other users — "
                    f"run chmod o+x {parent}, or set runtime.run_dir elsewhere"
                )

    def _prepare_app(self, mounts: Path, slug_dir: Path, owners: Path, host_uid: int) -> None:
        """The dyno's /app (a size-capped tmpfs holding the overlay's upper layer over owners and slug), and its
        /run (a small tmpfs apart, so a full /app never keeps the launcher from writing the exit status)."""
        scratch = mounts / "scratch"
        app = mounts / "app"
        for path in (scratch, app, owners, slug_dir):
            if _MOUNT_UNSAFE.search(str(path)):
                raise DynoError(
                    f"the path {path} holds a character mount options cannot carry (, : space \\)"
                )
        scratch.mkdir(mode=0o711)
        app.mkdir(mode=0o755)
        size, flags = self.settings.runtime.scratch_size_mb, MS_NOSUID | MS_NODEV
        mount("tmpfs", scratch, "tmpfs", flags, f"size={size}m,mode=0711", what="the /app scratch")
        for name in ("upper", "work"):
            (scratch / name).mkdir(mode=0o755)
        os.chown(scratch / "upper", host_uid, host_uid)
        run = mounts / "run"
        run.mkdir(mode=0o755)
        mount("tmpfs", run, "tmpfs", flags | MS_NOEXEC, "size=1m,mode=0755", what="the dyno's /run")
        (run / "dyno").mkdir(mode=0o755)
        os.chown(run / "dyno", host_uid, host_uid)
        layers = f"lowerdir={owners}:{slug_dir},upperdir={scratch}/upper,workdir={scratch}/work"
        mount("overlay", app, "overlay", flags, layers, what="the dyno's /app overlay")

    def _owner_layer(self, slug_dir: Path, digest: str, host_uid: int) -> Path:
        """The slug's directory tree, empty and owned by ``host_uid``: laid between the slug and the dyno's
        writable layer it makes every directory of /app the dyno's own (files stay read-only copies).
        Built once per slug and app."""
        target = self.owners_root / f"{digest}-{host_uid}"
        if target.is_dir():
            return target
        self.owners_root.mkdir(parents=True, exist_ok=True)
        partial = self.owners_root / f".{target.name}.{uuid.uuid4().hex}.partial"
        try:
            for dirpath, _dirnames, _files in os.walk(slug_dir):
                source = Path(dirpath)
                copy = partial / source.relative_to(slug_dir)
                mode = stat.S_IMODE(os.lstat(source).st_mode) & 0o1777 | 0o700
                copy.mkdir(mode=0o700)
                os.chmod(copy, mode)
                os.chown(copy, host_uid, host_uid)
            os.replace(partial, target)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return target

    def _run(
        self, spec: DynoSpec, directory: Path, terminal: console.Console | None, *, create: bool
    ) -> tuple[int, int | None]:
        """``runc run --detach`` (``runc create`` to prepare): the container keeps runc's stdout and stderr
        (the output file), or, with a ``terminal``, gets a terminal whose master comes back over the
        console socket. Returns the container's init pid and that master (None without a terminal)."""
        argv = [
            *_runc_argv(self.runc_root, directory / RUNC_LOG),
            *(["create"] if create else ["run", "--detach"]),
            "--bundle",
            directory,
            "--pid-file",
            directory / "pid",
        ]
        listener = None
        if terminal is not None:
            socket_path = self.run_root / f"console-{uuid.uuid4().hex[:16]}.sock"
            listener = console.listen(socket_path)
            argv += ["--console-socket", socket_path]
        master = None
        try:
            fd = os.open(directory / OUTPUT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                child = proc.spawn([*argv, spec.id], stdout=fd, stderr=fd)
            finally:
                os.close(fd)
            if listener is not None and terminal is not None:
                master = console.receive_console(listener, child.poll, RUNC_TIMEOUT)
            try:
                code = _wait_exit(child, RUNC_TIMEOUT)
            except Exception as exc:
                child.kill()
                child.wait()
                raise DynoError(
                    f"runc did not start the container within {RUNC_TIMEOUT:g} s"
                ) from exc
            if code != 0:
                raise DynoError(
                    runc_error(directory / RUNC_LOG) or f"runc exited with status {code}"
                )
            if terminal is not None:
                if master is None:
                    raise DynoError("runc started the container but sent no terminal")
                console.set_terminal(master, tty=terminal.tty, size=terminal.size)
            try:
                pid = int((directory / "pid").read_text(encoding="ascii").strip())
            except (OSError, ValueError) as exc:
                raise DynoError(f"runc gave no pid for the container: {exc}") from exc
        except BaseException:
            if master is not None:
                os.close(master)
            raise
        finally:
            if listener is not None:
                console.close_listener(listener)
        return pid, master

    def _let_run(self, dyno_id: str) -> None:
        """What ``runc start`` does, without starting a Go program (5 ms on a quiet machine, 20 under load):
        open the exec FIFO the created container's init waits on, read until the init has run the command
        (its end of the FIFO closes on exec), remove the FIFO (runc reports the container running from
        then on). ``runc start`` itself when the FIFO is not where runc keeps it."""
        fifo = self.runc_root / dyno_id / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            proc.run([*_runc_argv(self.runc_root), "start", dyno_id], timeout=RUNC_TIMEOUT)
            return
        received, deadline = b"", time.monotonic() + RUNC_TIMEOUT
        try:
            while _readable(fd, deadline - time.monotonic()):
                with contextlib.suppress(BlockingIOError):
                    if not (chunk := os.read(fd, 64)):
                        break
                    received += chunk
        finally:
            os.close(fd)
        if not received or time.monotonic() >= deadline:
            raise DynoError(f"its container ended, or did not start within {RUNC_TIMEOUT:g} s")
        fifo.unlink()

    # -- stopping ------------------------------------------------------------------------------

    def _teardown(self, dyno_id: str, directory: Path) -> None:
        """Remove everything a dyno left: its container, mounts, network and bundle (each step tolerant)."""
        self._runc("delete", "--force", dyno_id)
        mounts = self._mounts(dyno_id)
        for name in ("app", "scratch", "run"):
            unmount(mounts / name)
        if self.network is not None:
            try:
                self.network.detach(dyno_id)
            except DockyardError as exc:
                log.warning("could not detach the network of dyno %s: %s", dyno_id, exc.message)
        with self._lock:
            shutil.rmtree(mounts, ignore_errors=True)
            shutil.rmtree(directory, ignore_errors=True)
        self._parsed.pop(os.path.join(directory, STATE_FILE), None)

    def _wait_gone(self, state: _State, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _alive(state):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    # -- records -------------------------------------------------------------------------------

    def _dir(self, dyno_id: str) -> Path:
        if not _ID.match(dyno_id):
            raise DynoError(f"{dyno_id!r} is not a valid dyno id")
        return self.root / dyno_id

    def _read(self, directory: Path) -> _State | None:
        """The dyno's record, parsed again only when its file changed (``list`` runs every round)."""
        path = os.path.join(directory, STATE_FILE)
        try:
            info = os.stat(path)
            key = (info.st_ino, info.st_size, info.st_mtime_ns)
            if (cached := self._parsed.get(path)) is not None and cached[0] == key:
                return cached[1]
            with open(path, encoding="utf-8") as handle:
                state = _State.from_json(json.load(handle))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        self._parsed[path] = (key, state)
        return state

    def _write(self, directory: Path, state: _State) -> None:
        path = directory / STATE_FILE
        partial = path.with_name(f".{STATE_FILE}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds config vars
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state.to_json(), handle)
        # Atomic for an agent that dies mid-write; no fsync: a host crash takes the containers with it.
        os.replace(partial, path)

    def _with_pid(self, state: _State) -> _State:
        """A record written before ``runc run`` answered (the agent died in between): ask runc."""
        if state.pid > 0:
            return state
        result = self._runc("state", state.spec.id)
        try:
            pid = int(json.loads(result)["pid"]) if result else 0
        except (ValueError, KeyError, TypeError):
            pid = 0
        started = _proc_start(pid) if pid > 0 else None
        if started is None:
            return state
        state = replace(state, pid=pid, pid_start=started)
        directory = self.root / state.spec.id
        if directory.is_dir():
            self._write(directory, state)
        return state

    def _observe(self, state: _State) -> RunningDyno:
        running = _alive(state)
        return RunningDyno(
            spec=state.spec,
            port=state.port,
            address=state.address,
            started_at=state.started_at,
            state="running" if running else "exited",
            exit_code=None if running else self._exit_code(state.spec.id),
            output_path=self.root / state.spec.id / OUTPUT_FILE,
        )

    def _exit_code(self, dyno_id: str) -> int | None:
        """What the launcher wrote (a file the dyno could also write: read without following links)."""
        path = self._mounts(dyno_id) / "run" / "dyno" / EXIT_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            text = os.read(fd, 16).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        return int(text) if text.isdigit() and int(text) < 256 else None

    # -- runc ----------------------------------------------------------------------------------

    def _runc(self, *args: str) -> str:
        """Run a runc command whose failure only means "nothing to do" (already stopped, gone)."""
        try:
            result = proc.run(
                [*_runc_argv(self.runc_root), *args], check=False, timeout=RUNC_TIMEOUT
            )
        except CommandError as exc:
            log.warning("runc %s: %s", args[0], exc.message)
            return ""
        return result.text if result.returncode == 0 else ""
