"""The composition root: every long-running Dockyard process starts here.

    python -m dockyard.serve up        # the supervisor: audit writer, API, router, agent, git-ssh, rendezvous
    python -m dockyard.serve audit-writer  # the audit log's writer: owns its files and signing key
    python -m dockyard.serve api       # the Platform API (and git smart HTTP) under uvicorn
    python -m dockyard.serve logs      # app log streams: ring buffers, tails, drains, retention
    python -m dockyard.serve router    # the HTTP router
    python -m dockyard.serve agent     # the dyno manager of this host
    python -m dockyard.serve git-ssh   # git over SSH (asyncssh), port 2222 by default
    python -m dockyard.serve rendezvous  # joins `run` clients to one-off dynos (TLS, port 5001)
    python -m dockyard.serve admin create-user EMAIL
    python -m dockyard.serve migrate
    python -m dockyard.serve stack-build [--variant run|build]

``dockyard up`` (the CLI) replaces itself with the first form. This module is the only one allowed to import
from every layer; the supervisor restarts a child that dies, and on Ctrl-C stops the children and the dynos.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Literal

from dockyard import __version__
from dockyard._util import proc
from dockyard._util.secretfile import ensure_secret_file
from dockyard.errors import DockyardError, UnavailableError
from dockyard.settings import Settings, load_settings

log = logging.getLogger("dockyard.serve")
ROLES = ("audit-writer", "api", "logs", "router", "agent", "git-ssh", "rendezvous")
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
QUIET_LOGGERS = ("alembic", "httpx", "httpcore", "asyncssh")
"""Libraries that log every request, connection or migration step at INFO."""


def run_api(settings: Settings) -> None:
    import uvicorn

    from dockyard.api.app import create_app
    from dockyard.control import builds, releasephase
    from dockyard.control.context import Platform
    from dockyard.git.http import git_routes

    platform = Platform.open(settings)
    # Work the previous API process left half-done (it crashed or was killed) is failed cleanly first.
    for build_id in builds.recover(platform):
        log.warning("build %s was interrupted by a restart and is marked failed", build_id)
    for release in releasephase.recover(platform):
        log.warning(
            "release v%d of app %s was interrupted and is marked failed",
            release.version,
            release.app_id,
        )
    if settings.smtp.url:  # mail the previous process left in the outbox goes out now
        threading.Thread(
            target=deliver_outbox, args=(settings,), name="dockyard-outbox", daemon=True
        ).start()
    token = ensure_secret_file(settings.internal_token_file)
    app = create_app(platform, internal_token=token, extra_routes=git_routes(platform))
    log.info("API listening on %s (git remotes: %s/<app>.git)", settings.api_url, settings.api_url)
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=5,  # long polls and log tails are cut, not waited for
    )


def deliver_outbox(settings: Settings, wait: Callable[[float], object] = time.sleep) -> int:
    """Send the mail waiting in the outbox (left by an API process that stopped before sending
    it), trying again every minute while the mail server cannot be reached; how many were sent.
    Mail the server refuses stays, as ``control.mail`` keeps it."""
    from dockyard.control import mail

    sent = 0
    while settings.smtp.url and mail.pending(settings):
        try:
            sent += mail.deliver_pending(settings)
        except UnavailableError as exc:
            log.warning("%s; the outbox is tried again in a minute", exc.message)
            wait(mail.RETRY_INTERVAL)
            continue
        break
    if sent:
        log.info("sent %d message(s) left in the outbox", sent)
    return sent


def run_audit_writer(settings: Settings) -> None:
    from dockyard.audit.writer import main

    main(settings)


def run_router(settings: Settings) -> None:
    from dockyard.router.server import main

    main(settings)


def run_agent(settings: Settings) -> None:
    from dockyard.agent.manager import main

    main(settings)


def run_git_ssh(settings: Settings) -> None:
    from dockyard.git.ssh import main

    main(settings)


def run_logs(settings: Settings) -> None:
    from dockyard.control.drains import drain_configs
    from dockyard.logs.server import main
    from dockyard.store import SqlStore

    store = SqlStore(settings.sqlalchemy_url)
    try:
        main(settings, lambda: drain_configs(store))
    finally:
        store.dispose()


def run_rendezvous(settings: Settings) -> None:
    from dockyard.rendezvous.server import main

    main(settings)


def stop_all_dynos(settings: Settings) -> int:
    from dockyard.runtime.base import load_runtime

    runtime = load_runtime(settings)
    dynos = runtime.list()
    for dyno in dynos:
        runtime.stop(dyno.spec.id, timeout=settings.agent.stop_timeout)
    runtime.release_unused(set())
    return len(dynos)


class Supervisor:
    """Runs each role as a child process in its own session and restarts it when it dies."""

    def __init__(self, settings: Settings, roles: Sequence[str] = ROLES) -> None:
        self.settings = settings
        self.roles = roles
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.failures: dict[str, int] = dict.fromkeys(roles, 0)
        self.restart_at: dict[str, float] = {}
        self.stopping = False

    def _start(self, role: str) -> None:
        self.children[role] = proc.spawn([sys.executable, "-m", "dockyard.serve", role])
        log.info("started %s (pid %d)", role, self.children[role].pid)

    def _wait_for_api(self, timeout: float = 20.0) -> None:
        """Let the API open its port before the data plane starts asking it for work, so a normal start
        does not begin with a burst of "cannot reach the API" warnings."""
        deadline = time.monotonic() + timeout
        address = (self.settings.api.host, self.settings.api.port)
        while time.monotonic() < deadline and not self.stopping:
            try:
                with socket.create_connection(address, timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        log.warning("the API is not answering on %s:%d yet; starting the rest anyway", *address)

    def _wait_for_audit_writer(self, timeout: float = 10.0) -> None:
        """Audited actions fail (503) until the audit writer listens, so the API starts after it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if self.settings.audit_socket.exists():
                return
            time.sleep(0.05)
        log.warning("the audit writer is not listening yet; audited actions fail until it does")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self, *, stop_dynos: bool = True) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for role in self.roles:
            self._start(role)
            if role == "api":
                self._wait_for_api()
            if role == "audit-writer":
                self._wait_for_audit_writer()
        while not self.stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for role, child in list(self.children.items()):
                if child.poll() is None:
                    continue
                if role not in self.restart_at:
                    delay = RESTART_DELAYS[min(self.failures[role], len(RESTART_DELAYS) - 1)]
                    self.failures[role] += 1
                    self.restart_at[role] = now + delay
                    log.error(
                        "%s exited with status %s; restarting in %.0f s",
                        role,
                        child.returncode,
                        delay,
                    )
                elif now >= self.restart_at[role]:
                    del self.restart_at[role]
                    self._start(role)
        self.shutdown(stop_dynos=stop_dynos)

    def shutdown(self, *, stop_dynos: bool) -> None:
        log.info("stopping Dockyard…")
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for role, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", role)
                child.kill()
                child.wait()
        if stop_dynos:
            count = stop_all_dynos(self.settings)
            log.info("stopped %d dyno(s)", count)
        log.info("Dockyard stopped")


