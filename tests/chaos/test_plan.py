"""Tests for scalper.chaos.plan: scenario and step validation, step order, trouble start.

A scenario is the literal a failing chaos run prints for replay, so a malformed one must be
refused at construction with an error naming the field, never half-run: a fault that
overlaps the quiet tail would make the quiescence checks judge a system still under fire,
and a script step in the tail would do the same.
"""

import itertools
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.chaos.plan import (
    ArmCrash,
    Cancel,
    Enter,
    Exit,
    Expectations,
    Halt,
    Kill,
    MovePrice,
    PlantOrphan,
    Replace,
    Resume,
    Scenario,
    Step,
    Unfreeze,
    VenueCancel,
)
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import Role
from scalper.core.types import Side
from scalper.crashpoints import CrashKind, CrashPoint
from scalper.venues.sim.faults import FaultSpec


def scenario(
    *,
    name: str = "test-plan",
    steps: tuple[Step, ...] = (),
    faults: tuple[FaultSpec, ...] = (),
    duration_s: float = 1000.0,
    settle_s: float = 280.0,
    expect: Expectations | None = None,
) -> Scenario:
    return Scenario(
        name=name,
        description="a test scenario",
        attacks="nothing in particular",
        proves=("I7",),
        steps=steps,
        faults=faults,
        duration_s=duration_s,
        settle_s=settle_s,
        expect=Expectations() if expect is None else expect,
    )


def fault(start: float, end: float, kind: str = "LOSE_RESPONSE") -> FaultSpec:
    ops = frozenset({"create"}) if kind == "LOSE_RESPONSE" else None
    return FaultSpec(start=start, end=end, kind=kind, operations=ops)


# --------------------------------------------------------------------------- scenario


def test_a_realistic_scenario_is_accepted_and_keeps_its_data():
    steps = (
        Enter(260, "e-1"),
        Enter(280, "e-2", offset_bps=40),
        Cancel(410, "e-2"),
        Exit(530, "x-1"),
    )
    faults = (fault(260, 340), fault(400, 720, "STREAM_DROP"))
    s = scenario(name="unknown-order", steps=steps, faults=faults)
    assert s.steps == steps
    assert s.faults == faults
    # 720 == duration_s - settle_s: a fault may end exactly where the quiet tail begins.
    assert s.duration_s - s.settle_s == 720


@pytest.mark.parametrize("name", ["", "has space", "under_score", "dot.name", "slash/x"])
def test_a_name_that_is_not_a_cli_word_is_refused(name):
    with pytest.raises(CoreValueError) as info:
        scenario(name=name)
    assert info.value.field == "name"


@pytest.mark.parametrize("name", ["a", "unknown-order", "restart-mid-entry-2", "A1"])
def test_cli_words_are_accepted_as_names(name):
    assert scenario(name=name).name == name


@pytest.mark.parametrize(
    ("duration_s", "settle_s"),
    [(1000.0, 0.0), (1000.0, -5.0), (1000.0, 1000.0), (400.0, 401.0)],
)
def test_settle_must_be_a_positive_tail_shorter_than_the_run(duration_s, settle_s):
    with pytest.raises(CoreValueError) as info:
        scenario(duration_s=duration_s, settle_s=settle_s)
    assert info.value.field == "settle_s"


def test_a_fault_that_runs_into_the_quiet_tail_is_refused_and_named_by_index():
    # The second fault ends one tenth of a second into the tail (quiet from 720).
    with pytest.raises(CoreValueError) as info:
        scenario(faults=(fault(100, 200), fault(600, 720.1)))
    assert info.value.field == "faults[1].end"
    assert "720" in info.value.reason


def test_a_fault_window_entirely_inside_the_tail_is_refused():
    with pytest.raises(CoreValueError) as info:
        scenario(faults=(fault(800, 900),))
    assert info.value.field == "faults[0].end"


@pytest.mark.parametrize(
    "step",
    [
        Enter(720, "late"),
        Cancel(720, "late"),
        Replace(720, "old", "new"),
        Halt(720),
        MovePrice(900, Decimal(58000)),
        ArmCrash(720, CrashPoint.MID_FILL),
        Kill(999),
        VenueCancel(720),
        PlantOrphan(720, client_order_id="manual-1"),
    ],
    ids=lambda s: type(s).__name__,
)
def test_only_exit_and_resume_may_run_in_the_settle_tail(step):
    # Anything else would still be disturbing the system while quiescence is judged.
    with pytest.raises(CoreValueError) as info:
        scenario(steps=(Enter(300, "early"), step))
    assert info.value.field == "steps[1].at"


