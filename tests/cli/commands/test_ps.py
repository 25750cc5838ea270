"""ps, ps:scale, ps:restart."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi


@pytest.fixture(autouse=True)
def _shop(fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.add_release("shop", "Deploy abc")
    fake.add_process("shop", "web", "python3 -m http.server $PORT", quantity=2)
    fake.add_process("shop", "worker", "python3 worker.py", quantity=1)


def test_ps_groups_dynos_like_heroku(dock: Dock) -> None:
    result = dock("ps", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "=== web (Standard-1X): python3 -m http.server $PORT (2)\n"
        "web.1: up 2026/01/01 11:58:00 +0000 (~ 2m ago)\n"
        "web.2: up 2026/01/01 11:58:00 +0000 (~ 2m ago)\n"
        "\n"
        "=== worker (Standard-1X): python3 worker.py (1)\n"
        "worker.1: up 2026/01/01 11:58:00 +0000 (~ 2m ago)\n"
    )


def test_ps_sorts_dyno_numbers_numerically(dock: Dock, fake: FakeApi) -> None:
    fake.dynos["shop"] = [
        dict(fake.dynos["shop"][0], name=f"web.{n}", id=f"d{n}") for n in (10, 2, 1)
    ]
    lines = dock("ps", "-a", "shop").stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["web.1", "web.2", "web.10"]


def test_ps_json(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps", "-a", "shop", "--json")
    assert [d["name"] for d in json.loads(result.stdout)] == ["web.1", "web.2", "worker.1"]


def test_ps_without_dynos(dock: Dock, fake: FakeApi) -> None:
    fake.dynos["shop"] = []
    assert dock("ps", "-a", "shop").stdout == "No dynos on shop\n"


def test_scale_without_arguments_shows_the_formation(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:scale", "-a", "shop")
    assert result.stdout == "web=2:Standard-1X worker=1:Standard-1X\n"
    assert fake.writes() == []


def test_scale_absolute_with_size(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:scale", "web=3", "worker=1:standard-2x", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [
        (
            "PATCH",
            "/apps/shop/formation",
            {
                "updates": [
                    {"type": "web", "quantity": 3},
                    {"type": "worker", "quantity": 1, "size": "standard-2x"},
                ]
            },
        )
    ]
    assert result.stderr == (
        "Scaling dynos... done, now running web at 3:Standard-1X, worker at 1:Standard-2X\n"
    )


def test_scale_relative_reads_the_formation_first(dock: Dock, fake: FakeApi) -> None:
    result = dock("scale", "web+1", "worker-1", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [
        (
            "PATCH",
            "/apps/shop/formation",
            {"updates": [{"type": "web", "quantity": 3}, {"type": "worker", "quantity": 0}]},
        )
    ]


def test_scale_below_zero_is_refused(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:scale", "worker-2", "-a", "shop")
    assert result.exit_code == 2
    assert fake.writes() == []


def test_scale_size_only(dock: Dock, fake: FakeApi) -> None:
    dock("ps:scale", "web:Standard-2X", "-a", "shop")
    assert fake.writes()[0][2] == {"updates": [{"type": "web", "size": "standard-2x"}]}


def test_scale_rejects_garbage(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:scale", "web", "-a", "shop")
    assert result.exit_code == 2
    assert "is not a scale change" in result.stderr
    assert fake.writes() == []


def test_restart_all(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:restart", "-a", "shop")
    assert result.exit_code == 0
    assert fake.writes() == [("DELETE", "/apps/shop/dynos", None)]
    assert result.stderr == "Restarting dynos on shop... done\n"


def test_restart_one_dyno(dock: Dock, fake: FakeApi) -> None:
    result = dock("restart", "web.1", "-a", "shop")
    assert fake.writes() == [("DELETE", "/apps/shop/dynos/web.1", None)]
    assert result.stderr == "Restarting web.1 dyno on shop... done\n"


def test_restart_a_process_type(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:restart", "-p", "worker", "-a", "shop")
    assert fake.writes() == [("DELETE", "/apps/shop/dynos/worker", None)]
    assert result.stderr == "Restarting worker dynos on shop... done\n"


def test_scale_without_process_types_says_what_to_do(dock: Dock, fake: FakeApi) -> None:
    fake.formation["shop"] = []
    result = dock("ps:scale", "-a", "shop")
    assert result.exit_code == 1
    assert result.stderr == (
        " !    No process types on shop. Push code with a Procfile to add process types.\n"
    )


def test_a_crashed_dyno_shows_when_it_is_tried_again(dock: Dock, fake: FakeApi) -> None:
    fake.dynos["shop"][0] = dict(
        fake.dynos["shop"][0], state="crashed", next_retry_at="2026-01-01T12:20:00Z"
    )
    lines = dock("ps", "-a", "shop").stdout.splitlines()
    assert (
        lines[1]
        == "web.1: crashed 2026/01/01 11:58:00 +0000 (~ 2m ago); next restart at 2026/01/01 12:20:00 +0000"
    )


def test_ps_stop_stops_one_dyno(dock: Dock, fake: FakeApi) -> None:
    result = dock("ps:stop", "run.4821", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("POST", "/apps/shop/dynos/run.4821/actions/stop", None)]