def runtime_banner(settings: Settings) -> list[str]:
    """What ``up`` says about the dyno runtime: loudly when dynos are not sandboxed."""
    name = settings.agent.runtime
    if name == "runc":
        return [
            "  runtime        : runc (sandboxed: namespaces, cgroups, seccomp, no capabilities)"
        ]
    if name == "process":
        return [
            "  runtime        : process",
            "  !!! THE process RUNTIME IS NOT A SANDBOX: dynos run as plain processes of this host, with",
            "  !!! access to its files, processes and network. Run only code you trust, or run Dockyard",
            '  !!! as root with agent.runtime = "runc".',
        ]
    return [f"  runtime        : {name}"]


def ensure_stack(settings: Settings) -> None:
    """Build the stack images the runc runtime (``run``) and the runc build sandbox (``build``) need,
    when they are not built yet."""
    from dockyard.runtime.stack import StackImages

    images = StackImages(settings)
    variants: list[Literal["run", "build"]] = ["run"]
    if settings.build.sandbox == "runc":
        variants.append("build")
    for variant in variants:
        label = "stack" if variant == "run" else "build stack"
        image = images.current(variant)
        if image is None:
            print(
                f"  {label:<15}: not built yet — building it now (once; a few minutes)", flush=True
            )
            image = images.build(
                variant, on_line=lambda line: print(f"                   {line}", flush=True)
            )
        print(f"  {label:<15}: {image.label}")


