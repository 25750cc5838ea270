"""RuncRuntime.start_attached: an attached one-off dyno on a terminal of its own, whose master comes back
over runc's console socket (root, the real stack image)."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import pytest

from dockyard.runtime.runc import RuncRuntime
from tests.runtime.runc_support import current, requires_runc, runc_runtime, spec, wait_for

pytestmark = [requires_runc, pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture
def env() -> Iterator[tuple[RuncRuntime, str]]:
    with runc_runtime() as pair:
        yield pair


def read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    """What the terminal shows until ``marker`` (or its end)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"{marker!r} never came; the terminal showed {seen!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: no process holds the terminal any more
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_a_dyno_on_a_terminal_talks_through_the_master_with_the_client_s_window_size(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    command = 'stty size; tty; read -r line; echo "got $line"'
    dyno, master = runtime.start_attached(
        spec(slug, command, name="run.1"), tty=True, size=(33, 111)
    )
    try:
        assert dyno.state == "running"
        shown = read_until(master, b"/dev/pts/")
        assert b"33 111\r\n" in shown  # the window size; \n becomes \r\n as on a terminal
        os.write(master, b"hello\n")
        shown = read_until(master, b"got hello\r\n")
        assert b"hello\r\n" in shown.split(b"got hello")[0]  # echoed
        wait_for(lambda: current(runtime, dyno.spec.id).state == "exited", what="the end")
        assert current(runtime, dyno.spec.id).exit_code == 0
    finally:
        os.close(master)


def test_ctrl_c_on_the_terminal_interrupts_the_dyno_s_command(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    dyno, master = runtime.start_attached(
        spec(slug, "echo ready; sleep 300", name="run.2"), tty=True, size=None
    )
    try:
        read_until(master, b"ready")
        os.write(master, b"\x03")
        wait_for(lambda: current(runtime, dyno.spec.id).state == "exited", what="the end")
        assert current(runtime, dyno.spec.id).exit_code == 130  # 128 + SIGINT
    finally:
        os.close(master)


def test_without_tty_bytes_pass_as_they_are_and_ctrl_d_ends_the_input(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    command = "cat > /tmp/in; echo done; od -An -c /tmp/in"
    dyno, master = runtime.start_attached(spec(slug, command, name="run.3"), tty=False, size=None)
    try:
        os.write(master, b"a\tb\n\x04")
        shown = read_until(master, b"\\n\n")
        assert shown.startswith(b"done\n")  # no echo of the input, no \r added
        assert shown.split() == [b"done", b"a", b"\\t", b"b", b"\\n"]
        wait_for(lambda: current(runtime, dyno.spec.id).state == "exited", what="the end")
    finally:
        os.close(master)


def test_an_attached_start_that_fails_leaves_nothing(env: tuple[RuncRuntime, str]) -> None:
    runtime, slug = env
    with pytest.raises(Exception, match="unknown dyno size"):
        runtime.start_attached(spec(slug, "true", name="run.4", size="huge"), tty=True, size=None)
    assert runtime.list() == []
    assert not list(runtime.run_root.glob("console-*.sock"))
