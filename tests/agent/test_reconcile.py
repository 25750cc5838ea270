"""The dyno manager's planner: pure cases, with time handed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.agent.reconcile import (
    Observed,
    Plan,
    RestartPolicy,
    SlotKey,
    SlotState,
    Stop,
    plan,
)
from dockyard.domain.dataplane import DesiredDyno
from dockyard.runtime.base import DynoSpec, RunningDyno
from dockyard.types import AppId, AppName, ProcessType, ReleaseVersion, SlugDigest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RestartPolicy(backoff=(0, 1, 2, 4, 8, 16, 32, 60), clean_run=60, boot_timeout=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def want(
    index: int = 1,
    *,
    kind: str = "web",
    release: int = 1,
    env: Mapping[str, str] | None = None,
    generation: str = "0",
    app: str = "app-1",
) -> DesiredDyno:
    return DesiredDyno(
        app_id=AppId(app),
        app_name=AppName("demo"),
        process_type=ProcessType(kind),
        index=index,
        release_version=ReleaseVersion(release),
        slug_digest=SlugDigest(f"{release:064x}"),
        command="python3 app.py" if kind == "web" else "python3 worker.py",
        env=dict(env if env is not None else {"A": "1"}),
        size="standard-1x",
        generation=generation,
    )


def seen(
    desired: DesiredDyno,
    dyno_id: str,
    *,
    started: float = 0,
    up: bool = True,
    exit_code: int | None = None,
) -> Observed:
    spec = DynoSpec(
        id=dyno_id,
        app_id=desired.app_id,
        app_name=desired.app_name,
        name=desired.name,
        process_type=desired.process_type,
        release_version=desired.release_version,
        slug_digest=desired.slug_digest,
        command=desired.command,
        env=dict(desired.env),
        size=desired.size,
        generation=desired.generation,
    )
    dyno = RunningDyno(
        spec=spec,
        port=5000,
        address="127.0.0.1:5000",
        started_at=at(started),
        state="running" if exit_code is None else "exited",
        exit_code=exit_code,
    )
    return Observed(dyno, up=up and exit_code is None)


def run(
    desired: Sequence[DesiredDyno],
    observed: Sequence[Observed],
    now: float,
    slots: Mapping[SlotKey, SlotState] | None = None,
    policy: RestartPolicy = POLICY,
) -> Plan:
    return plan(desired, observed, slots or {}, at(now), policy)


def started(result: Plan) -> list[str]:
    return [d.name for d in result.start]


# -- scaling -----------------------------------------------------------------------------------


def test_scale_up_from_nothing_starts_one_dyno_per_slot() -> None:
    result = run([want(1), want(2), want(1, kind="worker")], [], now=0)
    assert started(result) == ["web.1", "web.2", "worker.1"]
    assert result.stop == ()


def test_matching_running_dynos_are_left_alone() -> None:
    w1, w2 = want(1), want(2)
    result = run([w1, w2], [seen(w1, "a"), seen(w2, "b", up=False)], now=5)
    assert result.start == ()
    assert result.stop == ()


def test_scale_down_stops_the_slots_no_longer_desired() -> None:
    w1, w2, w3 = want(1), want(2), want(3)
    result = run([w1], [seen(w1, "a"), seen(w2, "b"), seen(w3, "c", exit_code=1)], now=5)
    assert result.start == ()
    assert result.stop == (Stop("b", "unwanted"), Stop("c", "exited"))
    assert set(result.slots) == {("app-1", "web.1")}


def test_nothing_desired_stops_everything() -> None:
    w1, k1 = want(1), want(1, kind="worker", app="app-2")
    result = run([], [seen(w1, "a"), seen(k1, "b")], now=5)
    assert {s.dyno_id for s in result.stop} == {"a", "b"}
    assert result.slots == {}


def test_the_same_slot_on_two_apps_are_two_slots() -> None:
    result = run([want(1), want(1, app="app-2")], [seen(want(1), "a")], now=1)
    assert [(d.app_id, d.name) for d in result.start] == [("app-2", "web.1")]


# -- replacement ------------------------------------------------------------------------------


def test_new_release_starts_the_new_dyno_first_and_keeps_the_old_one() -> None:
    old, new = want(1, release=1), want(1, release=2)
    result = run([new], [seen(old, "old")], now=100)
    assert result.start == (new,)
    assert result.stop == ()


def test_old_dyno_stays_while_the_new_one_boots() -> None:
    old, new = want(1, release=1), want(1, release=2)
    first = run([new], [seen(old, "old")], now=100)
    second = run(
        [new], [seen(old, "old"), seen(new, "new", started=100, up=False)], 105, first.slots
    )
    assert second.start == ()
    assert second.stop == ()


def test_old_dyno_stops_once_the_new_one_is_up() -> None:
    old, new = want(1, release=1), want(1, release=2)
    first = run([new], [seen(old, "old")], now=100)
    result = run([new], [seen(old, "old"), seen(new, "new", started=100)], 106, first.slots)
    assert result.start == ()
    assert result.stop == (Stop("old", "replaced"),)


def test_old_dyno_stops_after_the_boot_timeout_when_the_new_one_never_comes_up() -> None:
    old, new = want(1, release=1), want(1, release=2)
    first = run([new], [seen(old, "old")], now=100)
    observed = [seen(old, "old"), seen(new, "new", started=100, up=False)]
    before = run([new], observed, 159, first.slots)
    assert before.stop == ()
    after = run([new], observed, 160, first.slots)
    assert set(after.stop) == {Stop("new", "boot_timeout"), Stop("old", "replaced")}
    assert after.start == (new,)


@pytest.mark.parametrize(
    "changed",
    [
        want(1, generation="1"),  # heroku ps:restart
        want(1, env={"A": "2"}),  # config:set
        replace(want(1), command="gunicorn app:app"),
        replace(want(1), size="standard-2x"),
    ],
    ids=["generation", "config", "command", "size"],
)
def test_any_change_of_the_slot_replaces_its_dyno(changed: DesiredDyno) -> None:
    result = run([changed], [seen(want(1), "old")], now=10)
    assert result.start == (changed,)
    assert result.stop == ()
    later = run(
        [changed], [seen(want(1), "old"), seen(changed, "new", started=10)], 11, result.slots
    )
    assert later.stop == (Stop("old", "replaced"),)


def test_a_worker_of_the_old_release_is_replaced_as_soon_as_the_new_one_runs() -> None:
    old, new = want(1, kind="worker", release=1), want(1, kind="worker", release=2)
    first = run([new], [seen(old, "old")], now=0)
    result = run([new], [seen(old, "old"), seen(new, "new", started=0)], 1, first.slots)
    assert result.stop == (Stop("old", "replaced"),)


def test_an_exited_dyno_of_the_old_release_is_cleaned_up_at_once() -> None:
    old, new = want(1, release=1), want(1, release=2)
    result = run([new], [seen(old, "old", exit_code=1)], now=0)
    assert result.start == (new,)
    assert result.stop == (Stop("old", "exited"),)


def test_duplicates_keep_the_dyno_that_is_up() -> None:
    w1 = want(1)
    result = run([w1], [seen(w1, "up", started=0), seen(w1, "booting", started=5, up=False)], 6)
    assert result.start == ()
    assert result.stop == (Stop("booting", "duplicate"),)


# -- boot timeout (R10) ------------------------------------------------------------------------


def test_web_dyno_that_never_answers_is_stopped_at_the_boot_timeout() -> None:
    w1 = want(1)
    assert run([w1], [seen(w1, "a", up=False)], now=59).stop == ()
    result = run([w1], [seen(w1, "a", up=False)], now=60)
    assert result.stop == (Stop("a", "boot_timeout"),)
    assert result.start == (w1,)  # a first crash: replaced at once
    assert result.slots[("app-1", "web.1")].crashes == 1


def test_boot_timeouts_in_a_row_back_off_like_crashes() -> None:
    w1 = want(1)
    first = run([w1], [seen(w1, "a", up=False)], now=60)
    second = run([w1], [seen(w1, "b", started=60, up=False)], 120, first.slots)
    assert second.stop == (Stop("b", "boot_timeout"),)
    assert second.start == ()
    assert second.slots[("app-1", "web.1")].crashes == 2  # a hung boot never counts as a clean run
    assert run([w1], [], 120.5, second.slots).start == ()
    assert run([w1], [], 121, second.slots).start == (w1,)


def test_workers_have_no_boot_timeout() -> None:
    k1 = want(1, kind="worker")
    assert run([k1], [seen(k1, "a", up=False)], now=3600).stop == ()


# -- crashes and back-off ---------------------------------------------------------------------


def test_first_crash_restarts_at_once_and_cleans_up_the_exited_dyno() -> None:
    w1 = want(1)
    result = run([w1], [seen(w1, "a", started=0, exit_code=1)], now=5)
    assert result.start == (w1,)
    assert result.stop == (Stop("a", "exited"),)
    assert result.slots[("app-1", "web.1")].crashes == 1


def crash_loop(rounds: int, policy: RestartPolicy = POLICY) -> list[float]:
    """Let a dyno crash ``rounds`` times, 1 s after each start; return the waits before restarts."""
    w1 = want(1)
    slots: Mapping[SlotKey, SlotState] = {}
    now = 0.0
    waits = []
    for n in range(rounds):
        crashed_at = now + 1
        observed = [seen(w1, f"d{n}", started=now, exit_code=1)]
        result = plan([w1], observed, slots, at(crashed_at), policy)
        slots = result.slots
        t = crashed_at
        while not result.start:  # advance fake time in 0.5 s steps until the restart is due
            t += 0.5
            result = plan([w1], observed, slots, at(t), policy)
            slots = result.slots
        waits.append(t - crashed_at)
        now = t
    return waits


def test_consecutive_crashes_back_off_exponentially_up_to_the_cap() -> None:
    assert crash_loop(10) == [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_back_off_schedule_is_configurable() -> None:
    assert crash_loop(4, replace(POLICY, backoff=(0, 0.5))) == [0, 0.5, 0.5, 0.5]


def test_crashed_dyno_is_reported_until_its_restart_is_due() -> None:
    w1 = want(1)
    slots = {("app-1", "web.1"): SlotState(_fp(w1), since=T0, crashes=3, restart_at=at(100))}
    result = run([w1], [seen(w1, "a", exit_code=1)], 50, slots)
    assert result.start == ()
    assert result.stop == ()  # kept, so the agent goes on reporting it crashed


def test_a_dyno_that_ran_cleanly_for_a_while_restarts_at_once() -> None:
    w1 = want(1)
    slots = {("app-1", "web.1"): SlotState(_fp(w1), since=T0, crashes=6, restart_at=at(10))}
    result = run([w1], [seen(w1, "a", started=10, exit_code=1)], now=10 + 61, slots=slots)
    assert result.start == (w1,)
    assert result.slots[("app-1", "web.1")].crashes == 1


def test_a_new_release_resets_the_back_off() -> None:
    old, new = want(1, release=1), want(1, release=2)
    slots = {("app-1", "web.1"): SlotState(_fp(old), since=T0, crashes=7, restart_at=at(500))}
    result = run([new], [seen(old, "a", exit_code=1)], now=20, slots=slots)
    assert result.start == (new,)
    assert result.slots[("app-1", "web.1")].crashes == 0


def test_a_crash_is_counted_once_however_many_rounds_see_it() -> None:
    w1 = want(1)
    slots = {("app-1", "web.1"): SlotState(_fp(w1), since=T0, crashes=1, restart_at=at(1))}
    observed = [seen(w1, "a", started=0, exit_code=1)]
    first = run([w1], observed, 1, slots)
    assert first.slots[("app-1", "web.1")].crashes == 2
    second = run([w1], observed, 1.5, first.slots)
    assert second.slots[("app-1", "web.1")].crashes == 2


def test_policy_delays() -> None:
    policy = RestartPolicy(backoff=(0, 5, 10))
    assert [policy.delay(n) for n in range(6)] == [0, 0, 5, 10, 10, 10]
    assert RestartPolicy(backoff=()).delay(3) == 0


def _fp(d: DesiredDyno) -> tuple[int, str, str, tuple[tuple[str, str], ...], str, str]:
    from dockyard.agent.reconcile import fingerprint

    return fingerprint(d)


# -- Heroku's schedule and its reset rules ---------------------------------------------------------

HEROKU = RestartPolicy()
MIN = 60.0


def test_default_schedule_is_herokus_at_once_then_20_40_60_180_320_minutes() -> None:
    waits = crash_loop(8, HEROKU)
    assert waits == [0, 20 * MIN, 40 * MIN, 60 * MIN, 180 * MIN, 320 * MIN, 320 * MIN, 320 * MIN]


def _crashed_twice(
    policy: RestartPolicy = HEROKU,
) -> tuple[DesiredDyno, Mapping[SlotKey, SlotState]]:
    """A web.1 that crashed twice in a row, 1 s after each start: it waits 20 minutes now."""
    w1 = want(1)
    first = run([w1], [seen(w1, "a", started=0, exit_code=1)], 1, policy=policy)
    second = run([w1], [seen(w1, "b", started=1, exit_code=1)], 2, first.slots, policy=policy)
    assert second.start == ()
    assert second.slots[("app-1", "web.1")].restart_at == at(2 + 20 * MIN)
    return w1, second.slots


def test_a_restart_resets_the_back_off() -> None:
    _, slots = _crashed_twice()
    restarted = want(1, generation="1")  # ps:restart bumps the generation
    result = run([restarted], [seen(want(1), "b", started=1, exit_code=1)], 3, slots, HEROKU)
    assert result.start == (restarted,)
    assert result.slots[("app-1", "web.1")].crashes == 0


def test_scaling_to_zero_and_back_up_resets_the_back_off() -> None:
    w1, slots = _crashed_twice()
    down = run([], [seen(w1, "b", started=1, exit_code=1)], 3, slots, HEROKU)
    assert down.slots == {}
    up = run([w1], [], 4, down.slots, HEROKU)
    assert up.start == (w1,)


def test_a_clean_start_resets_the_back_off() -> None:
    w1, slots = _crashed_twice()
    later = 2 + 20 * MIN
    restarted = run([w1], [seen(w1, "b", started=1, exit_code=1)], later, slots, HEROKU)
    assert restarted.start == (w1,)
    # the new dyno runs cleanly for a while, then crashes: a first crash again, restarted at once
    crash = run([w1], [seen(w1, "c", started=later, exit_code=1)], later + 120, restarted.slots)
    assert crash.start == (w1,)
    assert crash.slots[("app-1", "web.1")].crashes == 1


# -- daily cycling ---------------------------------------------------------------------------------

DAY = 24 * 3600.0


def test_cycling_is_due_after_a_day_plus_a_jitter_of_at_most_216_minutes() -> None:
    delays = [HEROKU.cycle_after(f"dyno-{n}") for n in range(200)]
    assert all(DAY <= d <= DAY + 216 * MIN for d in delays)
    assert len({round(d) for d in delays}) > 150  # spread out, not all at the same moment
    assert HEROKU.cycle_after("dyno-7") == HEROKU.cycle_after("dyno-7")  # seeded by the dyno


def test_a_dyno_due_for_cycling_is_replaced_new_one_first() -> None:
    w1 = want(1)
    due = HEROKU.cycle_after("old")
    assert run([w1], [seen(w1, "old")], due - 1, policy=HEROKU).start == ()
    result = run([w1], [seen(w1, "old")], due, policy=HEROKU)
    assert result.start == (w1,)
    assert result.cycling == ("old",)
    assert result.stop == ()  # the old one serves until the new one is up
    booting = [seen(w1, "old"), seen(w1, "new", started=due, up=False)]
    waiting = run([w1], booting, due + 5, result.slots, HEROKU)
    assert (waiting.start, waiting.stop, waiting.cycling) == ((), (), ())
    up = [seen(w1, "old"), seen(w1, "new", started=due)]
    done = run([w1], up, due + 6, result.slots, HEROKU)
    assert done.stop == (Stop("old", "cycled"),)
    assert done.slots[("app-1", "web.1")].crashes == 0


def test_a_cycled_dyno_goes_after_the_boot_timeout_even_if_the_new_one_hangs() -> None:
    w1 = want(1)
    due = HEROKU.cycle_after("old")
    observed = [seen(w1, "old"), seen(w1, "new", started=due, up=False)]
    assert run([w1], observed, due + 59, policy=HEROKU).stop == ()
    assert Stop("old", "cycled") in run([w1], observed, due + 60, policy=HEROKU).stop


def test_cycling_counts_from_the_dyno_start_so_a_release_or_restart_resets_it() -> None:
    w1 = want(1)
    due = HEROKU.cycle_after("new")
    replacement = seen(w1, "new", started=due - 100)  # started by a release or a restart
    assert run([w1], [replacement], due, policy=HEROKU).cycling == ()
    assert run([w1], [replacement], due + due - 100, policy=HEROKU).cycling == ("new",)


# -- idling (eco web dynos) ------------------------------------------------------------------------


def eco(index: int = 1, *, kind: str = "web") -> DesiredDyno:
    return replace(want(index, kind=kind), size="eco")


def test_an_eco_web_dyno_sleeps_after_30_minutes_without_a_request() -> None:
    w1 = eco()
    requests = {"app-1": at(100)}
    awake = plan([w1], [seen(w1, "a")], {}, at(100 + 30 * MIN - 1), HEROKU, requests=requests)
    assert awake.stop == ()
    result = plan([w1], [seen(w1, "a")], {}, at(100 + 30 * MIN), HEROKU, requests=requests)
    assert result.stop == (Stop("a", "idle"),)
    assert result.start == ()
    assert result.slots[("app-1", "web.1")].idle_since == at(100 + 30 * MIN)


def test_a_sleeping_slot_stays_down_until_a_newer_request_wakes_it() -> None:
    w1 = eco()
    asleep = {("app-1", "web.1"): SlotState(_fp(w1), since=T0, idle_since=at(2000))}
    old_request = {"app-1": at(1000)}
    later = plan([w1], [], asleep, at(5000), HEROKU, requests=old_request)
    assert later.start == ()
    assert later.slots[("app-1", "web.1")].idle_since == at(2000)
    woken = plan([w1], [], asleep, at(5000), HEROKU, requests={"app-1": at(4999)})
    assert woken.start == (w1,)
    assert woken.woken == (("app-1", "web.1"),)
    assert woken.slots[("app-1", "web.1")].idle_since is None


def test_a_dyno_that_just_started_is_not_idle_even_after_a_long_quiet() -> None:
    w1 = eco()
    quiet_since_long = {"app-1": at(0)}
    fresh = seen(w1, "a", started=10 * 3600)
    assert plan([w1], [fresh], {}, at(10 * 3600 + 60), HEROKU, requests=quiet_since_long).stop == ()


@pytest.mark.parametrize(
    "dyno",
    [want(1), eco(kind="worker")],
    ids=["standard web", "eco worker"],
)
def test_only_eco_web_dynos_sleep(dyno: DesiredDyno) -> None:
    result = plan([dyno], [seen(dyno, "a")], {}, at(DAY / 2), HEROKU, requests={"app-1": at(0)})
    assert result.stop == ()


def test_an_app_the_router_never_reported_on_never_sleeps() -> None:
    w1 = eco()
    assert plan([w1], [seen(w1, "a")], {}, at(DAY / 2), HEROKU, requests={}).stop == ()


# -- one-off dynos ---------------------------------------------------------------------------------


def one_off(
    dyno_id: str = "11111111-0000-4000-8000-000000000001", ttl: float = 3600
) -> DesiredDyno:
    return replace(
        want(4821, kind="run"),
        command="bash",
        kind="one-off",
        dyno_id=dyno_id,
        time_to_live=ttl,
    )


def seen_one_off(
    desired: DesiredDyno, *, started: float = 0, exit_code: int | None = None
) -> Observed:
    observed = seen(desired, desired.dyno_id, started=started, exit_code=exit_code)
    spec = replace(observed.dyno.spec, labels={"dockyard.kind": "one-off"})
    return Observed(replace(observed.dyno, spec=spec), up=observed.up)


def test_a_one_off_dyno_starts_once_under_its_own_id() -> None:
    run_1 = one_off()
    assert run([run_1], [], 0).start == (run_1,)
    assert (
        plan([run_1], [], {}, at(1), POLICY, one_offs_started=frozenset({run_1.dyno_id})).start
        == ()
    )


def test_a_one_off_dyno_that_exited_is_never_restarted_nor_cleaned_up_while_wanted() -> None:
    run_1 = one_off()
    result = run([run_1], [seen_one_off(run_1, exit_code=1)], 10)
    assert (result.start, result.stop) == ((), ())


def test_a_one_off_dyno_no_longer_wanted_is_stopped_or_cleaned_up() -> None:
    running, finished = one_off(), one_off("11111111-0000-4000-8000-000000000002")
    observed = [seen_one_off(running), seen_one_off(finished, exit_code=0)]
    result = run([], observed, 10)
    assert result.stop == (Stop(running.dyno_id, "unwanted"), Stop(finished.dyno_id, "exited"))
    assert result.slots == {}


def test_a_one_off_dyno_is_stopped_at_its_time_to_live() -> None:
    run_1 = one_off(ttl=60)
    assert run([run_1], [seen_one_off(run_1, started=0)], 59).stop == ()
    assert run([run_1], [seen_one_off(run_1, started=0)], 60).stop == (Stop(run_1.dyno_id, "ttl"),)


def test_one_off_dynos_leave_the_formation_slots_alone() -> None:
    w1, run_1 = want(1), one_off()
    result = run([w1, run_1], [seen(w1, "a"), seen_one_off(run_1)], 5)
    assert (result.start, result.stop) == ((), ())
    assert set(result.slots) == {("app-1", "web.1")}


# -- foreseen starts (prepared ahead) ------------------------------------------------------------


def _foreseen(
    desired: Sequence[DesiredDyno],
    slots: Mapping[SlotKey, SlotState],
    now: float,
    *,
    limit: int = 8,
    requests: Mapping[str, datetime] | None = None,
) -> list[str]:
    from dockyard.agent.reconcile import foreseen

    found = foreseen(desired, slots, at(now), lead=10, limit=limit, requests=requests)
    return [f"{d.app_id}/{d.name}" for d in found]


def test_a_crashed_slot_is_foreseen_only_within_the_lead_of_its_restart() -> None:
    w1 = want(1)
    slots = {("app-1", "web.1"): SlotState(_fp(w1), since=T0, crashes=2, restart_at=at(100))}
    assert _foreseen([w1], slots, now=80) == []
    assert _foreseen([w1], slots, now=91) == ["app-1/web.1"]
    assert _foreseen([w1], slots, now=100) == []  # due now: the plan starts it


def test_sleeping_slots_are_foreseen_newest_request_first_after_due_restarts() -> None:
    a, b, c = want(1, app="app-a"), want(1, app="app-b"), want(1, app="app-c")
    slots = {
        a.key: SlotState(_fp(a), since=T0, idle_since=at(10)),
        b.key: SlotState(_fp(b), since=T0, idle_since=at(10)),
        c.key: SlotState(_fp(c), since=T0, crashes=1, restart_at=at(105)),
    }
    requests = {"app-a": at(1), "app-b": at(5)}
    assert _foreseen([a, b, c], slots, now=100, requests=requests) == [
        "app-c/web.1",
        "app-b/web.1",
        "app-a/web.1",
    ]
    assert _foreseen([a, b, c], slots, now=100, requests=requests, limit=2) == [
        "app-c/web.1",
        "app-b/web.1",
    ]


def test_running_changed_and_one_off_slots_are_not_foreseen() -> None:
    running, changed = want(1), want(2)
    one_off = replace(want(3), kind="one-off", dyno_id="run-1")
    slots = {
        running.key: SlotState(_fp(running), since=T0),
        changed.key: SlotState(_fp(want(2, release=9)), since=T0, idle_since=at(1)),
        one_off.key: SlotState(_fp(one_off), since=T0, idle_since=at(1)),
    }
    assert _foreseen([running, changed, one_off], slots, now=100) == []


# -- draining ------------------------------------------------------------------------------------


def test_web_dynos_stopped_while_they_may_serve_drain_first_and_the_rest_stop_at_once() -> None:
    from dockyard.agent.reconcile import StopReason, drains

    web = seen(want(1), "w").dyno.spec
    worker = seen(want(1, kind="worker"), "k").dyno.spec
    one_off_web = seen_one_off(replace(want(9), kind="one-off", dyno_id="run-1")).dyno.spec
    serving: tuple[StopReason, ...] = ("replaced", "cycled", "duplicate", "unwanted", "idle")
    gone: tuple[StopReason, ...] = ("exited", "boot_timeout")
    assert [drains(web, reason) for reason in serving] == [True] * 5
    assert [drains(web, reason) for reason in gone] == [False, False]
    assert [drains(worker, reason) for reason in serving] == [False] * 5
    assert drains(one_off_web, "unwanted") is False
    assert drains(one_off_web, "ttl") is False
