"""The supervisor: restarts, backoff, intensity, strategies, cancellation and replay.

Everything runs on trio's MockClock (autojump), so backoffs and intensity windows are
virtual: a test that waits out thirty seconds of restarts takes milliseconds, and every
time asserted below is exact. The children mirror the actors of a trading system: a
market-data feed that drops, a journal that must flush on shutdown, an order router whose
start-up has to finish before anything else sends to it.
"""

import json
import math
import random
from typing import Any, TypeVar

import attrs
import pytest
import trio
import trio.testing
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from scalper.actors.supervisor import (
    ChildCrashed,
    ChildExited,
    ChildSpec,
    ChildStarted,
    ChildStatus,
    Escalated,
    RestartIntensityExceeded,
    RestartStrategy,
    RestartType,
    Supervisor,
    SupervisorConfig,
    SupervisorEvent,
    backoff_delay,
)
from scalper.clock import Clock, simulated_clock
from scalper.core.errors_base import CoreValueError
from scalper.determinism import derive_rng, run_deterministic

E = TypeVar("E", ChildStarted, ChildCrashed, ChildExited, Escalated)
P, T, TMP = RestartType.PERMANENT, RestartType.TRANSIENT, RestartType.TEMPORARY
ONE_FOR_ALL = RestartStrategy.ONE_FOR_ALL


class FeedError(ConnectionError):
    """The exchange closed the market-data socket."""


class OperatorAbort(BaseException):
    """Stands in for KeyboardInterrupt / SystemExit: must never be treated as a crash."""


class Recorder:
    """An ``on_event`` that keeps everything, plus free-form notes in the same timeline."""

    def __init__(self) -> None:
        self.timeline: list[SupervisorEvent | str] = []

    async def __call__(self, event: SupervisorEvent) -> None:
        self.timeline.append(event)

    def note(self, text: str) -> None:
        self.timeline.append(text)

    @property
    def events(self) -> list[SupervisorEvent]:
        return [e for e in self.timeline if not isinstance(e, str)]

    def of(self, kind: type[E], child: str | None = None) -> list[E]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (child is None or getattr(e, "child", None) == child)
        ]


def supervisor(
    children,
    recorder: Recorder | None = None,
    *,
    strategy=RestartStrategy.ONE_FOR_ONE,
    seed: int = 0,
    name: str = "sup",
    **config,
) -> Supervisor:
    return Supervisor(
        name,
        children,
        strategy=strategy,
        config=SupervisorConfig(**config),
        rng=random.Random(seed),
        clock=simulated_clock(),
        on_event=recorder,
    )


async def serve_forever(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await trio.sleep_forever()


def always_crashing(error: type[Exception] = FeedError, after_s: float = 0.0):
    async def run(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(after_s)
        raise error("socket closed by exchange")

    return run


# --- ONE_FOR_ONE ---------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_crashed_child_with_capped_exponential_backoff(
    autojump_clock,
):
    rec = Recorder()
    sup = supervisor(
        [ChildSpec("journal", serve_forever), ChildSpec("feed", always_crashing())],
        rec,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
        max_restarts=100,
        jitter=0.0,
    )
    with trio.move_on_after(3.0):
        await sup.run()

    crashes = rec.of(ChildCrashed, "feed")
    delays = [c.restart_in_s for c in crashes]
    expected = [min(0.5, 0.1 * 2**k) for k in range(len(delays))]
    assert delays == pytest.approx(expected)
    assert delays[:5] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])  # grows, then capped
    # Each restart happens exactly one backoff after the crash (virtual time).
    starts = rec.of(ChildStarted, "feed")
    for crash, restart in zip(crashes, starts[1:], strict=False):
        assert restart.at - crash.at == pytest.approx(crash.restart_in_s)
    assert [s.restart_count for s in starts] == list(range(len(starts)))
    assert all(c.error_type == "FeedError" for c in crashes)
    # The sibling was never touched.
    assert len(rec.of(ChildStarted, "journal")) == 1
    assert sup.restart_counts == {"journal": 0, "feed": len(starts) - 1}


