"""Generated chaos: hypothesis draws fault schedules and scripts as plain data.

The schedule and the script are data (lists of :class:`FaultSpec` and plan steps), not an
opaque seed, so a failure shrinks to the smallest schedule and script that still break an
invariant, and prints as a literal that replays. The property is the safety and
quiescence checks only: a random schedule is not promised to move the posture.

How many examples: the hypothesis profile ``scalper-chaos-ci`` (8 derandomized examples,
sized for CI: each example is a whole 1000 s run) unless ``SCALPER_CHAOS_EXAMPLES=N`` is
set, which selects ``scalper-chaos-wide``: the same settings with ``N`` examples (still
derandomized, so a failure found with ``N`` replays with the same ``N``). The profile
is applied to this test only, never loaded globally, so the rest of the suite keeps its
own hypothesis settings.
"""

import os
from collections.abc import Mapping
from decimal import Decimal

import pytest
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
    Unfreeze,
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

#: The environment variable that widens the search (see the module docstring).
EXAMPLES_ENV = "SCALPER_CHAOS_EXAMPLES"
#: Examples per CI run: each is a full chaos run of about a second of real time.
CI_EXAMPLES = 8


def examples_from_env(environ: Mapping[str, str]) -> int | None:
    """The example count ``SCALPER_CHAOS_EXAMPLES`` asks for, or None when it is unset.

    Raises:
        ValueError: naming the variable, for anything but a positive integer (a typo must
            not silently fall back to the CI-sized run someone meant to widen).
    """
    raw = environ.get(EXAMPLES_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{EXAMPLES_ENV} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{EXAMPLES_ENV} must be a positive integer, got {raw!r}")
    return value


settings.register_profile(
    "scalper-chaos-ci",
    max_examples=CI_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def chaos_settings(environ: Mapping[str, str]) -> settings:
    """The settings for the generated-schedule test: CI-sized unless the env widens them."""
    wanted = examples_from_env(environ)
    if wanted is None:
        return settings.get_profile("scalper-chaos-ci")
    settings.register_profile(
        "scalper-chaos-wide", settings.get_profile("scalper-chaos-ci"), max_examples=wanted
    )
    return settings.get_profile("scalper-chaos-wide")


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
    operator: tuple[Step, ...] = (Halt(at), Resume(at), Unfreeze(at, patience_s=30.0))
    return draw(st.sampled_from(operator))


def test_the_ci_profile_is_the_default_and_the_env_widens_it():
    ci = chaos_settings({})
    assert ci.max_examples == CI_EXAMPLES
    assert ci.derandomize
    assert ci.deadline is None
    wide = chaos_settings({EXAMPLES_ENV: " 40 "})
    assert wide.max_examples == 40
    # Everything but the count is inherited: the wide run is the same search, longer.
    assert wide.derandomize
    assert wide.deadline is None
    assert set(wide.suppress_health_check) == set(ci.suppress_health_check)
    assert chaos_settings({EXAMPLES_ENV: ""}).max_examples == CI_EXAMPLES


@pytest.mark.parametrize("raw", ["forty", "0", "-3", "4.5"])
def test_a_bad_example_count_is_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match=EXAMPLES_ENV):
        chaos_settings({EXAMPLES_ENV: raw})


@chaos_settings(os.environ)
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