@pytest.mark.parametrize(
    "step",
    [Exit(720, "flatten"), Resume(999.9), Unfreeze(800)],
    ids=["Exit", "Resume", "Unfreeze"],
)
def test_operator_steps_and_exits_are_allowed_in_the_tail(step):
    assert scenario(steps=(step,)).steps == (step,)


def test_a_step_just_before_the_tail_is_allowed():
    s = scenario(steps=(Enter(719.999, "just-in-time"), Halt(719.5)))
    assert len(s.steps) == 2


def test_the_tail_boundary_follows_duration_and_settle():
    # A short run: quiet from 300, so an entry at 150 is fine and one at 300 is not.
    assert scenario(steps=(Enter(150, "e"),), duration_s=400, settle_s=100).steps
    with pytest.raises(CoreValueError) as info:
        scenario(steps=(Enter(300, "e"),), duration_s=400, settle_s=100)
    assert info.value.field == "steps[0].at"


# --------------------------------------------------------------------------- trouble_starts


def test_trouble_starts_at_the_earliest_fault_whatever_the_listing_order():
    s = scenario(faults=(fault(400, 500), fault(260, 300), fault(310, 320)))
    assert s.trouble_starts == 260


def test_an_explicit_degrade_after_overrides_the_faults():
    # A scenario whose trouble is a scripted action (a kill, a vanished stop), not a fault.
    s = scenario(faults=(fault(260, 300),), expect=Expectations(degrade_after=450.0))
    assert s.trouble_starts == 450.0


def test_trouble_starts_at_zero_without_faults_or_an_explicit_instant():
    assert scenario(steps=(Enter(300, "e"),)).trouble_starts == 0.0


# --------------------------------------------------------------------------- ordered_steps


def test_ordered_steps_sorts_by_time_and_keeps_the_script_order_for_ties():
    # The operator halts and the strategy enters at the same instant: listed order wins, so
    # the halt really comes first (a sort that reordered ties would change what is tested).
    halt, enter, exit_, move = Halt(300), Enter(300, "tie"), Exit(500, "x"), MovePrice(100, 59000)
    s = scenario(steps=(exit_, halt, enter, move))
    assert s.ordered_steps() == (move, halt, enter, exit_)
    s2 = scenario(steps=(exit_, enter, halt, move))
    assert s2.ordered_steps() == (move, enter, halt, exit_)
    assert s.steps == (exit_, halt, enter, move)  # the scenario itself is untouched


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8), max_size=12))
def test_ordered_steps_is_a_stable_sort_of_the_script(times):
    steps = tuple(Cancel(float(t), f"i-{n}") for n, t in enumerate(times))
    ordered = scenario(steps=steps).ordered_steps()
    assert sorted(ordered, key=repr) == sorted(steps, key=repr)  # a permutation
    assert [s.at for s in ordered] == sorted(s.at for s in steps)
    for a, b in itertools.pairwise(ordered):
        if a.at == b.at:  # ties keep the order the script listed them in
            assert steps.index(a) < steps.index(b)


# --------------------------------------------------------------------------- steps


@pytest.mark.parametrize("at", [-1.0, -0.001, math.inf, math.nan])
def test_a_step_time_must_be_finite_and_not_negative(at):
    for make in (
        lambda: Enter(at, "e"),
        lambda: Exit(at, "x"),
        lambda: Halt(at),
        lambda: Resume(at),
        lambda: Unfreeze(at),
        lambda: Kill(at),
        lambda: VenueCancel(at),
    ):
        with pytest.raises(CoreValueError) as info:
            make()
        assert info.value.field == "at"


def test_step_time_zero_is_allowed():
    assert Enter(0.0, "first").at == 0.0


@pytest.mark.parametrize("intent_id", ["", "x" * 25])
def test_intent_ids_must_be_one_to_24_characters(intent_id):
    for make in (
        lambda: Enter(10, intent_id),
        lambda: Exit(10, intent_id),
        lambda: Cancel(10, intent_id),
        lambda: Replace(10, intent_id, "new"),
    ):
        with pytest.raises(CoreValueError) as info:
            make()
        assert info.value.field == "intent_id"
    with pytest.raises(CoreValueError) as info:
        Replace(10, "old", intent_id)
    assert info.value.field == "new_intent_id"


