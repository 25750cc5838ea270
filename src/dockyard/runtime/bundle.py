"""The OCI ``config.json`` of a dyno (pure: a ``BundleSpec`` in, a dict out).

What every dyno gets, whatever it runs:

- root: the stack image, read-only; ``/app`` the dyno's overlay (the slug under a size-capped writable layer,
  prepared by the runtime), ``/tmp`` and ``/dev/shm`` size-capped tmpfs, ``/run`` a small tmpfs of the
  runtime's (the launcher writes its exit status there), ``/etc/hosts`` naming the dyno;
- namespaces: pid, mount, uts (hostname = dyno name), ipc, cgroup, network (a fresh one with only loopback, or
  the one the network gives), and user when the host allows it (the app's own 65,536 host uids);
- no capabilities at all, ``noNewPrivileges``, the default-deny seccomp profile of ``seccomp.py``, Docker's
  masked and read-only ``/proc`` and ``/sys`` paths, no devices beyond runc's defaults (null, zero, full,
  random, urandom, tty, ptmx), ``RLIMIT_CORE`` 0 and a ``RLIMIT_NOFILE`` cap;
- cgroup limits from the dyno size (``cgroups.limits_for``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.runtime.cgroups import Limits

OCI_VERSION = "1.0.2"
OOM_SCORE_ADJ = 500
"""When the host itself runs out of memory, dynos go before the platform's own processes."""

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
NO_CAPABILITIES: dict[str, list[str]] = {
    "bounding": [],
    "effective": [],
    "inheritable": [],
    "permitted": [],
    "ambient": [],
}


# Runs as PID 1 of the container, in /app. The command travels as "$1", never spliced into this script.
# The INT trap keeps the launcher alive when Ctrl-C on an attached dyno's terminal interrupts the command
# (the subshell gets the default action back), so it still records the command's status (130).
LAUNCHER = """\
__dyno_command=$1
shift
trap : INT
for __dyno_file in .profile.d/*.sh; do
  if [ -r "$__dyno_file" ]; then . "./$__dyno_file"; fi
done
unset __dyno_file
if [ -r .profile ]; then . ./.profile; fi
( eval "$__dyno_command" )
__dyno_status=$?
echo "$__dyno_status" > /run/dyno/exit-status
exit "$__dyno_status"
"""


def launcher_args(command: str) -> list[str]:
    """The container's process: ``bash`` running ``LAUNCHER`` with the Procfile ``command`` as ``$1``."""
    return ["bash", "-c", LAUNCHER, "dyno", command]


@dataclass(frozen=True)
class IdMap:
    """Container ids ``0 … size-1`` are host ids ``host_base …``."""

    host_base: int
    size: int = 65536

    def to_oci(self) -> list[dict[str, int]]:
        return [{"containerID": 0, "hostID": self.host_base, "size": self.size}]


@dataclass(frozen=True)
class BundleSpec:
    hostname: str
    root: Path
    """The mounted stack image."""
    app_dir: Path
    """The host directory mounted at ``/app`` (the dyno's overlay)."""
    hosts_file: Path
    run_dir: Path
    """The host directory mounted at ``/run`` (a small tmpfs of the runtime's; the launcher writes the exit
    status into its ``dyno/``)."""
    args: Sequence[str]
    env: Mapping[str, str]
    uid: int
    gid: int
    """The dyno's user, as seen inside the container."""
    limits: Limits
    cgroups_path: str
    seccomp: Mapping[str, Any]
    tmp_size_mb: int = 256
    shm_size_mb: int = 64
    nofile: int = 10000
    id_map: IdMap | None = None
    """``None``: no user namespace (ids inside are host ids)."""
    netns_path: str | None = None
    """A network namespace to join; ``None``: a new one with only loopback."""
    resolv_conf: Path | None = None
    swap_limit: bool = True
    """Whether the host's memory cgroup can limit memory plus swap (``memory.memsw.*``)."""
    annotations: Mapping[str, str] = field(default_factory=dict)


def _mounts(spec: BundleSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",  # noqa: S108 - a path inside the container
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={spec.shm_size_mb}m"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        _sys_mount(spec),
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
        {
            "destination": "/tmp",  # noqa: S108 - a path inside the container
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={spec.tmp_size_mb}m"],
        },
        {
            "destination": "/run",
            "type": "bind",
            "source": str(spec.run_dir),
            "options": ["rbind", "rw", "nosuid", "nodev", "noexec"],
        },
        {
            "destination": "/app",
            "type": "bind",
            "source": str(spec.app_dir),
            "options": ["rbind", "rw", "nosuid", "nodev"],
        },
        {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": str(spec.hosts_file),
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
        },
    ]  # fmt: skip
    if spec.resolv_conf is not None:
        mounts.append(
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": str(spec.resolv_conf),
                "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
            }
        )
    return mounts


def _sys_mount(spec: BundleSpec) -> dict[str, Any]:
    """``/sys``: sysfs, read-only. The kernel lets a user namespace mount sysfs only for a network namespace
    it owns; a dyno in a user namespace that joins a network namespace made by the host gets an empty tmpfs
    instead (with its cgroup files below it, as everywhere), never a bind of the host's ``/sys``."""
    if spec.id_map is not None and spec.netns_path is not None:
        return {
            "destination": "/sys",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "noexec", "nodev", "mode=755", "size=64k"],
        }
    return {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    }


def _namespaces(spec: BundleSpec) -> list[dict[str, str]]:
    namespaces = [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "cgroup")]
    network = {"type": "network"}
    if spec.netns_path is not None:
        network["path"] = spec.netns_path
    namespaces.append(network)
    if spec.id_map is not None:
        namespaces.append({"type": "user"})
    return namespaces


def _resources(spec: BundleSpec) -> dict[str, Any]:
    resources = spec.limits.to_oci()
    if not spec.swap_limit:
        del resources["memory"]["swap"]
    resources["devices"] = [{"allow": False, "access": "rwm"}]
    return resources


def hosts_file_text(hostname: str) -> str:
    """``/etc/hosts`` of a dyno: loopback under its own name too, as software looking itself up expects."""
    return f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def config(spec: BundleSpec) -> dict[str, Any]:
    """The OCI runtime configuration of one dyno."""
    linux: dict[str, Any] = {
        "resources": _resources(spec),
        "cgroupsPath": spec.cgroups_path,
        "namespaces": _namespaces(spec),
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "seccomp": dict(spec.seccomp),
        "rootfsPropagation": "private",
    }
    if spec.id_map is not None:
        linux["uidMappings"] = spec.id_map.to_oci()
        linux["gidMappings"] = spec.id_map.to_oci()
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": []},
            "args": list(spec.args),
            "env": [f"{key}={value}" for key, value in spec.env.items()],
            "cwd": "/app",
            "capabilities": {kind: list(caps) for kind, caps in NO_CAPABILITIES.items()},
            "rlimits": [
                {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
                {"type": "RLIMIT_NOFILE", "hard": spec.nofile, "soft": spec.nofile},
            ],
            "noNewPrivileges": True,
            "oomScoreAdj": OOM_SCORE_ADJ,
        },
        "root": {"path": str(spec.root), "readonly": True},
        "hostname": spec.hostname,
        "mounts": _mounts(spec),
        "linux": linux,
        "annotations": dict(spec.annotations),
    }
