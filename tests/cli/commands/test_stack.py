"""stack:build: replaces the CLI process with ``python -m dockyard.serve stack-build``, passing every argument."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from dockyard.cli.commands import stack
from tests.cli.conftest import Dock
from tests.cli.fakeapi import make_context


def test_stack_build_execs_the_server_module_with_passthrough_args(dock: Dock) -> None:
    calls: list[list[str]] = []
    context = make_context(
        dock.fake, env=dock.env, cwd=dock.cwd, execv=lambda path, argv: calls.append(list(argv))
    )
    result = CliRunner().invoke(stack.build, ["--variant", "build"], obj=context)
    assert result.exit_code == 0, result.output
    assert calls == [[sys.executable, "-m", "dockyard.serve", "stack-build", "--variant", "build"]]