def test_a_24_character_intent_id_is_the_longest_allowed():
    assert Enter(10, "x" * 24).intent_id == "x" * 24


@pytest.mark.parametrize("quantity", ["0", "-0.002", 0, -1])
def test_quantities_must_be_positive(quantity):
    with pytest.raises(CoreValueError) as info:
        Enter(10, "e", quantity=quantity)
    assert info.value.field == "quantity"
    with pytest.raises(CoreValueError) as info:
        PlantOrphan(10, for_intent="e", quantity=quantity)
    assert info.value.field == "quantity"


@pytest.mark.parametrize("price", ["0", "-60000"])
def test_a_market_jump_needs_a_positive_price(price):
    with pytest.raises(CoreValueError) as info:
        MovePrice(10, price)
    assert info.value.field == "price"


def test_fields_are_converted_to_their_types():
    enter = Enter(10, "e", quantity="0.005", side="SELL")
    assert enter.quantity == Decimal("0.005")
    assert enter.side is Side.SELL
    assert MovePrice(10, "58000.5").price == Decimal("58000.5")
    crash = ArmCrash(10, "router.after_intent_durable", kind="process")
    assert crash.point is CrashPoint.AFTER_INTENT_DURABLE
    assert crash.kind is CrashKind.PROCESS
    assert PlantOrphan(10, for_intent="e", role="EXIT").role is Role.EXIT


def test_venue_cancel_knows_only_stops_and_entries():
    assert VenueCancel(10).which == "stops"
    assert VenueCancel(10, "entries").which == "entries"
    with pytest.raises(ValueError, match="which"):
        VenueCancel(10, "everything")


def test_an_unknown_crash_point_is_refused_naming_the_field():
    with pytest.raises(CoreValueError) as info:
        ArmCrash(10, "router.somewhere_else")
    assert info.value.field == "point"
    assert "'router.somewhere_else'" in info.value.reason
    assert "router.after_intent_durable" in info.value.reason  # the known points are listed


# --------------------------------------------------------------------------- PlantOrphan


def test_a_planted_orphan_needs_exactly_one_identity():
    with pytest.raises(CoreValueError) as info:
        PlantOrphan(10)
    assert info.value.field == "client_order_id"
    with pytest.raises(CoreValueError) as info:
        PlantOrphan(10, client_order_id="manual-1", for_intent="e")
    assert info.value.field == "client_order_id"
    assert "exactly one" in info.value.reason


def test_a_planted_orphan_by_id_or_by_intent_is_accepted():
    foreign = PlantOrphan(10, client_order_id="manual-1")
    zombie = PlantOrphan(10, for_intent="dup-1")
    assert (foreign.client_order_id, foreign.for_intent) == ("manual-1", "")
    assert (zombie.client_order_id, zombie.for_intent) == ("", "dup-1")
    assert zombie.role is Role.ENTRY
    assert not zombie.reduce_only


# --------------------------------------------------------------------------- every field
#
# Each case is (what, build, field, shows): building ``build(bad)`` must raise a
# CoreValueError whose ``field`` is ``field`` and whose reason shows ``shows`` (the bad
# value as the error prints it). A plan is the literal a failing run prints for replay, so
# a bad one must be refused where it is written, never half-run: a NaN time compares false
# with everything and would make a step silently never due, and a bare
# decimal.InvalidOperation from a typo in a quantity names nothing.

_NAN, _INF = math.nan, math.inf


def _bad_times(build, field):
    return [
        (build, field, bad, shows)
        for bad, shows in (
            (-1.0, "-1.0"),
            (_NAN, "nan"),
            (_INF, "inf"),
            (-_INF, "-inf"),
            ("10", "'10'"),
            (True, "True"),
        )
    ]


def _bad_ids(build, field):
    return [
        (build, field, bad, shows)
        for bad, shows in (
            ("", "''"),
            ("x" * 25, "x" * 25),
            ("has space", "'has space'"),
            ("tab\there", "'tab\\there'"),
            ("nul\x00", "'nul\\x00'"),
            (7, "7"),
        )
    ]


