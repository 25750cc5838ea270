"""One-shot containers for build steps: the ``runc`` build sandbox.

Every command of a build — a classic buildpack's ``bin/detect``, ``bin/compile`` and ``bin/release``, the
sourcing of its ``export`` file, the built-in buildpacks' pip, uv, npm and tree copies — runs in a runc
container of its own that ends with it. The container is a dyno's (``bundle.config``: own pid, mount, uts,
ipc, cgroup and network namespaces, a user namespace where the host allows it, no capabilities,
``no_new_privs``, the dyno seccomp profile, masked ``/proc`` paths, a size-capped ``/tmp``), with these
differences:

- root: the **build** stack image (``<stack>-build``: the run stack plus compilers, headers and pip), read-only;
- the build's scratch directory (build, cache and env directories, ``TMPDIR``, the buildpacks' private
  copies) at **the same path as on the host**, read-write, its env directory read-only; no ``/app``;
- ``/etc/resolv.conf`` naming ``build.nameservers``, and the host's CA bundle (``build.ca_certificates``)
  over the stack's, so registries behind a TLS-inspecting proxy work;
- limits on the build's cgroup ``/dockyard-build/<build id>`` (``buildcgroup.py``) — memory (no swap),
  processes and threads, CPU — shared by all its commands (each command's container is a child of it), plus
  ``RLIMIT_FSIZE``;
- a network namespace from the dyno network (``DynoNetwork``, lease ``build-<build id>``): egress follows
  ``network.egress``; the host, the platform's ports, private addresses and dynos are out of reach.

Per build, ``<run dir>/builds/<build id>/`` holds::

    lock          flock'ed while the build runs; a directory whose lock is free is a dead build's (swept)
    scratch/      the build's scratch directory bind-mounted, so that runc's init reaches it from inside the
                  user namespace (the data directory may lie below a directory closed to other users)
    layer/        a 1 MB tmpfs, the upper layer of the root overlay: only the mount points' directories
    rootfs/       the container root: the build stack image under that layer, read-only in the container
    hosts, resolv.conf
    c<n>/         the n-th command's bundle (config.json, runc's log), removed when the command ends

A command runs as ``runc run`` in the foreground (its stdout and stderr are the command's; streamed, its
stderr goes to its stdout); a command that is stopped (timeout, a limit) is killed with ``runc delete
--force``, which kills every process of its container. When the container's first process ends the kernel
ends the others, so nothing a command starts outlives it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dockyard._util import proc
from dockyard.errors import CommandError, DockyardError, DynoError
from dockyard.runtime import bundle, cgroups, seccomp
from dockyard.runtime.buildcgroup import CGROUP_PARENT, BuildCgroup
from dockyard.runtime.mounts import MS_BIND, MS_NODEV, MS_NOSUID, mount, runc_error, unmount
from dockyard.runtime.nftables import FORBIDDEN_DESTINATIONS
from dockyard.runtime.runc import Network, user_namespaces_available
from dockyard.runtime.stack import DYNO_UID, StackImage, StackImages, stack_name
from dockyard.runtime.uids import UidRanges
from dockyard.settings import Settings
from dockyard.slug.mount import mount_points

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTNAME = "build"
BUILD_UID = DYNO_UID
"""The build user inside the container: the stack's ``dyno`` user."""
LEASE_PREFIX = "build-"
FALLBACK_NAMESERVERS = ("1.1.1.1", "8.8.8.8")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PROBE_APP = "dockyard-stack-probe"
"""The uid range probes of the stack image run in (a range of their own, not an app's)."""
PROBE_MEMORY = 256 << 20
PROBE_PROCESSES = 64
RUNC_TIMEOUT = 60.0
_ID = re.compile(r"^[0-9a-f]{8,32}$")
_MOUNT_UNSAFE = re.compile(r"[,:\s\\]")


def lease_id(build_id: str) -> str:
    """The id under which a build holds its address in the dyno network."""
    return LEASE_PREFIX + build_id


def is_build_lease(lease: str) -> bool:
    """Whether a lease of the dyno network is a build's (the agent must not take it for a stale dyno's)."""
    return lease.startswith(LEASE_PREFIX)


