"""run and run:detached: the API call, then a real TLS session with the rendezvous service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.agent.terminal import hand_over
from dockyard.cli.commands.run import MARKER, ExitStatus, LineEndings, build_command, parse_env
from dockyard.domain.dataplane import attach_secret
from dockyard.errors import InvalidError
from dockyard.rendezvous.server import RendezvousServer
from dockyard.rendezvous.tls import ensure_certificate, fingerprint, server_context
from tests.cli.conftest import Dock
from tests.cli.fakeapi import STAMP, FakeApi

KEY = "cli-test-key"
DYNO_ID = "0f0e0d0c-0000-4000-8000-000000001234"
STATUS = MARKER.replace("\uffff", "\\xef\\xbf\\xbf")  # for printf in the fake dyno


class LiveRendezvous:
    """The real rendezvous service on its own event loop thread, and fake dynos on real ptys."""

    def __init__(self, tmp_path: Path) -> None:
        self.cert, key = tmp_path / "rendezvous.crt", tmp_path / "rendezvous.key"
        ensure_certificate(self.cert, key, "localhost")
        self.socket_path = tmp_path / "run" / "rendezvous.sock"
        self.server = RendezvousServer(
            KEY,
            server_context(self.cert, key),
            host="127.0.0.1",
            port=0,
            socket_path=self.socket_path,
            attach_timeout=10,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.processes: list[subprocess.Popen[bytes]] = []

    def url(self, *, pin: str | None = None) -> str:
        pin = pin or fingerprint(self.cert.read_text())
        secret = attach_secret(KEY, DYNO_ID)
        return f"rendezvous://localhost:{self.server.port}/{secret}?sha256={pin}"

    def dyno(self, script: str) -> None:
        """A process on a pty whose master the service holds, as the agent sets one up."""
        master, slave = os.openpty()
        hand_over(self.socket_path, DYNO_ID, master)
        os.close(master)
        self.processes.append(
            subprocess.Popen(
                ["bash", "-c", script],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        )
        os.close(slave)

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def rendezvous(tmp_path: Path) -> Iterator[LiveRendezvous]:
    service = LiveRendezvous(tmp_path)
    yield service
    service.close()


def dyno_json(attach_url: str | None) -> dict[str, Any]:
    return {
        "id": DYNO_ID,
        "name": "run.1234",
        "type": "run",
        "state": "starting",
        "command": "x",
        "size": "Standard-1X",
        "attach_url": attach_url,
        "release": {"version": 3},
        "created_at": STAMP,
        "updated_at": STAMP,
    }


@pytest.fixture(autouse=True)
def _shop(fake: FakeApi) -> None:
    fake.add_app("shop")


def answer_run(fake: FakeApi, attach_url: str | None) -> None:
    fake.errors[("POST", "/apps/shop/dynos")] = (201, dyno_json(attach_url))


def test_run_prints_the_output_and_exits_with_the_commands_status(
    dock: Dock, fake: FakeApi, rendezvous: LiveRendezvous
) -> None:
    answer_run(fake, rendezvous.url())
    rendezvous.dyno(f"echo hello; printf '{STATUS} 0\\n'")
    result = dock("run", "-a", "shop", "-e", "A=1;B=two words", "echo", "hello")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello\n"
    assert "Running `echo hello` on ⬢ shop... up, run.1234" in result.stderr
    (post,) = [s for s in fake.sent("POST") if s[1] == "/apps/shop/dynos"]
    assert post[2]["command"] == f'echo hello; echo "{MARKER} $?"'
    assert (post[2]["attach"], post[2]["env"]) == (True, {"A": "1", "B": "two words"})


def test_run_passes_the_exit_status_through(
    dock: Dock, fake: FakeApi, rendezvous: LiveRendezvous
) -> None:
    answer_run(fake, rendezvous.url())
    rendezvous.dyno(f"echo failing >&2; printf '{STATUS} 3\\n'")
    result = dock("run", "-a", "shop", "false")
    assert result.exit_code == 3
    assert result.stdout == "failing\n"


def test_run_sends_the_input_and_ends_it_with_ctrl_d(
    dock: Dock, fake: FakeApi, rendezvous: LiveRendezvous
) -> None:
    answer_run(fake, rendezvous.url())
    rendezvous.dyno(
        f"stty -echo; lines=$(wc -l); echo \"got $lines lines\"; printf '{STATUS} 0\\n'"
    )
    result = dock("run", "-a", "shop", "wc -l", input="one\ntwo\n")
    assert result.exit_code == 0, result.output
    assert "got 2 lines" in result.stdout


def test_a_dyno_that_ends_without_a_status_exits_1_and_says_so(
    dock: Dock, fake: FakeApi, rendezvous: LiveRendezvous
) -> None:
    answer_run(fake, rendezvous.url())
    rendezvous.dyno("echo partial")
    result = dock("run", "-a", "shop", "sleep", "100")
    assert result.exit_code == 1
    assert result.stdout == "partial\n"
    assert "run.1234 ended without an exit status" in result.stderr


def test_a_certificate_that_is_not_the_pinned_one_is_refused(
    dock: Dock, fake: FakeApi, rendezvous: LiveRendezvous
) -> None:
    answer_run(fake, rendezvous.url(pin="0" * 64))
    result = dock("run", "-a", "shop", "bash")
    assert result.exit_code == 1
    assert "certificate is not the one the API named" in result.stderr


def test_run_detached_points_to_the_logs(dock: Dock, fake: FakeApi) -> None:
    answer_run(fake, None)
    result = dock("run:detached", "-a", "shop", "-s", "standard-2x", "rake", "db:migrate")
    assert result.exit_code == 0, result.output
    assert "Running `rake db:migrate` on ⬢ shop... done, run.1234 (Standard-1X)" in result.stderr
    assert result.stdout == "Run dockyard logs --app shop --dyno run.1234 to view the output.\n"
    (post,) = [s for s in fake.sent("POST") if s[1] == "/apps/shop/dynos"]
    assert post[2] == {
        "command": "rake db:migrate",
        "attach": False,
        "env": {},
        "size": "standard-2x",
    }


def test_run_needs_a_command(dock: Dock, fake: FakeApi) -> None:
    assert dock("run", "-a", "shop").exit_code == 2
    assert fake.writes() == []


# -- the pieces -------------------------------------------------------------------------------------


def test_commands_are_built_like_the_heroku_cli_builds_them() -> None:
    assert build_command(("rake test",)) == "rake test"
    assert build_command(("echo", "two words", 'say "hi"')) == 'echo "two words" "say \\"hi\\""'


def test_env_flags_are_key_value_pairs_separated_by_semicolons() -> None:
    assert parse_env("A=1; B = x=y ;") == {"A": "1", "B": "x=y"}
    with pytest.raises(InvalidError, match="not KEY=VALUE"):
        parse_env("A")


def test_the_exit_status_line_is_found_across_chunks_and_removed() -> None:
    status = ExitStatus()
    line = f"{MARKER} 42\r\n".encode()
    out = b"".join(status.feed(line[i : i + 3]) for i in range(0, len(line), 3))
    assert (out, status.code) == (b"", 42)
    other = ExitStatus()
    assert other.feed("a \uffff b\n".encode()) + other.flush() == "a \uffff b\n".encode()
    assert other.code is None


def test_carriage_returns_go_when_the_output_is_not_a_terminal() -> None:
    endings = LineEndings()
    assert endings.feed(b"a\r") + endings.feed(b"\nb\r\n") + endings.flush() == b"a\nb\n"