def _bad_quantities(build, field):
    return [
        (build, field, bad, shows)
        for bad, shows in (
            ("abc", "'abc'"),
            ("0.00.1", "'0.00.1'"),
            ("NaN", "'NaN'"),
            ("Infinity", "'Infinity'"),
            (_NAN, "nan"),
            (Decimal("sNaN"), "sNaN"),
            ("0", "0"),
            ("-0.002", "-0.002"),
            (True, "True"),
            ([1], "[1]"),
        )
    ]


def _bad_offsets(build, field):
    return [
        (build, field, bad, shows)
        for bad, shows in (
            (-1.0, "-1.0"),
            (_NAN, "nan"),
            (_INF, "inf"),
            (10_000.0, "10000.0"),
            ("40", "'40'"),
        )
    ]


def _bad_flags(build, field):
    return [
        (build, field, bad, shows) for bad, shows in (("yes", "'yes'"), (1, "1"), (None, "None"))
    ]


_CASES = [
    # Enter
    *_bad_times(lambda v: Enter(v, "e"), "at"),
    *_bad_ids(lambda v: Enter(10, v), "intent_id"),
    *_bad_quantities(lambda v: Enter(10, "e", quantity=v), "quantity"),
    (lambda v: Enter(10, "e", side=v), "side", "LONG", "'LONG'"),
    (lambda v: Enter(10, "e", side=v), "side", "buy", "'buy'"),
    *_bad_offsets(lambda v: Enter(10, "e", offset_bps=v), "offset_bps"),
    *_bad_times(lambda v: Enter(10, "e", patience_s=v), "patience_s"),
    # Exit, Cancel
    *_bad_times(lambda v: Exit(v, "x"), "at"),
    *_bad_ids(lambda v: Exit(10, v), "intent_id"),
    *_bad_times(lambda v: Cancel(v, "c"), "at"),
    *_bad_ids(lambda v: Cancel(10, v), "intent_id"),
    # Replace
    *_bad_times(lambda v: Replace(v, "old", "new"), "at"),
    *_bad_ids(lambda v: Replace(10, v, "new"), "intent_id"),
    *_bad_ids(lambda v: Replace(10, "old", v), "new_intent_id"),
    (lambda v: Replace(10, "same", v), "new_intent_id", "same", "'same'"),
    *_bad_offsets(lambda v: Replace(10, "old", "new", offset_bps=v), "offset_bps"),
    (lambda v: Replace(10, "old", "new", offset_bps=v), "offset_bps", None, "None"),
    *_bad_quantities(lambda v: Replace(10, "old", "new", quantity=v), "quantity"),
    *_bad_times(lambda v: Replace(10, "old", "new", patience_s=v), "patience_s"),
    # Halt, Resume, Kill
    *_bad_times(lambda v: Halt(v), "at"),
    (lambda v: Halt(10, v), "reason", "", "''"),
    (lambda v: Halt(10, v), "reason", "   ", "'   '"),
    (lambda v: Halt(10, v), "reason", "two\nlines", "'two\\nlines'"),
    (lambda v: Halt(10, v), "reason", "x" * 201, "201"),
    (lambda v: Halt(10, v), "reason", 5, "5"),
    *_bad_times(lambda v: Resume(v), "at"),
    *_bad_times(lambda v: Kill(v), "at"),
    # Unfreeze
    *_bad_times(lambda v: Unfreeze(v), "at"),
    *_bad_times(lambda v: Unfreeze(10, patience_s=v), "patience_s"),
    *_bad_times(lambda v: Unfreeze(10, retry_s=v), "retry_s"),
    (lambda v: Unfreeze(10, retry_s=v), "retry_s", 0.0, "0.0"),
    # MovePrice
    *_bad_times(lambda v: MovePrice(v, "60000"), "at"),
    *_bad_quantities(lambda v: MovePrice(10, v), "price"),
    # ArmCrash
    *_bad_times(lambda v: ArmCrash(v, CrashPoint.MID_FILL), "at"),
    (lambda v: ArmCrash(10, v), "point", "router.elsewhere", "'router.elsewhere'"),
    (lambda v: ArmCrash(10, CrashPoint.MID_FILL, v), "kind", "thread", "'thread'"),
    (lambda v: ArmCrash(10, CrashPoint.MID_FILL, skip=v), "skip", -1, "-1"),
    (lambda v: ArmCrash(10, CrashPoint.MID_FILL, skip=v), "skip", 1.5, "1.5"),
    (lambda v: ArmCrash(10, CrashPoint.MID_FILL, skip=v), "skip", True, "True"),
    # VenueCancel
    *_bad_times(lambda v: VenueCancel(v), "at"),
    (lambda v: VenueCancel(10, v), "which", "everything", "'everything'"),
    # PlantOrphan
    *_bad_times(lambda v: PlantOrphan(v, for_intent="z"), "at"),
    (lambda v: PlantOrphan(10, client_order_id=v), "client_order_id", "has space", "'has space'"),
    (lambda v: PlantOrphan(10, client_order_id=v), "client_order_id", "x" * 37, "x" * 37),
    (lambda v: PlantOrphan(10, client_order_id=v), "client_order_id", "caf\u00e9", "'caf\u00e9'"),
    (lambda v: PlantOrphan(10, client_order_id=v), "client_order_id", 42, "42"),
    *[c for c in _bad_ids(lambda v: PlantOrphan(10, for_intent=v), "for_intent") if c[2] != ""],
    *_bad_offsets(lambda v: PlantOrphan(10, for_intent="z", offset_bps=v), "offset_bps"),
    *_bad_quantities(lambda v: PlantOrphan(10, for_intent="z", quantity=v), "quantity"),
    (lambda v: PlantOrphan(10, for_intent="z", side=v), "side", "SHORT", "'SHORT'"),
    *_bad_flags(lambda v: PlantOrphan(10, for_intent="z", reduce_only=v), "reduce_only"),
    (lambda v: PlantOrphan(10, for_intent="z", role=v), "role", "STOP", "'STOP'"),
    # Expectations
    *_bad_flags(lambda v: Expectations(degrade=v), "degrade"),
    *_bad_times(lambda v: Expectations(degrade_after=v), "degrade_after"),
    *_bad_flags(lambda v: Expectations(recover=v), "recover"),
    *_bad_flags(lambda v: Expectations(kill_switch=v), "kill_switch"),
]