def cmd_stack_build(settings: Settings, args: argparse.Namespace) -> int:
    from dockyard.runtime.stack import StackImages

    image = StackImages(settings).build(args.variant, on_line=lambda line: print(line, flush=True))
    print(f"Built {image.path}")
    if args.variant == "run":
        print("New dynos use it; running dynos keep theirs until they restart.")
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from dockyard.control.context import Platform

    platform = Platform.open(settings)  # migrate before the children start
    with platform.store.read() as tx:
        accounts = tx.list_accounts()
    platform.close()
    ensure_secret_file(settings.internal_token_file)
    print(f"Dockyard {__version__}")
    print(f"  data directory : {settings.data_dir}")
    print(f"  API            : {settings.api_url}")
    print(f"  apps           : {settings.app_url('<app>')}")
    print(f"  git over SSH   : {settings.git_ssh_url('<app>')}")
    for line in runtime_banner(settings):
        print(line)
    from dockyard.router.tls import install_notes  # makes the Dockyard CA on the first start

    for line in install_notes(settings):
        print(line)
    if settings.agent.runtime == "runc":
        ensure_stack(settings)
    if not accounts:
        print(
            "  No account yet. Create one in another terminal:  dockyard admin:create-user you@example.com"
        )
    print("Press Ctrl-C to stop.", flush=True)
    Supervisor(settings).run(stop_dynos=not args.keep_dynos)
    return 0


def cmd_admin(settings: Settings, args: argparse.Namespace) -> int:
    from dockyard.control.accounts import create_user
    from dockyard.control.context import Platform
    from dockyard.domain.requests import OPERATOR

    platform = Platform.open(settings)
    try:
        if args.action == "create-user":
            user = create_user(platform, args.email, args.name or "", context=OPERATOR)
            print(f"Created account {user.account.email}")
            print(f"API key (shown once): {user.api_key}")
            print(
                f"Log in with:  dockyard login --email {user.account.email} --api-key {user.api_key}"
            )
            return 0
        if args.action == "list-users":
            with platform.store.read() as tx:
                for account in tx.list_accounts():
                    print(account.email)
            return 0
        if args.action == "set-role":
            from dockyard.control.revocation import set_role

            account = set_role(platform, args.email, args.role)
            print(f"{account.email} is now {args.role}")
            if args.role == "admin":
                print("Operator routes work once this account has registered a security key.")
            return 0
        if args.action == "outbox":
            from dockyard.control import mail

            kept = mail.read_outbox(settings)
            if not settings.smtp.url:
                print("No SMTP server is set (DOCKYARD_SMTP_URL): mail is kept here.")
            print(f"{len(kept)} message(s) in {settings.outbox_dir}")
            for message in kept:
                print(f"\n--- {message.date}  To: {message.to}\n    {message.subject}\n")
                print(message.body)
            return 0
    finally:
        platform.close()
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard-serve", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the API, router and agent")
    up.add_argument("--keep-dynos", action="store_true", help="leave dynos running on shutdown")
    for role in ROLES:
        sub.add_parser(role, help=f"run the {role} in the foreground")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("stop-dynos", help="stop every dyno on this host")
    stack = sub.add_parser("stack-build", help="build the stack image dynos run on (debootstrap)")
    stack.add_argument(
        "--variant",
        choices=("run", "build"),
        default="run",
        help="run: the dynos' stack; build: the same plus compilers and headers",
    )
    admin = sub.add_parser("admin", help="operator commands")
    admin_sub = admin.add_subparsers(dest="action", required=True)
    create = admin_sub.add_parser("create-user", help="create an account and print its API key")
    create.add_argument("email")
    create.add_argument("--name", default="")
    admin_sub.add_parser("list-users", help="list accounts")
    admin_sub.add_parser("outbox", help="show the mail waiting in the outbox")
    set_role = admin_sub.add_parser(
        "set-role", help="make an account an operator (admin) or a user"
    )
    set_role.add_argument("email")
    set_role.add_argument("role", choices=("admin", "user"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for chatty in QUIET_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = load_settings()
        if args.command == "up":
            return cmd_up(settings, args)
        if args.command == "admin":
            return cmd_admin(settings, args)
        if args.command == "migrate":
            from dockyard.control.context import Platform

            Platform.open(settings).close()
            print("database is up to date")
            return 0
        if args.command == "stack-build":
            return cmd_stack_build(settings, args)
        if args.command == "stop-dynos":
            print(f"stopped {stop_all_dynos(settings)} dyno(s)")
            return 0
        runners = {
            "audit-writer": run_audit_writer,
            "api": run_api,
            "router": run_router,
            "agent": run_agent,
            "git-ssh": run_git_ssh,
            "rendezvous": run_rendezvous,
            "logs": run_logs,
        }
        from dockyard.logs.platformlog import configure as platform_log

        platform_log(settings, args.command)  # JSON events for the operator's monitoring
        runners[args.command](settings)
        return 0
    except DockyardError as exc:
        print(f" !    {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
