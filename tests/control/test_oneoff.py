"""One-off dynos in the control plane: run requests, names, limits, expiry, stop."""

from __future__ import annotations

import pytest

from dockyard._util.clock import FakeClock
from dockyard.control import oneoff
from dockyard.control.accounts import create_user
from dockyard.control.context import Platform
from dockyard.control.dataplane import desired_dynos
from dockyard.control.oneoff import RunRequest
from dockyard.control.releases import append_release
from dockyard.errors import AccessDeniedError, InvalidError, NotFoundError
from dockyard.store.records import Account


@pytest.fixture
def owner(platform: Platform) -> Account:
    return create_user(platform, "owner@example.com").account


def deploy(
    platform: Platform, owner: Account, name: str = "shop", size: str = "standard-2x"
) -> None:
    with platform.store.transaction() as tx:
        app = tx.create_app(name, owner.id, "heroku-24")
        slug = tx.create_slug(
            app.id, digest="b" * 64, size=1, process_types={"web": "serve"}, commit=None, stack="x"
        )
        append_release(tx, app, slug_id=slug.id, config={"A": "1"}, description="d", user=None)
        tx.ensure_formation(app.id, "web", quantity=1, size=size)
        tx.update_formation(app.id, "web", size=size)


def one_offs(platform: Platform) -> list[str]:
    return [d.name for d in desired_dynos(platform, "h") if d.kind == "one-off"]


def test_a_run_request_takes_herokus_fields() -> None:
    request = RunRequest.from_json(
        {
            "command": "bash",
            "attach": True,
            "env": {"TERM": None, "COLUMNS": 80, "X": "y"},
            "size": "Standard-2X",
            "type": "console",
            "time_to_live": 1799.5,
            "force_no_tty": True,
        }
    )
    assert request == RunRequest(
        command="bash",
        attach=True,
        env={"COLUMNS": "80", "X": "y"},
        size="standard-2x",
        type="console",
        time_to_live=1800,
        tty=False,
    )
    assert RunRequest.from_json({"command": "ls"}) == RunRequest("ls")


def test_a_one_off_dyno_takes_the_size_of_the_web_dynos_by_default(
    platform: Platform, owner: Account
) -> None:
    deploy(platform, owner, size="standard-2x")
    started = oneoff.run(platform, owner, "shop", RunRequest("ls"))
    assert started.dyno.size == "standard-2x"
    assert oneoff.run(platform, owner, "shop", RunRequest("ls", size="basic")).dyno.size == "basic"


def test_names_are_run_and_four_digits_and_never_collide(
    platform: Platform, owner: Account
) -> None:
    deploy(platform, owner)
    names = [oneoff.run(platform, owner, "shop", RunRequest("ls")).dyno.name for _ in range(40)]
    assert len(set(names)) == 40
    assert all(n.startswith("run.") and n[4:].isdigit() and len(n) == 8 for n in names)
    custom = oneoff.run(platform, owner, "shop", RunRequest("ls", type="console"))
    assert custom.dyno.name.startswith("console.")


def test_an_app_runs_at_most_50_one_off_dynos_at_once_and_eco_only_one(
    platform: Platform, owner: Account
) -> None:
    deploy(platform, owner, size="eco")
    oneoff.run(platform, owner, "shop", RunRequest("ls"))
    with pytest.raises(InvalidError, match="already runs 1 one-off dynos"):
        oneoff.run(platform, owner, "shop", RunRequest("ls"))
    for _ in range(49):
        oneoff.run(platform, owner, "shop", RunRequest("ls", size="standard-1x"))
    with pytest.raises(InvalidError, match="already runs 50"):
        oneoff.run(platform, owner, "shop", RunRequest("ls", size="standard-1x"))


def test_a_one_off_dyno_long_past_its_time_to_live_is_no_longer_desired(
    platform: Platform, owner: Account, clock: FakeClock
) -> None:
    deploy(platform, owner)
    started = oneoff.run(platform, owner, "shop", RunRequest("sleep 1000", time_to_live=60))
    assert one_offs(platform) == [started.dyno.name]
    clock.advance(60 + 3600)
    assert one_offs(platform) == [started.dyno.name]
    clock.advance(1)
    assert one_offs(platform) == []


def test_a_one_off_dyno_keeps_the_release_it_was_asked_for_in(
    platform: Platform, owner: Account
) -> None:
    deploy(platform, owner)
    oneoff.run(platform, owner, "shop", RunRequest("ls"))
    with platform.store.transaction() as tx:
        app = tx.get_app("shop")
        slug = tx.create_slug(
            app.id, digest="c" * 64, size=1, process_types={"web": "v2"}, commit=None, stack="x"
        )
        append_release(tx, app, slug_id=slug.id, config={"A": "2"}, description="d", user=None)
    (run,) = [d for d in desired_dynos(platform, "h") if d.kind == "one-off"]
    assert (run.release_version, run.slug_digest, run.env["A"]) == (1, "b" * 64, "1")


def test_stop_by_name_or_id(platform: Platform, owner: Account) -> None:
    deploy(platform, owner)
    first = oneoff.run(platform, owner, "shop", RunRequest("sleep 100")).dyno
    second = oneoff.run(platform, owner, "shop", RunRequest("sleep 100")).dyno
    oneoff.stop(platform, owner, "shop", first.name)
    oneoff.stop(platform, owner, "shop", second.id)
    assert one_offs(platform) == []


def test_nobody_else_may_run_or_stop(platform: Platform, owner: Account) -> None:
    deploy(platform, owner)
    stranger = create_user(platform, "stranger@example.com").account
    with pytest.raises((NotFoundError, AccessDeniedError)):
        oneoff.run(platform, stranger, "shop", RunRequest("ls"))
    assert one_offs(platform) == []