@pytest.mark.parametrize(
    ("build", "field", "bad", "shows"),
    _CASES,
    ids=[f"{i}-{c[1]}-{c[2]!r}"[:60] for i, c in enumerate(_CASES)],
)
def test_every_step_and_expectation_field_refuses_a_bad_value_naming_it(build, field, bad, shows):
    with pytest.raises(CoreValueError) as info:
        build(bad)
    assert info.value.field == field
    assert shows in info.value.reason
    assert str(info.value).startswith(f"{field}: ")


def _scenario_kwargs(**overrides):
    kwargs = {
        "name": "ok",
        "description": "one line",
        "attacks": "",
        "proves": ("I7",),
        "steps": (Enter(300, "e"),),
    }
    kwargs.update(overrides)
    return kwargs


_SCENARIO_CASES = [
    ("name", "bad name", "'bad name'"),
    ("name", "caf\u00e9", "'caf\u00e9'"),  # a CLI word is ASCII
    ("name", 7, "7"),
    ("description", "", "''"),
    ("description", "two\nlines", "'two\\nlines'"),
    ("description", None, "None"),
    ("attacks", None, "None"),
    ("proves", (), "()"),
    ("proves", ["I7"], "['I7']"),
    ("proves", ("I7", ""), "''"),
    ("steps", [Enter(300, "e")], "[Enter("),
    ("steps", (Enter(300, "e"), "Enter(300)"), "'Enter(300)'"),
    ("faults", [fault(300, 320)], "[FaultSpec("),
    ("faults", ({"start": 300},), "{'start': 300}"),
    ("duration_s", _NAN, "nan"),
    ("duration_s", _INF, "inf"),
    ("duration_s", 0.0, "0.0"),
    ("duration_s", -1000.0, "-1000.0"),
    ("duration_s", "1000", "'1000'"),
    ("settle_s", _NAN, "nan"),
    ("settle_s", _INF, "inf"),
    ("settle_s", True, "True"),
    ("expect", None, "None"),
    ("expect", {"degrade": False}, "{'degrade': False}"),
    ("reaches", ("fill_after_cancel", "fill_after_cancle"), "'fill_after_cancle'"),
    ("reaches", ["fill_after_cancel"], "['fill_after_cancel']"),
    ("restart_after_s", _NAN, "nan"),
    ("restart_after_s", -1.0, "-1.0"),
    ("restart_after_s", _INF, "inf"),
]