async def test_jittered_backoff_stays_within_its_bounds_and_under_the_cap(autojump_clock):
    rec = Recorder()
    sup = supervisor(
        [ChildSpec("feed", always_crashing())],
        rec,
        backoff_initial_s=0.1,
        backoff_max_s=1.0,
        jitter=0.5,
        max_restarts=100,
        seed=3,
    )
    with trio.move_on_after(10.0):
        await sup.run()
    delays = [c.restart_in_s for c in rec.of(ChildCrashed)]
    assert len(delays) > 10
    for k, delay in enumerate(delays):
        raw = min(1.0, 0.1 * 2**k)
        assert raw * 0.5 <= delay <= min(raw * 1.5, 1.0)
    assert len(set(delays[:4])) == 4  # the jitter is really drawn


async def test_a_flaky_feed_recovers_and_its_backoff_streak_resets_after_a_clean_period(
    autojump_clock,
):
    rec = Recorder()
    lives = []

    async def feed(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        lives.append(trio.current_time())
        task_status.started()
        if len(lives) <= 3:
            raise FeedError(f"drop {len(lives)}")
        await trio.sleep(60.0)  # a healthy hour-long session... then one more drop
        raise FeedError("late drop")

    sup = supervisor([ChildSpec("feed", feed)], rec, period_s=30.0, jitter=0.0)
    with trio.move_on_after(100.0):
        await sup.run()

    delays = [c.restart_in_s for c in rec.of(ChildCrashed)]
    assert [c.error for c in rec.of(ChildCrashed)] == [
        "drop 1",
        "drop 2",
        "drop 3",
        "late drop",
    ]
    # Three quick failures grow the pause; after 60 s of clean running it starts over.
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.05])
    assert sup.restart_counts["feed"] == 4
    stats = sup.stats()
    assert stats.children[0].crashes == 4
    assert stats.children[0].last_error_type == "FeedError"
    assert not stats.running


