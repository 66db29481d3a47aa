"""Generated chaos: hypothesis draws fault schedules and scripts as plain data.

The schedule and the script are data (lists of :class:`FaultSpec` and plan steps), not an
opaque seed, so a failure shrinks to the smallest schedule and script that still break an
invariant, and prints as a literal that replays. The property is the safety and
quiescence checks only: a random schedule is not promised to move the posture.
"""

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalper.chaos.plan import (
    Cancel,
    Enter,
    Exit,
    Expectations,
    Halt,
    MovePrice,
    Resume,
    Scenario,
    Step,
    VenueCancel,
)
from scalper.chaos.runner import run_scenario
from scalper.core.types import Side
from scalper.venues.sim.faults import FaultSpec

_REQUEST_KINDS = (
    ("LOSE_RESPONSE", frozenset({"create"})),
    ("DROP_REQUEST", frozenset({"create"})),
    ("UNKNOWN_503_PLACED", frozenset({"create"})),
    ("UNKNOWN_503_NOT_PLACED", frozenset({"create"})),
    ("SERVICE_UNAVAILABLE_503", None),
    ("RATE_LIMIT_429", None),
    ("CANCEL_UNKNOWN_BUT_LIVE", frozenset({"cancel"})),
    ("LOSE_RESPONSE", frozenset({"query"})),
)
_STREAM_KINDS = ("STREAM_DUPLICATE", "STREAM_DROP", "STREAM_DISCONNECT")
_INTENTS = ("g-1", "g-2", "g-3", "g-4")


@st.composite
def faults(draw: st.DrawFn) -> FaultSpec:
    start = draw(st.integers(260, 600))
    length = draw(st.integers(5, 90))
    if draw(st.booleans()):
        kind, ops = draw(st.sampled_from(_REQUEST_KINDS))
        p = draw(st.sampled_from((0.3, 0.7, 1.0)))
        return FaultSpec(start=start, end=start + length, kind=kind, probability=p, operations=ops)
    kind = draw(st.sampled_from(_STREAM_KINDS))
    p = 1.0 if kind == "STREAM_DISCONNECT" else draw(st.sampled_from((0.3, 1.0)))
    return FaultSpec(start=start, end=start + length, kind=kind, probability=p)


@st.composite
def steps(draw: st.DrawFn) -> Step:
    at = draw(st.integers(250, 700))
    choice = draw(st.integers(0, 7))
    intent = draw(st.sampled_from(_INTENTS))
    if choice <= 2:
        offset = draw(st.sampled_from((None, None, 10.0, 40.0)))
        side = draw(st.sampled_from((Side.BUY, Side.SELL)))
        return Enter(at, intent, side=side, offset_bps=offset, patience_s=60.0)
    if choice == 3:
        return Exit(at, f"x-{at}")
    if choice == 4:
        return Cancel(at, intent)
    if choice == 5:
        return VenueCancel(at, draw(st.sampled_from(("stops", "entries"))))
    if choice == 6:
        return MovePrice(at, Decimal(draw(st.sampled_from(("59700", "60000", "60300")))))
    return Halt(at) if draw(st.booleans()) else Resume(at)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    schedule=st.lists(faults(), max_size=4),
    script=st.lists(steps(), min_size=1, max_size=8),
    seed=st.integers(1, 1000),
)
def test_generated_schedules_keep_every_safety_invariant(
    schedule: list[FaultSpec], script: list[Step], seed: int
) -> None:
    scenario = Scenario(
        name="generated",
        description="hypothesis-generated schedule and script",
        attacks="whatever the draw found",
        proves=("safety",),
        steps=(*script, Resume(735)),  # end with a resume so halts do not outlive the run
        faults=tuple(schedule),
        expect=Expectations(degrade=False, recover=False),
    )
    result = run_scenario(scenario, seed)
    assert result.ok, "\n".join(v.describe() for v in result.violations)
