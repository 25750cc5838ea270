"""Settings: one frozen dataclass per subsystem, read from ``DOCKYARD_*`` variables and an optional TOML file.

Precedence, highest first: environment variables, the TOML file, the defaults below. A top-level field
``domain`` is set by ``DOCKYARD_DOMAIN`` or ``domain = "..."``; a field ``port`` of section ``api`` by
``DOCKYARD_API_PORT`` or ``[api] port = ...``. The TOML file is ``$DOCKYARD_CONFIG`` when set, else
``dockyard.toml`` in the configuration directory (``/etc/dockyard`` as root, the user's config dir otherwise),
when it exists.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dockyard.errors import InvalidError

ENV_PREFIX = "DOCKYARD_"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _user_dir(env: Mapping[str, str], xdg_var: str, fallback: str) -> Path:
    base = env.get(xdg_var) or str(Path(env.get("HOME", str(Path.home()))) / fallback)
    return Path(base) / "dockyard"


def default_data_dir(env: Mapping[str, str]) -> Path:
    return (
        Path("/var/lib/dockyard") if _is_root() else _user_dir(env, "XDG_DATA_HOME", ".local/share")
    )


def default_config_file(env: Mapping[str, str]) -> Path:
    base = Path("/etc/dockyard") if _is_root() else _user_dir(env, "XDG_CONFIG_HOME", ".config")
    return base / "dockyard.toml"


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    public_url: str = ""
    """The URL clients use to reach the API; derived from host and port when empty."""
    rate_limit_per_hour: int = 4500
    request_body_limit: int = 1 << 20


@dataclass(frozen=True)
class RouterSettings:
    host: str = "127.0.0.1"
    port: int = 80 if _is_root() else 8080
    refresh_interval: float = 0.5
    """Seconds between two attempts to reach the API while it is away. The route table is long-polled
    (the API answers when it changes), so this is not how soon a change arrives."""
    connect_timeout: float = 5.0
    """Seconds to open a connection to a dyno before trying the next one (H19 when all time out)."""
    first_byte_timeout: float = 30.0
    """Seconds from sending a request to a dyno to the first byte of its response (H12)."""
    idle_timeout: float = 55.0
    """Seconds of silence after which an idle keep-alive client connection is closed, a response
    is cut (H15), a request body is cut (H28) and a WebSocket is closed (Heroku's 55 s window)."""
    boot_wait: float = 75.0
    """Seconds a request waits for a web dyno to come up, starting or woken from sleep (H20)."""
    workers: int = 0
    """Router processes sharing the ports (``SO_REUSEPORT``); 0: one per core."""
    balancing: Literal["random", "fewest-in-flight"] = "random"
    """How a request picks among an app's web dynos: at random (Heroku's way) or the dyno with the
    fewest requests in flight."""
    max_inflight_per_dyno: int = 50
    """Requests in flight per dyno and router process; more wait in a backlog of as many per dyno,
    beyond which H11 (Heroku's 50); 0: no limit."""
    quarantine: float = 5.0
    """Seconds a dyno that refused a connection or did not accept one in time gets no request."""
    max_body_bytes: int = 0
    """Largest request body accepted (413 beyond); 0: no limit, as on Heroku."""
    tls: bool = True
    """Serve HTTPS on ``tls_port`` (TLS 1.2 and 1.3, SNI) besides HTTP on ``port``."""
    tls_port: int = 443 if _is_root() else 8443
    """The HTTPS port; when ``port`` is 0 (a free port), a free port too."""
    tls_cert_file: str = ""
    """The operator's own default certificate (PEM chain, leaf first, for ``*.<domain>``); empty:
    one issued by the Dockyard CA made at install (``<data dir>/secrets/dockyard-ca.crt``)."""
    tls_key_file: str = ""
    """The key of ``tls_cert_file`` (PEM), unless that file holds it."""
    cache_max_bytes: int = 64 << 20
    """Memory the response cache may hold (apps turn the cache on one by one); least recently used
    responses are evicted first."""
    cache_max_object_bytes: int = 1 << 20
    """Largest response body the cache stores."""
    max_connections_per_address: int = 256
    """Open client connections per client address (more are answered 429 and closed); 0: no limit."""
    request_rate_per_address: float = 100.0
    """Requests a second per client address, sustained (over the burst: 429); 0: no limit."""
    request_burst_per_address: int = 200
    """Requests a client address may send at once above the sustained rate."""
    app_connection_limit: int = 10000
    """Requests in flight at once per app before H22 (an app may set its own); 0: no limit."""
    header_timeout: float = 20.0
    """Seconds a client has to send a whole request head once it began (slowloris: 408, H28)."""
    body_timeout: float = 20.0
    """Seconds a client has to send a request body, plus a second per ``body_min_rate`` bytes."""
    body_min_rate: int = 500
    """Bytes a second a request body must average after ``body_timeout`` (else 408, H28)."""
    probe_threshold: int = 100
    """Requests for unknown hosts or paths (404) from one address within ``probe_window`` seconds
    before the address is blocked for ``network.block_duration`` (nftables block set, else in the
    router); 0: never block."""
    probe_window: float = 60.0
    guard_exempt: str = "127.0.0.0/8, ::1"
    """Client networks the per-address limits and probe blocking never apply to (a load balancer in
    front of Dockyard belongs here), separated by commas or spaces."""

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout",
            "first_byte_timeout",
            "idle_timeout",
            "boot_wait",
            "quarantine",
            "header_timeout",
            "body_timeout",
            "probe_window",
        ):
            value = getattr(self, name)
            if not value > 0:  # also rejects NaN
                raise InvalidError(
                    f"setting router.{name} (DOCKYARD_ROUTER_{name.upper()}): {value!r} is not a "
                    "positive number of seconds — set it above 0 or leave it out for the default",
                    field=f"router.{name}",
                )
        for name in (
            "cache_max_bytes",
            "cache_max_object_bytes",
            "max_connections_per_address",
            "request_rate_per_address",
            "request_burst_per_address",
            "app_connection_limit",
            "body_min_rate",
            "probe_threshold",
            "workers",
            "max_inflight_per_dyno",
            "max_body_bytes",
        ):
            value = getattr(self, name)
            if not value >= 0:
                raise InvalidError(
                    f"setting router.{name} (DOCKYARD_ROUTER_{name.upper()}): {value!r} is "
                    "negative — give 0 or more",
                    field=f"router.{name}",
                )
        if self.balancing not in ("random", "fewest-in-flight"):
            raise InvalidError(
                f"setting router.balancing (DOCKYARD_ROUTER_BALANCING): {self.balancing!r} is not "
                'a balancing — use "random" or "fewest-in-flight"',
                field="router.balancing",
            )
        if not 0 <= self.tls_port <= 65535:
            raise InvalidError(
                f"setting router.tls_port (DOCKYARD_ROUTER_TLS_PORT): {self.tls_port} is not a "
                "TCP port",
                field="router.tls_port",
            )
        if bool(self.tls_key_file) and not self.tls_cert_file:
            raise InvalidError(
                "setting router.tls_key_file is set without router.tls_cert_file — give the "
                "certificate too, or neither for the Dockyard CA's",
                field="router.tls_cert_file",
            )
        try:
            self.exempt_networks  # noqa: B018 - parsed here so a typo stops the start
        except ValueError as exc:
            raise InvalidError(
                f"setting router.guard_exempt (DOCKYARD_ROUTER_GUARD_EXEMPT): {exc} — list "
                "networks such as 127.0.0.0/8, ::1, 10.0.0.0/8",
                field="router.guard_exempt",
            ) from exc

    @property
    def worker_count(self) -> int:
        """``workers``, or the number of cores when it is 0."""
        return self.workers or os.cpu_count() or 1

    @property
    def exempt_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``guard_exempt`` parsed."""
        items = self.guard_exempt.replace(",", " ").split()
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)


@dataclass(frozen=True)
class AgentSettings:
    runtime: str = "runc" if _is_root() else "process"
    """The dyno runtime (``runc`` or ``process``): ``runc``, sandboxed, when Dockyard runs as root;
    ``process`` (plain processes, not a sandbox) otherwise."""
    refresh_interval: float = 0.5
    """Seconds between two rounds of the dyno manager, and between two attempts to reach the API while
    it is away; new desired dynos (long-polled) and a starting web dyno that answers start a round at
    once."""
    boot_timeout: float = 60.0
    """Seconds a web dyno has to accept connections on $PORT (Heroku's R10)."""
    stop_timeout: float = 30.0
    """Seconds between SIGTERM and SIGKILL (Heroku's R12)."""
    drain_seconds: float = 1.0
    """Seconds a web dyno that is replaced, scaled away or put to sleep keeps serving after the
    agent has reported it gone (so the routers have dropped it) and before it gets SIGTERM; 0: at
    once."""
    crash_backoff: str = "20m, 40m, 60m, 180m, 320m"
    """Cool-offs before restarting a dyno that crashed again (the first crash restarts at once; the
    last cool-off repeats): seconds, or minutes and hours with ``m`` / ``h``. Heroku's schedule."""
    cycle_period: float = 24 * 60 * 60
    """Seconds after which every dyno is restarted (Heroku's daily cycling), plus its jitter."""
    cycle_jitter: float = 216 * 60
    """Up to this many seconds added to ``cycle_period``, a fixed amount per dyno."""
    memory_check_interval: float = 10.0
    """Seconds between two reads of each dyno's memory use (R14, R15)."""
    idle_timeout: float = 30 * 60
    """Seconds without a request after which an ``eco`` web dyno sleeps."""

    def __post_init__(self) -> None:
        for name in (
            "refresh_interval",
            "boot_timeout",
            "cycle_period",
            "memory_check_interval",
            "idle_timeout",
        ):
            value = getattr(self, name)
            if not value > 0:  # also rejects NaN
                raise InvalidError(
                    f"setting agent.{name} (DOCKYARD_AGENT_{name.upper()}): {value!r} is not a "
                    "positive number of seconds — set it above 0 or leave it out for the default",
                    field=f"agent.{name}",
                )
        if not self.stop_timeout >= 0 or not self.cycle_jitter >= 0 or not self.drain_seconds >= 0:
            raise InvalidError(
                "settings agent.stop_timeout, agent.cycle_jitter and agent.drain_seconds must be 0 "
                "or more seconds",
                field="agent",
            )
        for item in self.crash_backoff.split(","):
            if item.strip() and not _DURATION.fullmatch(item.strip().lower()):
                raise InvalidError(
                    f"setting agent.crash_backoff (DOCKYARD_AGENT_CRASH_BACKOFF): {item.strip()!r} "
                    "is not a duration — write e.g. 20m, 40m, 60m, 180m, 320m",
                    field="agent.crash_backoff",
                )


_DURATION = re.compile(r"\d+(\.\d+)?[smh]?")


@dataclass(frozen=True)
class RendezvousSettings:
    """The rendezvous service that joins ``run`` clients to their one-off dynos (TLS)."""

    host: str = "127.0.0.1"
    port: int = 5001
    public_host: str = ""
    """Host name in ``attach_url`` and in the TLS certificate; empty: the API's host."""
    attach_timeout: float = 60.0
    """Seconds a client waits for its dyno's terminal, and a terminal for its client."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidError(
                f"setting rendezvous.port (DOCKYARD_RENDEZVOUS_PORT): {self.port} is not a TCP port",
                field="rendezvous.port",
            )
        if not self.attach_timeout > 0:
            raise InvalidError(
                "setting rendezvous.attach_timeout (DOCKYARD_RENDEZVOUS_ATTACH_TIMEOUT): "
                f"{self.attach_timeout!r} is not a positive number of seconds",
                field="rendezvous.attach_timeout",
            )


BUILD_SANDBOXES = ("runc", "uid")


@dataclass(frozen=True)
class BuildSettings:
    compile_timeout: float = 15 * 60
    max_repo_bytes: int = 1 << 30
    release_phase_timeout: float = 60 * 60
    """Seconds a release command may run before it is stopped and its release fails."""
    slug_history: int = 10
    """Newest releases per app whose slugs garbage collection keeps (besides running ones)."""
    max_concurrent_builds: int = 2
    """Build API builds that run at the same time; more wait in a queue."""
    max_source_bytes: int = 512 << 20
    """Largest source tarball a ``/sources`` upload or a build's ``source_blob.url`` may be."""
    max_source_files: int = 100_000
    """Most files and directories a pushed tree or source tarball may hold."""
    max_source_depth: int = 100
    """Deepest directory nesting a pushed tree or source tarball may have."""
    max_slug_bytes: int = 500 << 20
    """Largest compressed slug a build may produce (Heroku's limit)."""
    memory_bytes: int = 4 << 30
    """Memory a build may use: with the ``runc`` sandbox the cgroup limit of the build (all its
    processes, its ``/tmp`` included); with ``uid``, the data memory of each process
    (``RLIMIT_DATA``)."""
    max_processes: int = 1024
    """Processes and threads a build may run at once (its cgroup's ``pids.max`` with ``runc``,
    ``RLIMIT_NPROC`` of its own user with ``uid``)."""
    disk_bytes: int = 10 << 30
    """Disk space a build may use: build directory, cache, env and temporary files."""
    sandbox: str = "runc" if _is_root() else "uid"
    """``runc``: every buildpack command runs in a one-shot container on the build stack image
    (namespaces, cgroup limits, seccomp, the dyno firewall); Dockyard falls back to ``uid`` with
    a warning in the build output when it is not root or runc or the build stack image is
    missing. ``uid``: commands run on the host as a user of their own, under resource limits."""
    cpus: float = 2.0
    """CPUs a build may use with the ``runc`` sandbox (a CFS quota, at most the host's); 0: no
    quota, only a fair share."""
    nameservers: str = ""
    """DNS servers of builds in the ``runc`` sandbox, separated by spaces or commas; empty: the
    host's own when builds may reach them (public addresses), else 1.1.1.1 and 8.8.8.8."""
    ca_certificates: str = "/etc/ssl/certs/ca-certificates.crt"
    """A PEM bundle on the host that builds in the ``runc`` sandbox trust instead of the stack's
    (mounted read-only over its ``/etc/ssl/certs/ca-certificates.crt``), so registries behind a
    TLS-inspecting proxy or with an internal CA work; empty: the stack's own bundle."""

    def __post_init__(self) -> None:
        if self.sandbox not in BUILD_SANDBOXES:
            raise InvalidError(
                f"setting build.sandbox (DOCKYARD_BUILD_SANDBOX): {self.sandbox!r} is not one of "
                f"{', '.join(BUILD_SANDBOXES)}",
                field="build.sandbox",
            )
        if not self.cpus >= 0:  # also rejects NaN
            raise InvalidError(
                f"setting build.cpus (DOCKYARD_BUILD_CPUS): {self.cpus!r} is not 0 or more CPUs",
                field="build.cpus",
            )
        for name in (
            "max_source_files",
            "max_source_depth",
            "max_slug_bytes",
            "memory_bytes",
            "max_processes",
            "disk_bytes",
        ):
            if getattr(self, name) <= 0:
                raise InvalidError(
                    f"setting build.{name} (DOCKYARD_BUILD_{name.upper()}): "
                    f"{getattr(self, name)!r} is not a positive number — set it above 0 or leave "
                    "it out for the default",
                    field=f"build.{name}",
                )


@dataclass(frozen=True)
class GitSettings:
    """Git over SSH (the ``git-ssh`` process) and the push limits of both git transports."""

    ssh_host: str = "127.0.0.1"
    ssh_port: int = 2222
    ssh_public_host: str = ""
    """Host name in SSH remote URLs (``ssh://git@<host>:<port>/<app>.git``); empty: the API's host."""
    push_rate_per_hour: int = 75
    """Pushes an hour per account and app (Heroku's limit), per transport, refilled evenly."""

    def __post_init__(self) -> None:
        if not 0 <= self.ssh_port <= 65535:
            raise InvalidError(
                f"setting git.ssh_port (DOCKYARD_GIT_SSH_PORT): {self.ssh_port} is not a TCP port",
                field="git.ssh_port",
            )
        if self.push_rate_per_hour < 1:
            raise InvalidError(
                "setting git.push_rate_per_hour (DOCKYARD_GIT_PUSH_RATE_PER_HOUR): "
                f"{self.push_rate_per_hour} — allow at least 1 push an hour",
                field="git.push_rate_per_hour",
            )


USER_NAMESPACE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class RuntimeSettings:
    """The ``runc`` runtime: the stack image dynos run on, and the sandbox's sizes and uid ranges."""

    stack: str = "dockyard-12"
    """Name of the stack image (``<stack>-<version>.squashfs``); builds use ``<stack>-build``."""
    stack_version: str = ""
    """Pin the stack version dynos use (``YYYYMMDD-<12 hex>``); empty: the newest one built here."""
    stacks_dir: str = ""
    """Where stack images are kept; empty: ``<data dir>/stacks``."""
    stack_mirror: str = ""
    """The Debian mirror ``stack:build`` uses; empty: the one this host's apt uses."""
    run_dir: str = "/run/dockyard"
    """Dockyard's run-time state on this host, gone at a reboot like the containers themselves: runc's state
    (``runc/``, its ``--root``), each dyno's mount points (``dynos/<id>/``) and the stack mounts (``stacks/``)."""
    user_namespaces: str = "auto"
    """``auto`` (when the kernel allows), ``on`` (refuse to start without) or ``off``."""
    uid_base: int = 1 << 20
    """First host uid of the per-app ranges (65,536 uids each)."""
    uid_slots: int = 4096
    """How many apps can get a uid range."""
    tmp_size_mb: int = 256
    """Size cap of each dyno's ``/tmp``."""
    scratch_size_mb: int = 512
    """Size cap of what a dyno writes under ``/app`` (ephemeral, like Heroku's dyno filesystem)."""
    nofile: int = 10000
    """Open files per process in a dyno (``RLIMIT_NOFILE``)."""

    def __post_init__(self) -> None:
        if self.user_namespaces not in USER_NAMESPACE_MODES:
            raise InvalidError(
                f"setting runtime.user_namespaces (DOCKYARD_RUNTIME_USER_NAMESPACES): "
                f"{self.user_namespaces!r} is not one of {', '.join(USER_NAMESPACE_MODES)}",
                field="runtime.user_namespaces",
            )
        for name in ("uid_slots", "tmp_size_mb", "scratch_size_mb", "nofile"):
            if getattr(self, name) < 1:
                raise InvalidError(
                    f"setting runtime.{name} (DOCKYARD_RUNTIME_{name.upper()}): must be at least 1",
                    field=f"runtime.{name}",
                )


@dataclass(frozen=True)
class NetworkSettings:
    """Dyno networking and its firewall (used by the ``runc`` runtime)."""

    private_range: str = "10.88.0.0/16"
    """IPv4 range of dyno addresses, a /32 each; its first address is the host's end of every dyno link (the
    router's source address)."""
    egress: Literal["allow", "deny"] = "allow"
    """``allow``: dynos may open connections to outside addresses (never to private, link-local, loopback
    or platform addresses); ``deny``: they may not."""
    scan_window: float = 60.0
    """Seconds in which more than ``scan_threshold`` probes of closed ports or dyno addresses block a source."""
    scan_threshold: int = 20
    block_duration: float = 3600.0
    """Seconds a port-scanning source stays blocked."""
    table: str = "dockyard"
    """Dockyard's nftables table (family ``inet``); change it only to run two Dockyards on one host."""

    def __post_init__(self) -> None:
        def invalid(name: str, rule: str) -> InvalidError:
            value = getattr(self, name)
            return InvalidError(
                f"setting network.{name} (DOCKYARD_NETWORK_{name.upper()}): {value!r} {rule}",
                field=f"network.{name}",
            )

        try:
            network = ipaddress.IPv4Network(self.private_range)
        except ValueError as exc:
            raise invalid("private_range", "is not an IPv4 network such as 10.88.0.0/16") from exc
        if network.prefixlen > 30:
            raise invalid("private_range", "is too small: give a /30 or larger")
        if self.egress not in ("allow", "deny"):
            raise invalid("egress", 'is neither "allow" nor "deny"')
        if not 0 < self.scan_window <= 3600:
            raise invalid("scan_window", "is not a number of seconds between 0 and 3600")
        if not 0 < self.scan_threshold <= 10000:
            raise invalid("scan_threshold", "is not a number of probes between 1 and 10000")
        if not 1 <= self.block_duration <= 30 * 86400:
            raise invalid("block_duration", "is not a number of seconds between 1 and 30 days")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", self.table):
            raise invalid("table", "is not a table name (a letter, then letters, digits or _)")


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing mail (sign-up, password resets, security notifications)."""

    url: str = ""
    """``smtp://[user:password@]host[:port]`` (``?starttls=true`` to upgrade the connection) or
    ``smtps://…`` (TLS from the start); empty: mail is kept in the outbox directory of the data
    directory and shown by ``dockyard admin:outbox`` — never dropped."""
    from_address: str = ""
    """The sender of Dockyard's mail; empty: ``dockyard@<domain>``."""

    def __post_init__(self) -> None:
        if self.url and urlsplit(self.url).scheme not in ("smtp", "smtps"):
            raise InvalidError(
                f"setting smtp.url (DOCKYARD_SMTP_URL): {self.url!r} is not an smtp:// or smtps:// "
                "URL — write e.g. smtp://user:password@mail.example.com:587?starttls=true",
                field="smtp.url",
            )


@dataclass(frozen=True)
class AuthSettings:
    """Passwords, login throttling and sessions (the numbers of the policy are in docs/security.md)."""

    trusted_proxies: str = ""
    """Addresses or networks (``10.0.0.1, 192.168.0.0/24``) of reverse proxies in front of the API
    whose ``X-Forwarded-For`` is believed; the header of any other peer is ignored."""
    password_memory_kib: int = 65536
    """Memory of one argon2id password hash in KiB; hashes made with lower costs are upgraded at the
    next login."""
    password_time_cost: int = 3
    """Passes of argon2id over its memory."""
    password_parallelism: int = 4
    """Lanes of argon2id."""
    uniform_answer_seconds: float = 0.25
    """Logins, sign-ups and password reset requests are answered no sooner than this after they
    arrive, so the time taken does not tell whether an email has an account."""
    mfa_grace_days: float = 14.0
    """Days an account may work without a second factor after it was created; then only enrolling one
    is allowed (API answer ``mfa_enrollment_required``)."""

    def __post_init__(self) -> None:
        if not 0 <= self.mfa_grace_days <= 365:
            raise InvalidError(
                "setting auth.mfa_grace_days (DOCKYARD_AUTH_MFA_GRACE_DAYS): between 0 and 365 days",
                field="auth.mfa_grace_days",
            )
        for item in self.trusted_proxies.replace(",", " ").split():
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise InvalidError(
                    f"setting auth.trusted_proxies (DOCKYARD_AUTH_TRUSTED_PROXIES): {item!r} is not "
                    "an IP address or network",
                    field="auth.trusted_proxies",
                ) from exc
        if self.password_memory_kib < 8 * self.password_parallelism or self.password_time_cost < 1:
            raise InvalidError(
                "settings auth.password_memory_kib and auth.password_time_cost: argon2id needs at "
                "least 8 KiB per lane and one pass",
                field="auth",
            )
        if not 0 <= self.uniform_answer_seconds <= 10:
            raise InvalidError(
                "setting auth.uniform_answer_seconds: between 0 and 10 seconds", field="auth"
            )
        if not 1 <= self.password_parallelism <= 255:
            raise InvalidError(
                "setting auth.password_parallelism: between 1 and 255 lanes", field="auth"
            )


@dataclass(frozen=True)
class AuditSettings:
    """The tamper-evident audit log (``audit-writer`` process) and who may read all of it."""

    checkpoint_interval: float = 60.0
    """Seconds between two signed checkpoints when nothing is appended (a heartbeat witnesses watch for:
    they alarm after two intervals without one). Appends are checkpointed within a second."""
    origin: str = ""
    """The log's name in its checkpoints (first line) and signing key; empty: ``<domain>/audit``."""
    operators: str = ""
    """Comma-separated emails of accounts that may read every account's events (besides their own)."""
    witness_keys: str = ""
    """Comma-separated verifier keys (``name+hex id+base64 key``) of witnesses whose cosignatures the
    log accepts and publishes with its checkpoint."""
    append_timeout: float = 10.0
    """Seconds an action waits for the writer before it fails (503) without changing anything."""

    def __post_init__(self) -> None:
        for name in ("checkpoint_interval", "append_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 3600:  # also rejects NaN
                raise InvalidError(
                    f"setting audit.{name} (DOCKYARD_AUDIT_{name.upper()}): {value!r} is not a "
                    "number of seconds between 0 and 3600",
                    field=f"audit.{name}",
                )
        if any(c in self.origin for c in "\n\r"):
            raise InvalidError("setting audit.origin must be a single line", field="audit.origin")


@dataclass(frozen=True)
class LogsSettings:
    """App log streams: ring buffers, on-disk history, tails and drains (the ``logs`` process)."""

    buffer_lines: int = 1500
    """Newest lines per app kept in memory for ``logs`` (Heroku's 1,500)."""
    history_days: float = 7.0
    """Days of on-disk history kept per app."""
    max_app_bytes: int = 100 << 20
    """On-disk history per app; the oldest segments go first."""
    segment_bytes: int = 8 << 20
    """Size at which an app's current segment is closed (at most a quarter of max_app_bytes)."""
    min_free_bytes: int = 1 << 30
    """When the disk holding the logs has less free space, the largest apps' oldest segments go."""
    tail_buffer_bytes: int = 4 << 20
    """Unsent bytes a ``logs --tail`` session may fall behind before it is cut off (L11)."""
    drain_buffer_lines: int = 1024
    """Lines a drain may hold back before the oldest are dropped (L10)."""
    max_drains: int = 5
    """Drains per app."""
    allow_private_drains: bool = False
    """Allow drains to loopback, private and link-local addresses and the platform's own (off: no
    SSRF through drains)."""
    drain_ca_file: str = ""
    """PEM file of extra CA certificates trusted for ``syslog+tls://`` and ``https://`` drains."""
    platform_log_file: str = ""
    """The platform's own JSON log; empty: ``<data dir>/logs/platform.jsonl``."""
    platform_syslog: str = ""
    """Also send the platform log to ``udp://host:port`` or ``tcp://host:port``; empty: no."""

    def __post_init__(self) -> None:
        for name in (
            "buffer_lines",
            "max_app_bytes",
            "segment_bytes",
            "tail_buffer_bytes",
            "drain_buffer_lines",
            "max_drains",
        ):
            if getattr(self, name) < 1:
                raise InvalidError(
                    f"setting logs.{name} (DOCKYARD_LOGS_{name.upper()}): must be at least 1",
                    field=f"logs.{name}",
                )
        if not self.history_days > 0:  # also rejects NaN
            raise InvalidError(
                "setting logs.history_days (DOCKYARD_LOGS_HISTORY_DAYS): "
                f"{self.history_days!r} is not a positive number of days",
                field="logs.history_days",
            )
        if self.min_free_bytes < 0:
            raise InvalidError(
                "setting logs.min_free_bytes (DOCKYARD_LOGS_MIN_FREE_BYTES): must be 0 or more",
                field="logs.min_free_bytes",
            )
        if self.platform_syslog and not re.fullmatch(
            r"(udp|tcp)://[^\s/:]+(:\d{1,5})?", self.platform_syslog
        ):
            raise InvalidError(
                "setting logs.platform_syslog (DOCKYARD_LOGS_PLATFORM_SYSLOG): "
                f"{self.platform_syslog!r} is not udp://host:port or tcp://host:port",
                field="logs.platform_syslog",
            )


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    domain: str = "dockyard.localhost"
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite in the data directory."""
    api: ApiSettings = field(default_factory=ApiSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    git: GitSettings = field(default_factory=GitSettings)
    rendezvous: RendezvousSettings = field(default_factory=RendezvousSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    logs: LogsSettings = field(default_factory=LogsSettings)

    @property
    def api_url(self) -> str:
        if self.api.public_url:
            return self.api.public_url.rstrip("/")
        host = "localhost" if self.api.host in ("127.0.0.1", "0.0.0.0", "::") else self.api.host  # noqa: S104
        return f"http://{host}:{self.api.port}"

    @property
    def router_url(self) -> str:
        port = "" if self.router.port == 80 else f":{self.router.port}"
        return f"http://{self.domain}{port}"

    def app_url(self, app_name: str) -> str:
        port = "" if self.router.port == 80 else f":{self.router.port}"
        return f"http://{app_name}.{self.domain}{port}/"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dockyard.db'}"

    # Directories under the data directory, one per owner.
    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def slugs_dir(self) -> Path:
        return self.data_dir / "slugs"

    @property
    def build_dir(self) -> Path:
        return self.data_dir / "builds"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def stacks_dir(self) -> Path:
        """Stack images (the dynos' root filesystems) and their read-only mounts."""
        if self.runtime.stacks_dir:
            return Path(self.runtime.stacks_dir)
        return self.data_dir / "stacks"

    @property
    def dynos_dir(self) -> Path:
        return self.data_dir / "dynos"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_dir(self) -> Path:
        """Cached desired state of the data plane (agent, router), kept across control-plane outages."""
        return self.data_dir / "state"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def to_env(self) -> dict[str, str]:
        """``DOCKYARD_*`` variables that make ``load_settings`` in a child process return these settings
        exactly (``DOCKYARD_CONFIG`` points nowhere, so no file can override them)."""
        env: dict[str, str] = {}

        def walk(obj: Any, prefix: str) -> None:
            for item in dataclasses.fields(obj):
                value = getattr(obj, item.name)
                name = f"{prefix}{item.name.upper()}"
                if dataclasses.is_dataclass(value):
                    walk(value, name + "_")
                elif isinstance(value, bool):
                    env[name] = "true" if value else "false"
                else:
                    env[name] = str(value)

        walk(self, ENV_PREFIX)
        env[f"{ENV_PREFIX}CONFIG"] = os.devnull
        return env

    @property
    def outbox_dir(self) -> Path:
        """Mail waiting to be sent, or kept for ``dockyard admin:outbox`` when no SMTP server is set."""
        return self.data_dir / "outbox"

    @property
    def internal_token_file(self) -> Path:
        """The token the agent and router present on ``/internal``."""
        return self.secrets_dir / "internal-token"

    @property
    def tls_ca_cert_file(self) -> Path:
        """The Dockyard CA's certificate, made at install: what browsers and clients must trust."""
        return self.secrets_dir / "dockyard-ca.crt"

    @property
    def tls_ca_key_file(self) -> Path:
        """The Dockyard CA's private key (mode 0600)."""
        return self.secrets_dir / "dockyard-ca.key"

    @property
    def tls_platform_cert_file(self) -> Path:
        """Key and certificate for ``*.<domain>`` issued by the Dockyard CA (mode 0600)."""
        return self.secrets_dir / "platform-tls.pem"

    @property
    def sni_endpoints_dir(self) -> Path:
        """Apps' own certificates with their keys, ``<sni endpoint id>.pem`` (mode 0600 each)."""
        return self.secrets_dir / "sni-endpoints"

    @property
    def ssh_host_key_file(self) -> Path:
        """The git SSH server's ed25519 host key, generated on its first start (mode 0600)."""
        return self.secrets_dir / "ssh_host_ed25519_key"

    def git_ssh_url(self, app_name: str) -> str:
        """``ssh://git@<git.ssh_public_host or the API's host>:<git.ssh_port>/<app>.git``."""
        host = self.git.ssh_public_host or urlsplit(self.api_url).hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        return f"ssh://git@{host}:{self.git.ssh_port}/{app_name}.git"

    # The one-off dynos' rendezvous service, and the agent's local endpoints.
    @property
    def rendezvous_public_host(self) -> str:
        return self.rendezvous.public_host or urlsplit(self.api_url).hostname or "localhost"

    @property
    def rendezvous_url(self) -> str:
        """``rendezvous://<host>:<port>``; an ``attach_url`` adds ``/<secret>``."""
        host = self.rendezvous_public_host
        host = f"[{host}]" if ":" in host else host
        return f"rendezvous://{host}:{self.rendezvous.port}"

    @property
    def rendezvous_key_file(self) -> Path:
        """The key attach secrets are signed with (shared by the API and the rendezvous service)."""
        return self.secrets_dir / "rendezvous-key"

    @property
    def rendezvous_cert_file(self) -> Path:
        """The rendezvous service's self-signed certificate (point ``NODE_EXTRA_CA_CERTS`` here)."""
        return self.secrets_dir / "rendezvous.crt"

    @property
    def rendezvous_tls_key_file(self) -> Path:
        return self.secrets_dir / "rendezvous.key"

    @property
    def run_dir(self) -> Path:
        """Local Unix sockets of the platform's processes (mode 0700)."""
        return self.data_dir / "run"

    @property
    def rendezvous_socket(self) -> Path:
        """Where the agent hands one-off dynos' terminals to the rendezvous service."""
        return self.run_dir / "rendezvous.sock"

    @property
    def agent_socket(self) -> Path:
        """The agent's local endpoint: ``wake <app id>`` starts a sleeping app's web dynos."""
        return self.run_dir / "agent.sock"

    @property
    def audit_dir(self) -> Path:
        """The audit log: entries, stored hashes, checkpoints and the signing key, owned by the
        ``audit-writer`` process alone (0700)."""
        return self.data_dir / "audit"

    @property
    def audit_socket(self) -> Path:
        """The audit writer's Unix socket: the only way other processes append to the log."""
        return self.run_dir / "audit.sock"

    @property
    def audit_origin(self) -> str:
        return self.audit.origin or f"{self.domain}/audit"

    @property
    def last_request_dir(self) -> Path:
        """``<app id>`` files whose modification time is the app's last request (the router touches
        them, at most once a second); the agent puts ``eco`` web dynos to sleep from them."""
        return self.state_dir / "last-request"


def _convert(raw: object, annotation: Any, name: str) -> object:
    target = annotation
    if isinstance(target, types.UnionType):
        target = next(arg for arg in typing.get_args(target) if arg is not type(None))
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if target is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(str(raw))
        if target is float:
            return float(str(raw))
        if target is Path:
            return Path(str(raw)).expanduser()
        return str(raw)
    except ValueError as exc:
        raise InvalidError(
            f"setting {name}: {raw!r} is not a valid {getattr(target, '__name__', target)}",
            field=name,
        ) from exc


def _build(
    cls: type[Any], table: Mapping[str, object], env: Mapping[str, str], prefix: str, section: str
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - known
    if unknown:
        where = f"[{section}]" if section else "top level"
        raise InvalidError(f"dockyard.toml: unknown setting(s) {sorted(unknown)} at {where}")
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            sub = table.get(f.name, {})
            if not isinstance(sub, Mapping):
                raise InvalidError(f"dockyard.toml: [{f.name}] must be a table")
            values[f.name] = _build(
                typing.cast(type[Any], hint), sub, env, f"{prefix}{f.name.upper()}_", f.name
            )
            continue
        env_name = f"{prefix}{f.name.upper()}"
        if env_name in env:
            values[f.name] = _convert(env[env_name], hint, env_name)
        elif f.name in table:
            values[f.name] = _convert(table[f.name], hint, f"{section or 'dockyard.toml'}.{f.name}")
    return cls(**values)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment and the optional TOML file."""
    env = os.environ if env is None else env
    config_file = Path(env[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in env else None
    if config_file is None:
        candidate = default_config_file(env)
        config_file = candidate if candidate.is_file() else None
    table: Mapping[str, object] = {}
    if config_file is not None:
        try:
            table = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InvalidError(f"configuration file {config_file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidError(f"configuration file {config_file}: {exc}") from exc
    settings: Settings = _build(Settings, table, env, ENV_PREFIX, "")
    if "data_dir" not in table and f"{ENV_PREFIX}DATA_DIR" not in env:
        settings = dataclasses.replace(settings, data_dir=default_data_dir(env))
    return settings