@pytest.mark.parametrize(
    ("field", "bad", "shows"),
    _SCENARIO_CASES,
    ids=[f"{c[0]}-{c[1]!r}"[:50] for c in _SCENARIO_CASES],
)
def test_every_scenario_field_refuses_a_bad_value_naming_it(field, bad, shows):
    with pytest.raises(CoreValueError) as info:
        Scenario(**_scenario_kwargs(**{field: bad}))
    # A bad element of a tuple is named by its index (``proves[1]``, ``steps[1]``).
    assert info.value.field == field or info.value.field.startswith(f"{field}[")
    assert shows in info.value.reason


def test_the_first_bad_element_is_named_by_index():
    with pytest.raises(CoreValueError) as info:
        Scenario(**_scenario_kwargs(proves=("I7", "I3", "not a name")))
    assert info.value.field == "proves[2]"
    with pytest.raises(CoreValueError) as info:
        Scenario(**_scenario_kwargs(reaches=("stop_repaired", "nope")))
    assert info.value.field == "reaches[1]"


@pytest.mark.parametrize(
    ("overrides", "field", "shows"),
    [
        # settle must be a tail strictly shorter than the run, reported with both values.
        ({"duration_s": 400.0, "settle_s": 400.0}, "settle_s", "400.0"),
        ({"duration_s": 400.0, "settle_s": 1e9}, "settle_s", "1000000000.0"),
        # A fault that starts before the run has no meaning on the run's clock.
        ({"faults": (fault(-5, 100),)}, "faults[0].start", "-5"),
        # A step due at or after the end of the run would silently never run, even an
        # Exit or a Resume (which may otherwise run in the tail).
        ({"steps": (Exit(1000, "x"),)}, "steps[0].at", "1000"),
        ({"steps": (Enter(300, "e"), Resume(1500))}, "steps[1].at", "1500"),
        # The tail rule names the offending step kind and instant.
        ({"steps": (Halt(800),)}, "steps[0].at", "Halt at 800"),
        # The posture cannot be expected to degrade after the run has ended.
        ({"expect": Expectations(degrade_after=1000.0)}, "expect.degrade_after", "1000.0"),
    ],
    ids=[
        "settle_equals_duration",
        "settle_longer",
        "fault_before_start",
        "exit_at_end",
        "resume_after_end",
        "halt_in_tail",
        "degrade_after_end",
    ],
)
def test_scenario_wide_rules_name_the_field_and_value(overrides, field, shows):
    with pytest.raises(CoreValueError) as info:
        Scenario(**_scenario_kwargs(**overrides))
    assert info.value.field == field
    assert shows in info.value.reason


def test_the_edges_of_every_range_are_accepted():
    # The limits themselves are legal: a refusal one step inside them would be a bug too.
    assert Enter(0, "e", offset_bps=0.0, patience_s=0.0).patience_s == 0.0
    assert Enter(10, "e", offset_bps=9_999.99).offset_bps == 9_999.99
    assert Halt(10, "x" * 200).reason == "x" * 200
    assert PlantOrphan(10, client_order_id="x" * 36).client_order_id == "x" * 36
    assert PlantOrphan(10, client_order_id="web_.:/-A9").client_order_id == "web_.:/-A9"
    assert ArmCrash(10, CrashPoint.MID_FILL, skip=3).skip == 3
    assert Expectations(degrade_after=0.0).degrade_after == 0.0
    s = Scenario(
        **_scenario_kwargs(
            steps=(Enter(300, "e"), Exit(999.999, "x")),
            restart_after_s=0,
            expect=Expectations(degrade_after=999.0),
        )
    )
    assert s.restart_after_s == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.003, Decimal("0.003")),  # a float by its shortest repr, not its binary expansion
        (1, Decimal(1)),
        ("0.0020", Decimal("0.0020")),
        (Decimal("0.01"), Decimal("0.01")),
    ],
)
def test_quantities_accept_exact_decimal_spellings(value, expected):
    assert Enter(10, "e", quantity=value).quantity == expected
    assert Replace(10, "o", "n", quantity=value).quantity == expected
    assert PlantOrphan(10, for_intent="z", quantity=value).quantity == expected


def test_replace_without_a_quantity_keeps_none():
    assert Replace(10, "old", "new").quantity is None
