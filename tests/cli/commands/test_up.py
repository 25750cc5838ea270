"""up: replaces the CLI process with ``python -m dockyard.serve up``, passing every argument."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tests.cli.conftest import Dock


def test_up_execs_the_server_module_with_passthrough_args(dock: Dock) -> None:
    calls: list[tuple[str, list[str]]] = []

    def execv(path: str, argv: Sequence[str]) -> None:
        calls.append((path, list(argv)))

    result = dock("up", "--port", "5001", "--help", "-v", execv=execv)
    assert result.exit_code == 0, result.output
    assert calls == [
        (
            sys.executable,
            [sys.executable, "-m", "dockyard.serve", "up", "--port", "5001", "--help", "-v"],
        )
    ]


def test_up_needs_no_credentials(dock: Dock, env: dict[str, str]) -> None:
    del env["DOCKYARD_API_KEY"]
    calls: list[Sequence[str]] = []
    result = dock("up", execv=lambda path, argv: calls.append(argv))
    assert result.exit_code == 0
    assert list(calls[0]) == [sys.executable, "-m", "dockyard.serve", "up"]


def test_cli_does_not_import_the_server() -> None:
    from dockyard._util import proc

    code = (
        "import sys, dockyard.cli.main; "
        "bad = [m for m in sys.modules if m.split('.')[:2] in (['dockyard','api'], "
        "['dockyard','control'], ['dockyard','store'], ['dockyard','serve'])] "
        "+ [m for m in ('fastapi', 'sqlalchemy', 'uvicorn') if m in sys.modules]; "
        "print(bad)"
    )
    assert proc.run([sys.executable, "-c", code]).text.strip() == "[]"


def test_admin_commands_exec_the_server_admin(dock: Dock) -> None:
    calls: list[list[str]] = []
    result = dock(
        "admin:create-user", "dev@example.com", execv=lambda path, argv: calls.append(list(argv))
    )
    assert result.exit_code == 0
    assert calls == [
        [sys.executable, "-m", "dockyard.serve", "admin", "create-user", "dev@example.com"]
    ]