def reachable_nameservers(setting: str, resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The DNS servers of builds: ``setting`` (spaces or commas between addresses) when given; else the
    host's own IPv4 nameservers that the dyno firewall lets builds reach; else ``FALLBACK_NAMESERVERS``."""
    given = [item for item in re.split(r"[\s,]+", setting) if item]
    if given:
        for item in given:
            try:
                ipaddress.ip_address(item)
            except ValueError as exc:
                raise DynoError(
                    f"setting build.nameservers: {item!r} is not an IP address — write e.g. "
                    '"1.1.1.1 8.8.8.8"'
                ) from exc
        return given
    forbidden = [ipaddress.IPv4Network(net) for net in FORBIDDEN_DESTINATIONS]
    found = []
    with contextlib.suppress(OSError):
        for line in resolv_conf.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[0] != "nameserver":
                continue
            try:
                address = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if address.version == 4 and not any(address in net for net in forbidden):
                found.append(str(address))
    return found or list(FALLBACK_NAMESERVERS)


# -- the sandbox -------------------------------------------------------------------------------------


class RuncBuildContainers:
    """The host's build sandbox: the build stack image, and one ``RuncBuildContainer`` per build.

    ``network``: ``"host"`` (the dyno network of ``[network]``), ``"none"`` (loopback only: builds cannot
    download anything), or a ``Network``."""

    name = "runc"

    def __init__(
        self,
        settings: Settings,
        *,
        network: Network | Literal["host", "none"] = "host",
        stacks: StackImages | None = None,
    ) -> None:
        self.settings = settings
        self.stacks = stacks or StackImages(settings)
        self._network_choice = network
        self._network: Network | None = None
        self.run_root = Path(settings.runtime.run_dir) / "builds"
        self.runc_root = self.run_root / "runc"
        options = settings.runtime
        self.uids = UidRanges(
            settings.data_dir / "runtime" / "uid-slots.json", options.uid_base, options.uid_slots
        )
        self._user_namespaces: bool | None = None
        self._seccomp: dict[str, Any] | None = None

    # -- what builds need to know ------------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why builds cannot run in containers on this host, or None."""
        if os.geteuid() != 0:
            return "Dockyard does not run as root"
        if shutil.which("runc") is None:
            return "runc is not installed (scripts/bootstrap installs it)"
        try:
            image = self.stacks.current("build")
        except DynoError as exc:
            return exc.message
        if image is None:
            name = stack_name(self.settings, "build")
            return (
                f"the build stack image {name} is not built on this host — build it with: "
                "dockyard stack:build --variant build"
            )
        return None

    @property
    def label(self) -> str:
        """The build stack image, e.g. ``dockyard-12-build-20260601-3f2a9c1b7d0e``."""
        return self.image().label

    def image(self) -> StackImage:
        return self.stacks.require("build")

    def user_namespaces(self) -> bool:
        if self._user_namespaces is None:
            if self.settings.runtime.user_namespaces == "off":
                self._user_namespaces = False
            else:
                self._user_namespaces, why = user_namespaces_available()
                if not self._user_namespaces:
                    log.warning("builds run without a user namespace: %s", why)
        return self._user_namespaces

    def seccomp(self) -> dict[str, Any]:
        if self._seccomp is None:
            self._seccomp = seccomp.profile()
        return self._seccomp

    def network(self) -> Network | None:
        if self._network is None and self._network_choice != "none":
            if self._network_choice == "host":
                from dockyard.runtime.network import DynoNetwork

                network = DynoNetwork(self.settings)
                try:
                    with self._host_lock():  # two first builds must not each replace the table
                        if not network.nftables.exists():
                            network.setup_host()
                except DockyardError as exc:
                    raise DynoError(
                        f"cannot set up the network of builds ({exc.message}) — the runc build sandbox "
                        "needs nftables and iproute2 (scripts/bootstrap installs them)"
                    ) from exc
                self._network = network
            else:
                self._network = self._network_choice
        return self._network

    @contextlib.contextmanager
    def _host_lock(self) -> Iterator[None]:
        self.run_root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_root / "network.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def host_ids(self, app_id: str) -> tuple[int, bundle.IdMap | None, int]:
        """``(user inside the container, id map, user on the host)`` for builds of ``app_id``: the app's own
        uid range, as for its dynos."""
        base = self.uids.host_base(app_id)
        if self.user_namespaces():
            return BUILD_UID, bundle.IdMap(base), base + BUILD_UID
        return base + BUILD_UID, None, base + BUILD_UID

    # -- builds --------------------------------------------------------------------------------------

    def open(
        self,
        build_id: str,
        app_id: str,
        scratch: Path,
        *,
        readonly: Sequence[Path] = (),
        memory_bytes: int,
        max_processes: int,
        file_bytes: int,
    ) -> RuncBuildContainer:
        """The containers of one build in ``scratch`` (which must exist; ``readonly`` are directories in
        it that the build may read only). Removes what dead builds left first."""
        if not _ID.match(build_id):
            raise DynoError(f"{build_id!r} is not a build id (8 to 32 hex digits)")
        self.sweep()
        return RuncBuildContainer(
            self,
            build_id,
            app_id,
            scratch,
            readonly=readonly,
            memory_bytes=memory_bytes,
            max_processes=max_processes,
            file_bytes=file_bytes,
        )

    def sweep(self) -> list[str]:
        """Clean up after builds whose process died (their lock is free); returns their ids."""
        if not self.run_root.is_dir():
            return []
        swept = []
        for directory in sorted(self.run_root.iterdir()):
            if not _ID.match(directory.name):
                continue  # runc's state, a probe, a build directory being made
            try:
                fd = os.open(directory / "lock", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                fd = -1  # a build directory appears with its lock held: this one is broken
            try:
                if fd >= 0:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live build
                self.remove_build(directory.name, directory)
                swept.append(directory.name)
            finally:
                if fd >= 0:
                    os.close(fd)
        return swept

    def remove_build(self, build_id: str, directory: Path) -> None:
        """Everything a build leaves: its containers, network, mounts, cgroup and directory (each step
        tolerant, so a half-made build is removed too)."""
        prefix = f"{build_id}-"
        if self.runc_root.is_dir():
            for state in self.runc_root.iterdir():
                if state.name.startswith(prefix):
                    self.runc("delete", "--force", state.name)
        network = self._network if self._network is not None else None
        if network is None and self._network_choice != "none":
            with contextlib.suppress(DockyardError):
                network = self.network()
        if network is not None:
            try:
                network.detach(lease_id(build_id))
            except DockyardError as exc:
                log.warning("could not detach the network of build %s: %s", build_id, exc.message)
        mounted = [directory / name for name in ("rootfs", "layer", "scratch")]
        for path in mounted:
            unmount(path)
        BuildCgroup(build_id).remove()
        points = mount_points()
        if any(path.resolve() in points for path in mounted):
            log.warning(
                "build %s: %s is still mounted; removed at a later build", build_id, directory
            )
            return
        shutil.rmtree(directory, ignore_errors=True)

    # -- the stack image ------------------------------------------------------------------------------

    def probe(self, argv: proc.Argv, *, timeout: float) -> proc.Completed:
        """Run ``argv`` once in the build stack image — read-only, no network, small limits — and return
        what it printed (how ``ImageStack`` asks the image for its Pythons and Node.js)."""
        root = self.stacks.mount(self.image())
        user, id_map, _host = self.host_ids(PROBE_APP)
        run_id = uuid.uuid4().hex[:16]
        directory = self.run_root / f"probe-{run_id}"
        _make_dirs(directory)
        try:
            config = bundle.config(
                bundle.BundleSpec(
                    hostname=HOSTNAME,
                    root=root,
                    app_dir=directory,
                    hosts_file=directory / "hosts",
                    run_dir=directory,
                    args=[str(arg) for arg in argv],
                    env={"PATH": DEFAULT_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"},  # noqa: S108
                    uid=user,
                    gid=user,
                    limits=cgroups.Limits(
                        PROBE_MEMORY,
                        PROBE_MEMORY,
                        PROBE_PROCESSES,
                        cgroups.SHARES_PER_COMPUTE,
                        None,
                    ),
                    cgroups_path=f"{CGROUP_PARENT}/probe-{run_id}",
                    seccomp=self.seccomp(),
                    tmp_size_mb=16,
                    id_map=id_map,
                    swap_limit=_memsw_supported(),
                )
            )
            config["process"]["cwd"] = "/"
            config["mounts"] = [
                m
                for m in config["mounts"]
                if m["destination"] not in ("/app", "/run", "/etc/hosts")
            ]
            return self._run_container(f"probe-{run_id}", directory, config, argv, timeout)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    # -- runc ----------------------------------------------------------------------------------------

    def runc_argv(self, log_file: Path) -> list[str | Path]:
        return ["runc", "--root", self.runc_root, "--log", log_file, "--log-format", "json"]

    def runc(self, *args: str) -> None:
        """A runc command whose failure only means "nothing to do" (already gone)."""
        try:
            proc.run(["runc", "--root", self.runc_root, *args], check=False, timeout=RUNC_TIMEOUT)
        except CommandError as exc:
            log.warning("runc %s: %s", args[0], exc.message)

    def write_bundle(self, directory: Path, config: Mapping[str, Any]) -> None:
        directory.mkdir(mode=0o700)
        fd = os.open(directory / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle)

    def _run_container(
        self,
        container_id: str,
        directory: Path,
        config: Mapping[str, Any],
        argv: proc.Argv,
        timeout: float | None,
    ) -> proc.Completed:
        bundle_dir = directory / "bundle"
        self.write_bundle(bundle_dir, config)
        log_file = bundle_dir / "runc.log"
        try:
            result = proc.run(
                [*self.runc_argv(log_file), "run", "--bundle", bundle_dir, container_id],
                timeout=timeout,
                check=False,
            )
            failure = runc_error(log_file) if result.returncode != 0 else None
        finally:
            if (self.runc_root / container_id).exists():
                self.runc("delete", "--force", container_id)
        if failure is not None:
            raise CommandError(f"cannot run {argv[0]}: {failure}")
        return result


def _memsw_supported() -> bool:
    return (cgroups.CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()


def _make_dirs(directory: Path) -> None:
    """``directory`` (new) and its parents, each searchable by others: runc's init reaches the mount
    sources in it from inside the build's user namespace."""
    for parent in reversed(directory.parents):
        if not parent.exists():
            parent.mkdir(mode=0o711)
            parent.chmod(0o711)
    directory.mkdir(mode=0o711)
    directory.chmod(0o711)


class RuncBuildContainer:
    """The containers of one build; see the module docstring. ``close`` removes everything."""

    def __init__(
        self,
        owner: RuncBuildContainers,
        build_id: str,
        app_id: str,
        scratch: Path,
        *,
        readonly: Sequence[Path],
        memory_bytes: int,
        max_processes: int,
        file_bytes: int,
    ) -> None:
        self.owner = owner
        self.id = build_id
        self.scratch = scratch
        self.readonly = [Path(path) for path in readonly]
        for path in self.readonly:
            if not path.is_relative_to(scratch):
                raise DynoError(f"{path} is not inside the build's scratch directory {scratch}")
        self.file_bytes = file_bytes
        self.dir = owner.run_root / build_id
        self.cgroup = BuildCgroup(build_id)
        self._count = 0
        self._lock: int | None = None
        self._out_of_memory = False
        self.user, self.id_map, self.uid = owner.host_ids(app_id)
        self.netns: str | None = None
        self.app_id = app_id
        try:
            self._open(memory_bytes, max_processes)
        except BaseException:
            self.close()
            raise

    def _open(self, memory_bytes: int, max_processes: int) -> None:
        settings = self.owner.settings
        for path in (self.scratch, self.owner.run_root):
            if _MOUNT_UNSAFE.search(str(path)):
                raise DynoError(
                    f"the path {path} holds a character mount options cannot carry (, : space \\)"
                )
        image_root = self.owner.stacks.mount(self.owner.image())
        self._claim()
        alias = self.dir / "scratch"
        alias.mkdir(mode=0o711)
        mount(str(self.scratch), alias, None, MS_BIND)
        layer = self.dir / "layer"
        layer.mkdir(mode=0o711)
        mount("tmpfs", layer, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for name in ("upper", "work"):
            (layer / name).mkdir(mode=0o755)
        _mirror_path(image_root, layer / "upper", self.scratch)
        rootfs = self.dir / "rootfs"
        rootfs.mkdir(mode=0o755)
        layers = f"lowerdir={image_root},upperdir={layer}/upper,workdir={layer}/work"
        mount("overlay", rootfs, "overlay", MS_NOSUID | MS_NODEV, layers)
        (self.dir / "hosts").write_text(bundle.hosts_file_text(HOSTNAME), encoding="utf-8")
        servers = reachable_nameservers(settings.build.nameservers)
        (self.dir / "resolv.conf").write_text(
            "".join(f"nameserver {server}\n" for server in servers), encoding="utf-8"
        )
        self.cgroup.create(memory_bytes=memory_bytes, pids=max_processes, cpus=settings.build.cpus)
        self._attach()

    def _attach(self) -> None:
        """The build's place in the dyno network (again, when its namespace went missing since the
        last command: a dyno manager that took the lease for a stale one)."""
        network = self.owner.network()
        if network is not None:
            attachment = network.attach(lease_id(self.id), self.app_id, port=None)
            self.netns = str(attachment.netns_path)

    def _claim(self) -> None:
        """Make the build's directory with its lock held from the start (made aside and renamed), so a
        sweep never takes a build being set up for a dead one."""
        for made in (self.owner.run_root.parent, self.owner.run_root):
            made.mkdir(parents=True, exist_ok=True)
            made.chmod(0o711)
        if self.id_map is not None:
            for parent in self.owner.run_root.parents:
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    raise DynoError(
                        f"builds cannot reach {self.owner.run_root}: {parent} is not searchable by other "
                        f"users — run chmod o+x {parent}, or set runtime.run_dir elsewhere"
                    )
        partial = self.owner.run_root / f".{self.id}.partial"
        _make_dirs(partial)
        fd = os.open(partial / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.rename(partial, self.dir)
        except OSError as exc:
            os.close(fd)
            shutil.rmtree(partial, ignore_errors=True)
            raise DynoError(f"build {self.id} already has a sandbox on this host") from exc
        self._lock = fd

    # -- commands ------------------------------------------------------------------------------------

    def run(
        self, argv: proc.Argv, *, cwd: Path, env: Mapping[str, str], timeout: float | None
    ) -> proc.Completed:
        """Run ``argv`` to its end and capture its output (its exit status is the caller's to judge);
        ``CommandError`` when it cannot start or does not finish within ``timeout``."""
        container_id, bundle_dir = self._prepare(argv, cwd, env)
        log_file = bundle_dir / "runc.log"
        before = self.cgroup.start_command()
        try:
            result = proc.run(
                [*self.owner.runc_argv(log_file), "run", "--bundle", bundle_dir, container_id],
                timeout=timeout,
                check=False,
            )
            failure = runc_error(log_file) if result.returncode != 0 else None
        finally:
            self._finish(container_id, bundle_dir)
        if failure is not None:
            raise CommandError(f"cannot run {argv[0]}: {failure}")
        self._judge_memory(before, result.returncode)
        return result

    def stream(
        self,
        argv: proc.Argv,
        *,
        on_line: Callable[[bytes], None],
        cwd: Path,
        env: Mapping[str, str],
        watch: Callable[[], None] | None = None,
        watch_interval: float = 0.25,
    ) -> int:
        """Run ``argv`` with its output (stdout and stderr) passed to ``on_line`` line by line; returns
        its exit status. Whatever ``watch`` raises stops it (its container is killed) and is raised.

        Its stderr is its stdout (runc copies the two through pipes of its own, so they would
        interleave out of order otherwise)."""
        merged = ["/bin/sh", "-c", 'exec "$@" 2>&1', "sh", *(str(arg) for arg in argv)]
        container_id, bundle_dir = self._prepare(merged, cwd, env)
        log_file = bundle_dir / "runc.log"
        before = self.cgroup.start_command()
        try:
            code = proc.stream(
                [*self.owner.runc_argv(log_file), "run", "--bundle", bundle_dir, container_id],
                on_line=on_line,
                watch=watch,
                watch_interval=watch_interval,
            )
            failure = runc_error(log_file) if code != 0 else None
        finally:
            self._finish(container_id, bundle_dir)
        if failure is not None:
            raise CommandError(f"cannot run {argv[0]}: {failure}")
        self._judge_memory(before, code)
        return code

    def tasks(self) -> int | None:
        """Processes and threads the build runs right now."""
        return self.cgroup.tasks()

    def out_of_memory(self) -> bool:
        """Whether the last command ended because the kernel killed a process of it for want of
        memory (an OOM kill counted, or a SIGKILL after the build reached its memory limit)."""
        return self._out_of_memory

    def close(self) -> None:
        if self._lock is None:
            return  # never got as far as its directory
        try:
            self.owner.remove_build(self.id, self.dir)
        finally:
            os.close(self._lock)
            self._lock = None

    # -- internals -----------------------------------------------------------------------------------

    def _judge_memory(self, before: int, code: int) -> None:
        killed = code in (128 + signal.SIGKILL, -signal.SIGKILL)
        self._out_of_memory = code != 0 and self.cgroup.ran_out_of_memory(before, killed)

    def _prepare(self, argv: proc.Argv, cwd: Path, env: Mapping[str, str]) -> tuple[str, Path]:
        if self.netns is not None and not Path(self.netns).exists():
            log.warning("build %s lost its network namespace; attaching it again", self.id)
            self._attach()
        self._count += 1
        container_id = f"{self.id}-{self._count}"
        bundle_dir = self.dir / f"c{self._count}"
        self.owner.write_bundle(bundle_dir, self._config(argv, cwd, env))
        return container_id, bundle_dir

    def _finish(self, container_id: str, bundle_dir: Path) -> None:
        """Kill what is left of a stopped command (a finished one is gone already) and drop its bundle."""
        if (self.owner.runc_root / container_id).exists():
            self.owner.runc("delete", "--force", container_id)
        shutil.rmtree(bundle_dir, ignore_errors=True)

    def _config(self, argv: proc.Argv, cwd: Path, env: Mapping[str, str]) -> dict[str, Any]:
        settings = self.owner.settings
        config = bundle.config(
            bundle.BundleSpec(
                hostname=HOSTNAME,
                root=self.dir / "rootfs",
                app_dir=self.dir,  # replaced below: builds have no /app
                hosts_file=self.dir / "hosts",
                run_dir=self.dir,  # replaced below by a tmpfs of the container's own
                args=[str(arg) for arg in argv],
                env=self._environment(env),
                uid=self.user,
                gid=self.user,
                limits=cgroups.Limits(0, 0, 0, 0, None),  # replaced below: on the build's cgroup
                cgroups_path=f"{self.cgroup.path}/{self._count}",
                seccomp=self.owner.seccomp(),
                tmp_size_mb=settings.runtime.tmp_size_mb,
                nofile=settings.runtime.nofile,
                id_map=self.id_map,
                netns_path=self.netns,
                resolv_conf=self.dir / "resolv.conf",
            )
        )
        config["process"]["cwd"] = str(cwd)
        config["process"]["rlimits"].append(
            {"type": "RLIMIT_FSIZE", "hard": self.file_bytes, "soft": self.file_bytes}
        )
        config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        mounts = [m for m in config["mounts"] if m["destination"] not in ("/app", "/run")]
        mounts.append(
            {
                "destination": "/run",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec", "mode=755", "size=1m"],
            }
        )
        mounts.extend(self._build_mounts())
        config["mounts"] = mounts
        return config

    def _ca_bundle(self) -> str | None:
        name = self.owner.settings.build.ca_certificates
        return name if name and Path(name).is_file() else None

    def _environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env``, and ``SSL_CERT_FILE`` naming the CA bundle when the host's is mounted: tools with
        certificates of their own (uv's rustls) then trust what the host trusts too."""
        values = dict(env)
        if self._ca_bundle() is not None:
            values.setdefault("SSL_CERT_FILE", CA_BUNDLE)
        return values

    def _build_mounts(self) -> Iterable[dict[str, Any]]:
        alias = self.dir / "scratch"
        yield {
            "destination": str(self.scratch),
            "type": "bind",
            "source": str(alias),
            "options": ["bind", "rw", "nosuid", "nodev"],
        }
        for path in self.readonly:
            yield {
                "destination": str(path),
                "type": "bind",
                "source": str(alias / path.relative_to(self.scratch)),
                "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
            }
        bundle_file = self._ca_bundle()
        if bundle_file is not None:
            yield {
                "destination": CA_BUNDLE,
                "type": "bind",
                "source": bundle_file,
                "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
            }


def _mirror_path(image_root: Path, upper: Path, target: Path) -> None:
    """Create ``target``'s directories in the overlay's upper layer, so that runc finds the mount point in
    the read-only image; directories the image has keep its mode and owner (``/var/tmp`` stays 1777)."""
    current_image = image_root
    current_upper = upper
    for part in target.parts[1:]:
        current_image = current_image / part
        current_upper = current_upper / part
        if current_upper.is_dir():
            continue
        current_upper.mkdir(mode=0o755)
        if current_image.is_dir() and not current_image.is_symlink():
            info = current_image.stat()
            os.chmod(current_upper, info.st_mode & 0o7777)
            os.chown(current_upper, info.st_uid, info.st_gid)