async def test_restart_types_permanent_transient_temporary(autojump_clock):
    rec = Recorder()
    runs = {"ticker": 0, "snapshot": 0, "backfill": 0, "probe": 0}

    async def ticker(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        runs["ticker"] += 1
        task_status.started()
        await trio.sleep(1.0)  # returns normally: PERMANENT still restarts it

    async def snapshot(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        runs["snapshot"] += 1
        task_status.started()
        await trio.sleep(0.5)  # done, normally: TRANSIENT does not restart it

    async def backfill(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        runs["backfill"] += 1
        task_status.started()
        await trio.sleep(0.5)
        if runs["backfill"] == 1:
            raise FeedError("rest timeout")  # TRANSIENT: restarted after an exception

    async def probe(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        runs["probe"] += 1
        task_status.started()
        raise FeedError("probe failed")  # TEMPORARY: never restarted

    sup = supervisor(
        [
            ChildSpec("ticker", ticker, P),
            ChildSpec("snapshot", snapshot, T),
            ChildSpec("backfill", backfill, T),
            ChildSpec("probe", probe, TMP),
        ],
        rec,
        max_restarts=100,
        jitter=0.0,
    )
    with trio.move_on_after(5.5):
        await sup.run()

    assert runs["ticker"] >= 5
    assert all(e.restart_in_s is not None for e in rec.of(ChildExited, "ticker"))
    assert runs["snapshot"] == 1
    assert rec.of(ChildExited, "snapshot") == [ChildExited("sup", "snapshot", 0.5, None)]
    assert runs["backfill"] == 2
    assert [c.restart_in_s for c in rec.of(ChildCrashed, "backfill")] == [0.05]
    assert rec.of(ChildExited, "backfill")[0].restart_in_s is None
    assert runs["probe"] == 1
    assert [c.restart_in_s for c in rec.of(ChildCrashed, "probe")] == [None]
    statuses = {c.name: c.status for c in sup.stats().children}
    assert statuses == dict.fromkeys(runs, ChildStatus.STOPPED)  # run() has ended


async def test_run_returns_once_every_child_has_ended_for_good(autojump_clock):
    rec = Recorder()

    async def one_shot(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(2.0)

    sup = supervisor([ChildSpec("a", one_shot, T), ChildSpec("b", always_crashing(), TMP)], rec)
    await sup.run()
    assert trio.current_time() == 2.0
    assert [type(e).__name__ for e in rec.events] == [
        "ChildStarted",
        "ChildStarted",
        "ChildCrashed",
        "ChildExited",
    ]


async def test_ordered_start_waits_for_each_child_to_say_started(autojump_clock):
    rec = Recorder()
    attempts = []

    async def router(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        attempts.append(trio.current_time())
        await trio.sleep(1.0)  # loading open orders from the venue
        if len(attempts) <= 2:
            raise FeedError("venue unreachable during start-up")
        rec.note("router ready")
        task_status.started()
        await trio.sleep_forever()

    async def strategy(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        rec.note("strategy starting")
        await trio.sleep(0.5)
        rec.note("strategy ready")
        task_status.started()
        await trio.sleep_forever()

    sup = supervisor(
        [ChildSpec("router", router), ChildSpec("strategy", strategy)], rec, jitter=0.0
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        rec.note("system ready")
        nursery.cancel_scope.cancel()

    notes = [e for e in rec.timeline if isinstance(e, str)]
    assert notes == ["router ready", "strategy starting", "strategy ready", "system ready"]
    # Two start-up crashes, retried with backoff, before the router was ready at 3.15 s.
    assert attempts == pytest.approx([0.0, 1.05, 2.15])
    assert rec.of(ChildStarted, "strategy")[0].at == pytest.approx(3.15)


# --- intensity and escalation --------------------------------------------------------------


async def test_too_many_restarts_escalate_bare_after_stopping_every_child(autojump_clock):
    rec = Recorder()
    errors: list[Exception] = []

    async def journal(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            rec.note("journal flushed")

    async def feed(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(0.1)
        errors.append(FeedError(f"drop {len(errors) + 1}"))
        raise errors[-1]

    sup = supervisor(
        [ChildSpec("journal", journal), ChildSpec("feed", feed)],
        rec,
        max_restarts=3,
        period_s=10.0,
        jitter=0.0,
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await sup.run()

    exc = info.value
    assert type(exc) is RestartIntensityExceeded  # bare: not wrapped in an ExceptionGroup
    assert exc.__cause__ is errors[-1]
    assert (exc.supervisor, exc.child, exc.restarts) == ("sup", "feed", 4)
    crashes = rec.of(ChildCrashed, "feed")
    assert len(crashes) == 4
    assert [c.restart_in_s is None for c in crashes] == [False, False, False, True]
    assert rec.timeline[-2:] == ["journal flushed", rec.events[-1]]
    assert isinstance(rec.events[-1], Escalated)
    assert rec.events[-1].reason == str(exc)
    stats = sup.stats()
    assert stats.escalated
    assert not stats.running
    assert {c.status for c in stats.children} == {ChildStatus.STOPPED}


async def test_escalation_does_not_wait_for_a_sibling_backing_off(autojump_clock):
    rec = Recorder()
    sup = supervisor(
        [
            ChildSpec("bybit", always_crashing(after_s=0.0)),
            ChildSpec("binance", always_crashing(after_s=0.5)),
        ],
        rec,
        max_restarts=1,
        backoff_initial_s=10.0,
        backoff_max_s=10.0,
        jitter=0.0,
    )
    with pytest.raises(RestartIntensityExceeded):
        await sup.run()
    # bybit was 0.5 s into a 10 s pause when binance's crash exceeded the intensity.
    assert trio.current_time() == 0.5
    assert [(c.child, c.restart_in_s) for c in rec.of(ChildCrashed)] == [
        ("bybit", 10.0),
        ("binance", None),
    ]


async def test_a_permanent_child_that_keeps_returning_escalates_without_a_cause(autojump_clock):
    async def returns(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    sup = supervisor([ChildSpec("heartbeat", returns)], max_restarts=2, jitter=0.0)
    with pytest.raises(RestartIntensityExceeded) as info:
        await sup.run()
    assert info.value.__cause__ is None
    assert sup.restart_counts["heartbeat"] == 2


async def test_escalation_during_start_up_fails_the_start(autojump_clock):
    async def never_ready(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        raise FeedError("bad API key")

    started = []

    async def after(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        started.append(True)
        task_status.started()

    sup = supervisor([ChildSpec("router", never_ready), ChildSpec("later", after)], max_restarts=1)
    async with trio.open_nursery() as nursery:
        with pytest.raises(RestartIntensityExceeded):  # bare, straight out of start()
            await nursery.start(sup.run)
    assert started == []  # the next child never started


@settings(max_examples=40, deadline=None)
@given(
    lifetimes=st.lists(st.integers(0, 12), min_size=1, max_size=12),
    max_restarts=st.integers(0, 4),
    period_s=st.integers(1, 8),
)
def test_escalates_exactly_when_a_window_holds_more_than_max_restarts(
    lifetimes, max_restarts, period_s
):
    """Oracle: the k-th crash escalates iff more than max_restarts crashes lie in (t-P, t]."""
    pause = 0.25
    # Lifetimes in quarter seconds keep every timestamp an exact binary fraction.
    durations = [q * 0.25 for q in lifetimes]
    crash_times, t = [], 0.0
    for k, d in enumerate(durations):
        t += d if k == 0 else pause + d
        crash_times.append(t)
    expected_escalation = next(
        (
            k
            for k, now in enumerate(crash_times)
            if sum(1 for c in crash_times[: k + 1] if now - c < period_s) > max_restarts
        ),
        None,
    )

    async def main() -> tuple[list[float], bool]:
        rec = Recorder()
        lives = iter(durations)

        async def feed(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            duration = next(lives, None)
            if duration is None:
                await trio.sleep_forever()
            await trio.sleep(duration)
            raise FeedError("drop")

        sup = supervisor(
            [ChildSpec("feed", feed)],
            rec,
            max_restarts=max_restarts,
            period_s=float(period_s),
            backoff_initial_s=pause,
            backoff_max_s=pause,
            jitter=0.0,
        )
        escalated = False
        with trio.move_on_after(1000.0):
            try:
                await sup.run()
            except RestartIntensityExceeded:
                escalated = True
        return [c.at for c in rec.of(ChildCrashed)], escalated

    seen_crashes, escalated = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    event("escalated" if escalated else "kept running")
    if expected_escalation is None:
        assert not escalated
        assert seen_crashes == crash_times
    else:
        assert escalated
        assert seen_crashes == crash_times[: expected_escalation + 1]


# --- ONE_FOR_ALL ---------------------------------------------------------------------------


def generation_child(name: str, rec: Recorder, *, crash_in_first_life: float | None = None):
    lives = []

    async def run(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        lives.append(trio.current_time())
        await trio.sleep(0.1)  # opening its channels
        rec.note(f"{name} ready")
        task_status.started()
        try:
            if crash_in_first_life is not None and len(lives) == 1:
                await trio.sleep(crash_in_first_life)
                raise FeedError(f"{name} lost its socket")
            await trio.sleep_forever()
        finally:
            rec.note(f"{name} stopped")

    return run


async def test_one_for_all_stops_every_sibling_and_restarts_the_generation_in_order(
    autojump_clock,
):
    rec = Recorder()
    sup = supervisor(
        [
            ChildSpec("router", generation_child("router", rec)),
            ChildSpec("feed", generation_child("feed", rec, crash_in_first_life=1.0)),
            ChildSpec("strategy", generation_child("strategy", rec)),
        ],
        rec,
        strategy=ONE_FOR_ALL,
        jitter=0.0,
    )
    with trio.move_on_after(5.0):
        await sup.run()

    notes = [e for e in rec.timeline if isinstance(e, str)]
    assert notes[:3] == ["router ready", "feed ready", "strategy ready"]
    assert notes[3] == "feed stopped"  # the crash itself
    assert sorted(notes[4:6]) == ["router stopped", "strategy stopped"]  # siblings unwound
    assert notes[6:9] == ["router ready", "feed ready", "strategy ready"]  # same order again
    crash = rec.of(ChildCrashed)
    assert [(c.child, c.restart_in_s) for c in crash] == [("feed", 0.05)]
    starts = rec.of(ChildStarted)
    assert [s.child for s in starts] == ["router", "feed", "strategy"] * 2
    assert starts[3].at == pytest.approx(crash[0].at + 0.05)
    assert sup.restart_counts == {"router": 1, "feed": 1, "strategy": 1}


async def test_one_for_all_drops_temporary_and_finished_children_from_the_next_generation(
    autojump_clock,
):
    rec = Recorder()

    async def snapshot(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # takes one snapshot and is done

    sup = supervisor(
        [
            ChildSpec("snapshot", snapshot, T),
            ChildSpec("probe", generation_child("probe", rec), TMP),
            ChildSpec("feed", generation_child("feed", rec, crash_in_first_life=1.0)),
        ],
        rec,
        strategy=ONE_FOR_ALL,
        jitter=0.0,
    )
    with trio.move_on_after(5.0):
        await sup.run()
    assert [s.child for s in rec.of(ChildStarted)] == ["snapshot", "probe", "feed", "feed"]
    assert "probe stopped" in rec.timeline  # the TEMPORARY child was stopped, not restarted
    assert rec.of(ChildExited) == [ChildExited("sup", "snapshot", 0.0, None)]


async def test_a_sibling_failing_while_being_stopped_rides_along_with_one_restart(
    autojump_clock,
):
    rec = Recorder()
    lives = []

    async def sloppy(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        lives.append(trio.current_time())
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            if len(lives) == 1:
                raise RuntimeError("flush failed while stopping")

    sup = supervisor(
        [
            ChildSpec("sloppy", sloppy),
            ChildSpec("feed", generation_child("feed", rec, crash_in_first_life=1.0)),
        ],
        rec,
        strategy=ONE_FOR_ALL,
        max_restarts=1,  # a second counted restart would escalate
        jitter=0.0,
    )
    with trio.move_on_after(5.0):
        await sup.run()
    crashes = rec.of(ChildCrashed)
    assert [(c.child, c.error_type, c.restart_in_s) for c in crashes] == [
        ("feed", "FeedError", 0.05),
        ("sloppy", "RuntimeError", 0.05),
    ]
    assert len(lives) == 2
    assert not sup.stats().escalated


async def test_one_for_all_escalates_bare(autojump_clock):
    rec = Recorder()
    sup = supervisor(
        [
            ChildSpec("journal", generation_child("journal", rec)),
            ChildSpec("feed", always_crashing(after_s=0.2)),
        ],
        rec,
        strategy=ONE_FOR_ALL,
        max_restarts=2,
        jitter=0.0,
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await sup.run()
    assert type(info.value) is RestartIntensityExceeded
    assert isinstance(info.value.__cause__, FeedError)
    assert rec.timeline.count("journal stopped") == 3  # every generation unwound
    assert rec.timeline[-2:] == ["journal stopped", rec.events[-1]]
    assert isinstance(rec.events[-1], Escalated)


# --- cancellation and what is (not) a crash ------------------------------------------------


@pytest.mark.parametrize("strategy", list(RestartStrategy))
async def test_an_outer_cancel_stops_everything_without_restarts_or_crash_events(
    autojump_clock, strategy
):
    rec = Recorder()

    async def with_workers(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # An actor whose inner nursery is cancelled raises a group of Cancelled, which
        # must pass through as a cancellation, not be caught as a crash.
        async with trio.open_nursery() as inner:
            inner.start_soon(trio.sleep_forever)
            inner.start_soon(trio.sleep_forever)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                rec.note("pool stopped")

    sup = supervisor(
        [
            ChildSpec("journal", generation_child("journal", rec)),
            ChildSpec("pool", with_workers),
            ChildSpec("feed", always_crashing(after_s=1.0), T),
        ],
        rec,
        strategy=strategy,
        backoff_initial_s=2.0,
        jitter=0.0,
    )
    with trio.move_on_after(2.0) as scope:  # lands inside the feed's 2 s backoff
        await sup.run()
    assert scope.cancelled_caught
    assert trio.current_time() == 2.0  # the backoff did not outlive the cancel
    assert "journal stopped" in rec.timeline
    assert "pool stopped" in rec.timeline
    assert [c.child for c in rec.of(ChildCrashed)] == ["feed"]  # only the real crash
    assert rec.of(Escalated) == []
    assert len(rec.of(ChildStarted)) == 3  # nobody was restarted


async def test_an_exception_group_from_an_inner_nursery_is_a_crash(autojump_clock):
    rec = Recorder()
    lives = []

    async def reconciler(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        lives.append(trio.current_time())
        task_status.started()
        if len(lives) > 1:
            await trio.sleep_forever()

        async def poll() -> None:
            await trio.sleep(0.5)
            raise ValueError("malformed position snapshot")

        async with trio.open_nursery() as inner:
            inner.start_soon(poll)
            inner.start_soon(trio.sleep_forever)

    sup = supervisor([ChildSpec("reconciler", reconciler)], rec, jitter=0.0)
    with trio.move_on_after(2.0):
        await sup.run()
    (crash,) = rec.of(ChildCrashed)
    assert crash.error_type == "ExceptionGroup"
    assert "ValueError: malformed position snapshot" in crash.error
    assert crash.restart_in_s == 0.05
    assert len(lives) == 2


async def test_a_base_exception_is_not_swallowed(autojump_clock):
    rec = Recorder()

    async def operator(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(1.0)
        raise OperatorAbort

    sup = supervisor(
        [ChildSpec("journal", generation_child("journal", rec)), ChildSpec("ops", operator)], rec
    )
    with pytest.raises(BaseExceptionGroup) as info:
        await sup.run()
    assert info.group_contains(OperatorAbort)
    assert rec.of(ChildCrashed) == []  # not a crash, not restarted
    assert len(rec.of(ChildStarted)) == 2
    assert "journal stopped" in rec.timeline


async def test_a_failing_on_event_is_a_bug_that_propagates(autojump_clock):
    class JournalDownError(Exception):
        pass

    async def on_event(event: SupervisorEvent) -> None:
        if isinstance(event, ChildCrashed):
            raise JournalDownError("cannot record the crash")

    sup = Supervisor(
        "sup",
        [ChildSpec("feed", always_crashing())],
        rng=random.Random(0),
        clock=simulated_clock(),
        on_event=on_event,
    )
    with pytest.raises(ExceptionGroup) as info:
        await sup.run()
    assert info.group_contains(JournalDownError)
    assert sup.stats().children[0].crashes == 1
    assert sup.restart_counts["feed"] == 0  # the bug stopped it; no silent restart loop


# --- nesting, reuse, validation ------------------------------------------------------------


async def test_a_parent_supervisor_restarts_an_escalating_child_supervisor(autojump_clock):
    rec = Recorder()
    inner = supervisor(
        [ChildSpec("feed", always_crashing())], rec, name="market-data", max_restarts=1
    )
    outer = supervisor([ChildSpec("market-data", inner.run)], rec, name="root", max_restarts=2)
    with pytest.raises(RestartIntensityExceeded) as info:
        await outer.run()
    assert info.value.supervisor == "root"
    assert isinstance(info.value.__cause__, RestartIntensityExceeded)
    assert info.value.__cause__.supervisor == "market-data"
    root_crashes = [e for e in rec.of(ChildCrashed) if e.supervisor == "root"]
    assert [c.error_type for c in root_crashes] == ["RestartIntensityExceeded"] * 3
    assert [e.supervisor for e in rec.of(Escalated)] == ["market-data"] * 3 + ["root"]
    # Each run of the inner supervisor started afresh; its restart counts accumulate.
    # Three runs of two lives each (max_restarts=1): six starts, five of them restarts.
    assert inner.restart_counts["feed"] == 5


async def test_a_supervisor_cannot_run_twice_at_once(autojump_clock):
    sup = supervisor([ChildSpec("journal", serve_forever)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert sup.stats().running
        with pytest.raises(RuntimeError, match="already running"):
            await sup.run()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_restarts", -1),
        ("max_restarts", 1.5),
        ("max_restarts", True),
        ("period_s", 0.0),
        ("period_s", math.inf),
        ("backoff_initial_s", -0.1),
        ("backoff_initial_s", math.nan),
        ("backoff_max_s", 0.01),  # below backoff_initial_s
        ("backoff_multiplier", 0.5),
        ("jitter", 1.5),
        ("jitter", "0.2"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(CoreValueError) as info:
        SupervisorConfig(**{field: value})
    assert info.value.field == field


def test_child_specs_and_supervisors_reject_bad_input():
    with pytest.raises(CoreValueError) as info:
        ChildSpec("", serve_forever)
    assert info.value.field == "name"
    with pytest.raises(CoreValueError) as info:
        ChildSpec("x", "not callable")  # type: ignore[arg-type]
    assert info.value.field == "run"
    with pytest.raises(CoreValueError) as info:
        ChildSpec("x", serve_forever, "permanent")  # type: ignore[arg-type]
    assert info.value.field == "restart"
    good: dict[str, Any] = {"rng": random.Random(0), "clock": Clock(epoch_ms_at_start=0)}
    with pytest.raises(CoreValueError) as info:
        Supervisor("s", [ChildSpec("a", serve_forever), ChildSpec("a", serve_forever)], **good)
    assert info.value.field == "children"
    for field, bad in (
        ("rng", random),
        ("clock", 0.0),
        ("strategy", "one_for_one"),
        ("config", {"max_restarts": 1}),
        ("on_event", "journal"),
    ):
        with pytest.raises(CoreValueError) as info:
            Supervisor("s", [], **{**good, field: bad})
        assert info.value.field == field


# --- the backoff function ------------------------------------------------------------------


configs = st.builds(
    lambda initial, extra, mult, jitter: SupervisorConfig(
        backoff_initial_s=initial,
        backoff_max_s=initial + extra,
        backoff_multiplier=mult,
        jitter=jitter,
    ),
    st.one_of(st.just(0.0), st.floats(1e-6, 10)),  # subnormal pauses only add rounding noise
    st.floats(0, 100),
    st.floats(1, 10),
    st.floats(0, 1),
)


@given(config=configs, streak=st.integers(1, 5000), seed=st.integers(0, 2**32))
@example(  # 6.0 ** 397 overflows a float, but zero times anything is still zero
    config=SupervisorConfig(backoff_initial_s=0.0, backoff_max_s=1.0, backoff_multiplier=6.0),
    streak=398,
    seed=0,
)
@example(  # the power overflows, yet a tiny initial keeps the product under the cap
    config=SupervisorConfig(
        backoff_initial_s=1e-300, backoff_max_s=1e200, backoff_multiplier=10.0, jitter=0.0
    ),
    streak=400,
    seed=0,
)
def test_backoff_is_capped_jittered_within_bounds_and_uses_one_draw(config, streak, seed):
    rng = random.Random(seed)
    delay = backoff_delay(config, streak, rng)
    assert 0 <= delay <= config.backoff_max_s
    raw = config.backoff_initial_s  # grown step by step, capped at every step
    for _ in range(streak - 1):
        raw = min(raw * config.backoff_multiplier, config.backoff_max_s)
    low, high = raw * (1 - config.jitter), min(raw * (1 + config.jitter), config.backoff_max_s)
    assert low * (1 - 1e-9) <= delay <= high * (1 + 1e-9)
    # Exactly one draw (none without jitter): the next number in the stream is the same.
    replay = random.Random(seed)
    if config.jitter > 0:
        replay.random()
    assert rng.random() == replay.random()


@given(config=configs.map(lambda c: attrs.evolve(c, jitter=0.0)), streak=st.integers(1, 200))
def test_backoff_without_jitter_never_shrinks_along_a_streak(config, streak):
    rng = random.Random(0)
    assert backoff_delay(config, streak, rng) <= backoff_delay(config, streak + 1, rng)


def test_backoff_rejects_a_streak_below_one():
    with pytest.raises(CoreValueError) as info:
        backoff_delay(SupervisorConfig(), 0, random.Random(0))
    assert info.value.field == "streak"


# --- determinism ---------------------------------------------------------------------------


async def crash_storm(seed: int) -> str:
    """Three feeds that drop at the same instants, jittered restarts, one journal: the log."""
    log: list[str] = []

    async def on_event(event: SupervisorEvent) -> None:
        log.append(json.dumps({"type": type(event).__name__, **attrs.asdict(event)}))

    def feed(name: str):
        async def run(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await trio.sleep(1.0)
            raise FeedError(f"{name} dropped")

        return run

    sup = Supervisor(
        "market-data",
        [ChildSpec(n, feed(n)) for n in ("binance", "bybit", "okx")],
        config=SupervisorConfig(max_restarts=100, jitter=0.5),
        rng=derive_rng(seed, "supervisor:market-data"),
        clock=simulated_clock(),
        on_event=on_event,
    )
    with trio.move_on_after(8.0):
        await sup.run()
    return "\n".join(log)


def test_same_seed_same_event_log():
    first = run_deterministic(crash_storm, 21, seed=21)
    assert first.count("ChildCrashed") > 10
    for _ in range(3):
        assert run_deterministic(crash_storm, 21, seed=21) == first
    assert any(run_deterministic(crash_storm, s, seed=s) != first for s in (22, 23))
