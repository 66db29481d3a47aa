"""Tests for scalper.core.posture: belief debt -> score -> mode -> guard knobs."""

import itertools
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.posture import (
    BeliefDebt,
    GuardKnobs,
    PostureConfig,
    PostureController,
    PostureDecision,
    PostureMode,
    knobs_for,
    score_debt,
)

GREEN, YELLOW, ORANGE, RED = (
    PostureMode.GREEN,
    PostureMode.YELLOW,
    PostureMode.ORANGE,
    PostureMode.RED,
)
MODES = (GREEN, YELLOW, ORANGE, RED)

# The timing the example tests are written against, pinned so a change of defaults does not
# silently change what they check.
PINNED = PostureConfig(
    yellow_score=0.25,
    orange_score=0.5,
    red_score=0.8,
    persist_s=20.0,
    recover_s=90.0,
    down_hysteresis=0.75,
    post_red_warmup_s=180.0,
    burst_growth_per_s=0.015,
    burst_min_score=0.4,
    growth_window_s=30.0,
    unlock_contradiction_clear_s=60.0,
    boot_mode=GREEN,
)

# A belief that cannot be trusted at all: RED by score alone.
SEVERE = BeliefDebt(
    breadth=5,
    protection_gap_s=90.0,
    source_confidence=0.2,
    mismatch_streak=10,
)


def step(ctrl: PostureController, schedule):
    return [ctrl.update(debt, t) for t, debt in schedule]


def assert_no_looser(tight: GuardKnobs, loose: GuardKnobs) -> None:
    """Field by field: ``tight`` must be at least as strict as ``loose`` (I6)."""
    assert loose.allow_entries or not tight.allow_entries
    assert tight.max_notional <= loose.max_notional
    assert tight.max_leverage <= loose.max_leverage
    assert tight.max_open_orders_per_symbol <= loose.max_open_orders_per_symbol
    assert tight.min_entry_conf >= loose.min_entry_conf
    assert tight.entry_cooldown_s >= loose.entry_cooldown_s
    assert tight.kill_switch_trip or not loose.kill_switch_trip


# --- strategies ------------------------------------------------------------------------------


@st.composite
def debts(draw):
    unknown = draw(st.integers(0, 6))
    return BeliefDebt(
        debt_age_s=draw(st.floats(0, 1800)),
        breadth=draw(st.integers(0, 10)),
        depth=draw(st.floats(0, 3)),
        contradiction_burn=draw(st.floats(0, 6)),
        protection_gap_s=draw(st.floats(0, 300)),
        mismatch_streak=draw(st.integers(0, 20)),
        source_confidence=draw(st.floats(0, 1)),
        unknown_intents=unknown,
        oldest_unknown_intent_s=draw(st.floats(0, 600)) if unknown else 0.0,
        extra_pressure=draw(st.floats(0, 1)),
        extra_tags=tuple(draw(st.lists(st.sampled_from(["replace_storm", "reconcile_first"])))),
    )


@st.composite
def mild_debts(draw):
    # Small debts that sit around the YELLOW/ORANGE thresholds and their release levels.
    return BeliefDebt(
        breadth=draw(st.integers(0, 2)),
        depth=draw(st.floats(0, 0.9)),
        mismatch_streak=draw(st.integers(0, 2)),
        source_confidence=draw(st.floats(0.75, 1)),
    )


any_debt = st.one_of(st.just(BeliefDebt()), mild_debts(), debts())
gaps = st.floats(min_value=0.0, max_value=200.0)
schedules = st.lists(st.tuples(gaps, any_debt), min_size=1, max_size=40)


def timed(schedule, start: float = 0.0):
    t = start
    for dt, debt in schedule:
        t += dt
        yield t, debt


# --- BeliefDebt and config validation -------------------------------------------------------


def test_default_debt_is_clear_and_scores_zero():
    debt = BeliefDebt()
    assert debt.is_clear
    breakdown = score_debt(debt, PostureConfig())
    assert breakdown.score == 0.0
    assert breakdown.dominant(3) == ()
    assert not BeliefDebt(mismatch_streak=1).is_clear


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"debt_age_s": -1.0}, "debt_age_s"),
        ({"breadth": -1}, "breadth"),
        ({"breadth": True}, "breadth"),
        ({"depth": float("nan")}, "depth"),
        ({"contradiction_burn": float("inf")}, "contradiction_burn"),
        ({"protection_gap_s": -0.5}, "protection_gap_s"),
        ({"mismatch_streak": 1.5}, "mismatch_streak"),
        ({"source_confidence": 1.01}, "source_confidence"),
        ({"source_confidence": "high"}, "source_confidence"),
        ({"unknown_intents": -2}, "unknown_intents"),
        ({"oldest_unknown_intent_s": 12.0}, "oldest_unknown_intent_s"),
        ({"extra_pressure": 1.5}, "extra_pressure"),
        ({"extra_tags": ("Replace Storm",)}, "extra_tags"),
        ({"extra_tags": "replace_storm"}, "extra_tags"),
    ],
)
def test_bad_debt_names_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as info:
        BeliefDebt(**kwargs)
    assert info.value.field == field


def test_debt_accepts_ints_for_seconds_and_lists_for_tags():
    debt = BeliefDebt(debt_age_s=30, unknown_intents=1, extra_tags=["replace_storm"])
    assert debt.debt_age_s == 30.0
    assert isinstance(debt.debt_age_s, float)
    assert debt.extra_tags == ("replace_storm",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"yellow_score": 0.6}, "orange_score"),
        ({"red_score": 0.5}, "red_score"),
        ({"red_score": 1.2}, "red_score"),
        ({"down_hysteresis": 1.0}, "down_hysteresis"),
        ({"persist_s": -1.0}, "persist_s"),
        ({"depth_weight": -0.1}, "depth_weight"),
        ({"breadth_ref": 0.0}, "breadth_ref"),
        ({"orange_risk_cap": 0.9}, "orange_risk_cap"),
        ({"base_max_notional": 100.5}, "base_max_notional"),
        ({"base_max_notional": Decimal("NaN")}, "base_max_notional"),
        ({"base_max_notional": Decimal(-1)}, "base_max_notional"),
        ({"base_max_leverage": 0}, "base_max_leverage"),
        ({"boot_mode": "PURPLE"}, "boot_mode"),
        ({"dominant_count": 0}, "dominant_count"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as info:
        PostureConfig(**kwargs)
    assert info.value.field == field


def test_config_takes_plain_toml_types():
    cfg = PostureConfig(boot_mode="yellow", base_max_notional="250.5", persist_s=30)
    assert cfg.boot_mode is YELLOW
    assert cfg.base_max_notional == Decimal("250.5")
    assert cfg.persist_s == 30.0


def test_release_threshold_sits_below_up_threshold():
    cfg = PostureConfig()
    for mode in (YELLOW, ORANGE, RED):
        assert 0.0 < cfg.release_score(mode) < cfg.threshold(mode)


# --- score and explanation ------------------------------------------------------------------


def test_uncovered_fill_dominates_the_explanation():
    # A filled position has had no stop for 2 minutes while a replace storm is going on.
    debt = BeliefDebt(
        protection_gap_s=120.0,
        breadth=1,
        mismatch_streak=2,
        extra_pressure=0.4,
        extra_tags=("replace_storm",),
    )
    breakdown = score_debt(debt, PostureConfig())
    dominant = breakdown.dominant(3)
    assert dominant[0].name == "protection_gap"
    assert [c.contribution for c in dominant] == sorted(
        (c.contribution for c in dominant), reverse=True
    )
    assert sum(c.share for c in breakdown.contributors) == pytest.approx(1.0)
    assert breakdown.score == pytest.approx(sum(c.contribution for c in breakdown.contributors))

    decision = PostureController(PINNED).update(debt, 0.0)
    names = [c.name for c in decision.explanation.dominant]
    assert names[0] == "protection_gap"
    assert len(names) == PINNED.dominant_count
    assert "replace_storm" in decision.explanation.cause_tags
    assert decision.explanation.cause_tags[0] == "protection_gap"


def test_score_is_capped_but_shares_stay_proportional():
    breakdown = score_debt(SEVERE, PostureConfig())
    assert breakdown.raw_total > 1.0
    assert breakdown.score == 1.0
    assert sum(c.share for c in breakdown.contributors) == pytest.approx(1.0)


@given(debt=debts())
def test_score_is_always_in_unit_interval(debt):
    breakdown = score_debt(debt, PostureConfig())
    assert 0.0 <= breakdown.score <= 1.0
    for c in breakdown.contributors:
        assert 0.0 <= c.pressure <= 1.0
        assert 0.0 <= c.share <= 1.0


@given(debt=debts(), field=st.sampled_from(["debt_age_s", "depth", "protection_gap_s"]))
def test_more_debt_never_lowers_the_score(debt, field):
    worse = attrs.evolve(debt, **{field: getattr(debt, field) + 10.0})
    cfg = PostureConfig()
    assert score_debt(worse, cfg).score >= score_debt(debt, cfg).score
    less_confident = attrs.evolve(debt, source_confidence=debt.source_confidence / 2)
    assert score_debt(less_confident, cfg).score >= score_debt(debt, cfg).score


# --- knobs -----------------------------------------------------------------------------------


def test_green_knobs_at_zero_score_are_the_base_values():
    cfg = PostureConfig()
    knobs = knobs_for(0.0, GREEN, cfg)
    assert knobs.allow_entries
    assert knobs.max_notional == cfg.base_max_notional
    assert knobs.max_leverage == cfg.base_max_leverage
    assert knobs.min_entry_conf == cfg.base_min_entry_conf
    assert knobs.entry_cooldown_s == cfg.base_entry_cooldown_s
    assert knobs.max_open_orders_per_symbol == cfg.base_max_open_orders_per_symbol
    assert not knobs.kill_switch_trip


def test_orange_freezes_entries_and_red_trips_the_kill_switch():
    cfg = PostureConfig()
    orange = knobs_for(0.55, ORANGE, cfg)
    assert not orange.allow_entries
    assert not orange.kill_switch_trip
    assert orange.max_open_orders_per_symbol == 0
    red = knobs_for(0.0, RED, cfg)
    assert red.kill_switch_trip
    assert not red.allow_entries
    assert red.max_notional == Decimal(0)
    assert red.mode is RED


def test_yellow_allows_smaller_entries():
    cfg = PostureConfig()
    yellow = knobs_for(0.3, YELLOW, cfg)
    green = knobs_for(0.0, GREEN, cfg)
    assert yellow.allow_entries
    assert yellow.max_notional < green.max_notional
    assert yellow.min_entry_conf > green.min_entry_conf
    assert yellow.entry_cooldown_s > green.entry_cooldown_s


def test_notional_cap_is_rounded_down_to_cents():
    cfg = PostureConfig(base_max_notional=Decimal("333.33"))
    knobs = knobs_for(0.1, GREEN, cfg)
    exact = Decimal("333.33") * Decimal(1.0 - cfg.risk_slope * 0.1)
    assert knobs.max_notional == knobs.max_notional.quantize(Decimal("0.01"))
    assert knobs.max_notional <= exact < knobs.max_notional + Decimal("0.01")


@pytest.mark.parametrize("score", [-0.1, 1.5, float("nan"), True])
def test_knobs_reject_bad_scores(score):
    with pytest.raises(CoreValueError) as info:
        knobs_for(score, GREEN, PostureConfig())
    assert info.value.field == "score"


@settings(max_examples=300)
@given(
    s1=st.floats(0, 1),
    s2=st.floats(0, 1),
    m1=st.sampled_from(MODES),
    m2=st.sampled_from(MODES),
    base=st.decimals(min_value=0, max_value=100_000, places=2),
    leverage=st.integers(1, 125),
)
def test_knobs_are_monotone_in_score_and_mode(s1, s2, m1, m2, base, leverage):
    # I6: more uncertainty (higher score, worse mode) never loosens any knob.
    cfg = PostureConfig(base_max_notional=base, base_max_leverage=leverage)
    lo_s, hi_s = sorted((s1, s2))
    lo_m, hi_m = sorted((m1, m2), key=lambda m: m.level)
    loose = knobs_for(lo_s, lo_m, cfg)
    tight = knobs_for(hi_s, hi_m, cfg)
    assert_no_looser(tight, loose)
    assert tight.no_looser_than(loose)


def test_no_looser_than_detects_a_loosened_knob():
    cfg = PostureConfig()
    tight = knobs_for(0.4, YELLOW, cfg)
    loosened = attrs.evolve(tight, max_leverage=tight.max_leverage + 1)
    assert tight.no_looser_than(tight)
    assert not loosened.no_looser_than(tight)
    assert tight.no_looser_than(loosened)


def test_guard_knobs_have_no_exit_knob():
    # I1: exits are never constrained, so there must be nothing here an exit could consult.
    names = {f.name for f in attrs.fields(GuardKnobs)}
    assert names == {
        "allow_entries",
        "max_notional",
        "max_leverage",
        "min_entry_conf",
        "entry_cooldown_s",
        "max_open_orders_per_symbol",
        "mode",
        "kill_switch_trip",
    }
    for name in names:
        for word in ("exit", "reduce", "protect", "stop", "close", "flatten", "hedge"):
            assert word not in name
    doc = GuardKnobs.__doc__ or ""
    assert "Exits are never constrained (I1)" in doc


def test_knobs_reject_inconsistent_kill_switch():
    knobs = knobs_for(0.9, RED, PostureConfig())
    with pytest.raises(CoreValueError) as info:
        attrs.evolve(knobs, allow_entries=True)
    assert info.value.field == "allow_entries"


# --- the controller: examples ---------------------------------------------------------------


def test_incident_timeline_degrades_then_recovers_one_level_at_a_time():
    ctrl = PostureController(PINNED)
    clean = BeliefDebt(source_confidence=0.95)
    schedule = [
        (0.0, BeliefDebt()),
        # Reconcile finds our BTCUSDT position differs from the exchange's.
        (15.0, BeliefDebt(breadth=1, mismatch_streak=1, depth=0.4, source_confidence=0.9)),
        (30.0, BeliefDebt(breadth=1, mismatch_streak=2, depth=0.4, debt_age_s=15)),
        (45.0, BeliefDebt(breadth=1, mismatch_streak=3, depth=0.4, debt_age_s=30)),
        # It spreads to ETHUSDT and the evidence gets shakier.
        (
            60.0,
            BeliefDebt(
                breadth=2, mismatch_streak=4, depth=0.5, debt_age_s=45, source_confidence=0.85
            ),
        ),
        (
            75.0,
            BeliefDebt(
                breadth=2, mismatch_streak=5, depth=0.5, debt_age_s=60, source_confidence=0.85
            ),
        ),
        (
            90.0,
            BeliefDebt(
                breadth=2, mismatch_streak=6, depth=0.5, debt_age_s=75, source_confidence=0.85
            ),
        ),
        # Reconcile repairs both; the evidence is clean from here on...
        *((float(t), clean) for t in range(105, 240, 15)),
        # ...except one pass that sees a mismatch again (tiny score, but a real gate).
        (240.0, BeliefDebt(mismatch_streak=1, source_confidence=0.95)),
        *((float(t), clean) for t in range(255, 360, 15)),
    ]
    decisions = {d.now: d for d in step(ctrl, schedule)}

    # Premises: the scores sit where the story says they do.
    assert PINNED.yellow_score <= decisions[15.0].score < PINNED.orange_score
    assert PINNED.orange_score <= decisions[60.0].score < PINNED.red_score
    assert decisions[240.0].score < PINNED.release_score(YELLOW)
    assert all(d.reason not in ("red_score", "red_burst") for d in decisions.values())

    # Degrade: the knobs tighten at the first bad tick, the mode after persistence.
    assert decisions[15.0].mode is GREEN
    assert decisions[15.0].reason == "hold_persisting"
    assert decisions[15.0].knobs.max_notional < decisions[0.0].knobs.max_notional
    assert decisions[30.0].mode is GREEN
    assert (decisions[45.0].mode, decisions[45.0].reason) == (YELLOW, "escalate_persisted")
    assert decisions[45.0].knobs.allow_entries
    assert decisions[75.0].mode is YELLOW
    assert (decisions[90.0].mode, decisions[90.0].reason) == (ORANGE, "escalate_persisted")
    assert not decisions[90.0].knobs.allow_entries

    # Recover: one level at a time, each after a full recovery window below release.
    assert decisions[105.0].reason == "hold_recovering"
    assert decisions[105.0].explanation.next_unlock_at == 105.0 + PINNED.recover_s
    assert decisions[180.0].mode is ORANGE
    assert (decisions[195.0].mode, decisions[195.0].reason) == (YELLOW, "recover_step")
    assert decisions[195.0].explanation.next_unlock_at == 195.0 + PINNED.recover_s

    # The mismatch blip blocks recovery and restarts the recovery clock.
    blip = decisions[240.0]
    assert (blip.mode, blip.reason) == (YELLOW, "hold_locked")
    assert [u.name for u in blip.explanation.unmet] == ["mismatch_streak", "recovery_window_s"]
    assert blip.explanation.next_unlock_at is None
    assert decisions[285.0].mode is YELLOW  # the seed system would have recovered here
    assert decisions[255.0].explanation.next_unlock_at == 255.0 + PINNED.recover_s
    assert decisions[345.0].mode is GREEN
    assert decisions[345.0].explanation.unlock_conditions == ()

    changes = [(d.now, d.previous_mode, d.mode) for d in decisions.values() if d.changed]
    assert changes == [
        (45.0, GREEN, YELLOW),
        (90.0, YELLOW, ORANGE),
        (195.0, ORANGE, YELLOW),
        (345.0, YELLOW, GREEN),
    ]


def test_contradiction_burst_trips_red_at_once_but_the_same_level_reached_slowly_does_not():
    burst = PostureController(PINNED)
    step(burst, [(t, BeliefDebt()) for t in (0.0, 15.0, 30.0)])
    tripped = burst.update(BeliefDebt(contradiction_burn=3.0), 45.0)
    assert tripped.score < PINNED.red_score
    assert (tripped.mode, tripped.reason) == (RED, "red_burst")
    assert tripped.changed
    assert tripped.knobs.kill_switch_trip
    assert "growth_burst" in tripped.explanation.cause_tags
    assert tripped.growth_per_s >= PINNED.burst_growth_per_s

    slow = PostureController(PINNED)
    # The same burn reached over ten minutes, then held for the persistence window.
    ramp = [
        (float(t), BeliefDebt(contradiction_burn=3.0 * min(t, 600) / 600))
        for t in range(0, 600 + 45, 15)
    ]
    decisions = step(slow, ramp)
    assert decisions[-1].score == pytest.approx(tripped.score)
    assert decisions[-1].mode is ORANGE
    assert all(d.mode is not RED for d in decisions)


def test_red_by_score_is_immediate_even_from_green():
    ctrl = PostureController(PINNED)
    decision = ctrl.update(SEVERE, 0.0)
    assert (decision.previous_mode, decision.mode, decision.reason) == (GREEN, RED, "red_score")
    assert "red_score" in decision.explanation.cause_tags


def test_post_red_warmup_holds_orange():
    ctrl = PostureController(PINNED)
    schedule = [(0.0, SEVERE), *((float(t), BeliefDebt()) for t in range(15, 400, 15))]
    decisions = {d.now: d for d in step(ctrl, schedule)}
    # RED -> ORANGE after one recovery window (clock from t=15).
    assert decisions[90.0].mode is RED
    assert (decisions[105.0].mode, decisions[105.0].reason) == (ORANGE, "recover_step")
    # The recovery window in ORANGE is done at 195, but the warm-up runs until 285.
    at_240 = decisions[240.0]
    assert at_240.mode is ORANGE
    assert [u.name for u in at_240.explanation.unmet] == ["post_red_warmup_s"]
    assert at_240.explanation.next_unlock_at == 105.0 + PINNED.post_red_warmup_s
    assert decisions[270.0].mode is ORANGE
    assert decisions[285.0].mode is YELLOW
    assert decisions[360.0].mode is YELLOW
    assert decisions[375.0].mode is GREEN


def test_boot_is_conservative_until_clean_reconciles():
    ctrl = PostureController()  # default boot_mode: ORANGE
    assert ctrl.mode is ORANGE
    assert not ctrl.knobs.allow_entries
    decisions = step(ctrl, [(float(t), BeliefDebt()) for t in range(0, 300, 15)])
    changes = [(d.now, d.mode) for d in decisions if d.changed]
    cfg = ctrl.config
    assert changes == [(cfg.recover_s, YELLOW), (2 * cfg.recover_s, GREEN)]
    assert ctrl.knobs.allow_entries


def test_hysteresis_prevents_flapping():
    # A score hovering between YELLOW's release and up thresholds moves nothing either way.
    low = BeliefDebt(depth=0.4)  # 0.20: below the threshold, above the release
    high = BeliefDebt(depth=0.6)  # 0.30: above the threshold
    cfg = PINNED
    assert cfg.release_score(YELLOW) < score_debt(low, cfg).score < cfg.yellow_score
    assert cfg.yellow_score <= score_debt(high, cfg).score < cfg.orange_score
    flapping = [(float(t), low if (t // 15) % 2 else high) for t in range(0, 1800, 15)]

    from_green = step(PostureController(cfg), flapping)
    assert all(d.mode is GREEN for d in from_green)
    from_yellow = step(PostureController(attrs.evolve(cfg, boot_mode=YELLOW)), flapping)
    assert all(d.mode is YELLOW for d in from_yellow)


@pytest.mark.parametrize(
    ("condition", "debt"),
    [
        ("score_below_release", BeliefDebt(depth=0.8)),
        ("mismatch_streak", BeliefDebt(mismatch_streak=1)),
        ("source_confidence", BeliefDebt(source_confidence=0.7)),
        ("protection_gap_s", BeliefDebt(protection_gap_s=5.0)),
        ("unknown_intent_age_s", BeliefDebt(unknown_intents=1, oldest_unknown_intent_s=45.0)),
        ("contradiction_clear_s", BeliefDebt(contradiction_burn=0.5)),
    ],
)
def test_each_unlock_condition_really_gates_recovery(condition, debt):
    cfg = attrs.evolve(PINNED, boot_mode=ORANGE)
    assert score_debt(debt, cfg).score < cfg.orange_score  # it never forces ORANGE by itself
    ctrl = PostureController(cfg)
    held = step(ctrl, [(float(t), debt) for t in range(0, 1200, 15)])
    assert all(d.mode is ORANGE for d in held)
    last = held[-1].explanation
    assert condition in [u.name for u in last.unmet]
    assert last.next_unlock_at is None
    unmet = next(u for u in last.unlock_conditions if u.name == condition)
    assert unmet.describe().endswith("unmet")

    # Once the condition clears, recovery proceeds: it was that condition holding it.
    released = step(ctrl, [(float(t), BeliefDebt()) for t in range(1200, 1500, 15)])
    assert released[-1].mode is GREEN


def test_now_must_not_go_backwards():
    ctrl = PostureController(PINNED)
    ctrl.update(BeliefDebt(), 100.0)
    with pytest.raises(CoreValueError) as info:
        ctrl.update(BeliefDebt(), 99.0)
    assert info.value.field == "now"
    with pytest.raises(CoreValueError):
        ctrl.update(BeliefDebt(), float("nan"))
    with pytest.raises(CoreValueError) as info:
        ctrl.update({"breadth": 1}, 101.0)  # type: ignore[arg-type]
    assert info.value.field == "debt"


def test_decision_rejects_inconsistent_changed_flag():
    decision = PostureController(PINNED).update(BeliefDebt(), 0.0)
    with pytest.raises(CoreValueError) as info:
        attrs.evolve(decision, changed=True)
    assert info.value.field == "changed"


# --- the controller: properties -------------------------------------------------------------


def run_schedule(cfg: PostureConfig, schedule) -> list[PostureDecision]:
    ctrl = PostureController(cfg)
    return [ctrl.update(debt, t) for t, debt in timed(schedule)]


@settings(max_examples=150)
@given(schedule=schedules, boot=st.sampled_from(MODES))
def test_mode_steps_down_at_most_one_level_per_update(schedule, boot):
    cfg = attrs.evolve(PINNED, boot_mode=boot)
    previous = boot
    for d in run_schedule(cfg, schedule):
        assert d.previous_mode is previous
        assert d.changed == (d.mode is not previous)
        assert d.mode.level >= previous.level - 1
        if d.mode.level < previous.level:
            assert d.reason == "recover_step"
        assert d.knobs == knobs_for(d.score, d.mode, cfg)
        assert 0.0 <= d.score <= 1.0
        previous = d.mode


@given(
    calm=st.lists(st.tuples(st.floats(0.5, 60.0), st.integers(0, 1)), min_size=1, max_size=20),
    dt=st.floats(0.0, 30.0),
    jump=st.floats(0.6, 1.0),
)
def test_red_at_once_on_a_burst(calm, dt, jump):
    # A calm history (score <= 0.06), then within one growth window the score leaps.
    ctrl = PostureController(PINNED)
    t = 0.0
    for gap, breadth in calm:
        t += gap
        assert ctrl.update(BeliefDebt(breadth=breadth), t).mode is GREEN
    # The depth term saturates at its weight (0.5); confidence loss supplies the rest.
    lost = (jump - PINNED.depth_weight) / PINNED.source_confidence_weight
    leap = BeliefDebt(depth=PINNED.depth_ref, source_confidence=1.0 - lost)
    decision = ctrl.update(leap, t + dt)
    assert decision.score >= PINNED.burst_min_score
    assert decision.mode is RED
    assert decision.knobs.kill_switch_trip
    assert decision.reason in ("red_burst", "red_score")


_UNMET = {
    "mismatch_streak": lambda d, x: attrs.evolve(d, mismatch_streak=max(1, d.mismatch_streak)),
    "source_confidence": lambda d, x: attrs.evolve(d, source_confidence=0.79 * x),
    "protection_gap_s": lambda d, x: attrs.evolve(d, protection_gap_s=0.5 + 300 * x),
    "unknown_intent_age_s": lambda d, x: attrs.evolve(
        d, unknown_intents=max(1, d.unknown_intents), oldest_unknown_intent_s=31.0 + 600 * x
    ),
    "contradiction_clear_s": lambda d, x: attrs.evolve(d, contradiction_burn=0.2 + 5 * x),
}


@settings(max_examples=150)
@given(
    condition=st.sampled_from(sorted(_UNMET)),
    boot=st.sampled_from((YELLOW, ORANGE, RED)),
    schedule=st.lists(st.tuples(gaps, any_debt, st.floats(0, 1)), min_size=1, max_size=40),
)
def test_no_recovery_while_an_unlock_condition_is_unmet(condition, boot, schedule):
    ctrl = PostureController(attrs.evolve(PINNED, boot_mode=boot))
    t = 0.0
    level = boot.level
    for dt, debt, x in schedule:
        t += dt
        d = ctrl.update(_UNMET[condition](debt, x), t)
        assert d.mode.level >= level
        assert d.reason != "recover_step"
        assert condition in [u.name for u in d.explanation.unmet]
        level = d.mode.level


@settings(max_examples=60)
@given(boot=st.sampled_from(MODES), cadence=st.lists(st.floats(1.0, 30.0), min_size=1, max_size=10))
def test_clean_evidence_always_recovers_to_green(boot, cadence):
    # Liveness: the gates are not a trap. With clean evidence GREEN comes within a bound.
    cfg = attrs.evolve(PINNED, boot_mode=boot)
    bound = 2 * cfg.recover_s + max(cfg.recover_s, cfg.post_red_warmup_s) + 3 * max(cadence)
    ctrl = PostureController(cfg)
    t = 0.0
    previous = boot
    for dt in itertools.cycle(cadence):
        d = ctrl.update(BeliefDebt(), t)
        assert d.mode.level in (previous.level, previous.level - 1)
        previous = d.mode
        if t > bound:
            break
        t += dt
    assert ctrl.mode is GREEN


@settings(max_examples=60)
@given(schedule=schedules, boot=st.sampled_from(MODES))
def test_decisions_are_deterministic(schedule, boot):
    cfg = attrs.evolve(PINNED, boot_mode=boot)
    first: list[PostureDecision] = run_schedule(cfg, schedule)
    second = run_schedule(cfg, schedule)
    assert first == second


# --- knobs within a mode (what the BeliefController must publish) -------------------------


@pytest.mark.parametrize(
    ("mode", "unknown"),
    # YELLOW caps the risk multiplier at 0.8, so its knobs move once the score passes 0.22.
    [(PostureMode.GREEN, 1), (PostureMode.YELLOW, 3)],
)
def test_knobs_change_with_the_score_while_the_mode_stays(mode: PostureMode, unknown: int) -> None:
    # The knobs are a function of score *and* mode: unknown intents tighten every entry
    # limit at once, long before (or without) any mode change. A controller that publishes
    # knobs only on a mode change leaves the Router enforcing the looser ones.
    ctl = PostureController(PostureConfig(boot_mode=mode))
    before = ctl.update(BeliefDebt(), 0.0)
    after = ctl.update(BeliefDebt(unknown_intents=unknown, oldest_unknown_intent_s=1.0), 1.0)
    assert (before.mode, after.mode, after.changed) == (mode, mode, False)
    assert after.knobs != before.knobs
    assert after.knobs.no_looser_than(before.knobs)
    assert after.knobs.max_notional < before.knobs.max_notional
    assert after.knobs.entry_cooldown_s > before.knobs.entry_cooldown_s
    # Back to no debt: same mode, and the knobs loosen back to exactly the first ones.
    again = ctl.update(BeliefDebt(), 2.0)
    assert again.mode is mode
    assert again.knobs == before.knobs


def test_equal_debts_give_equal_knobs() -> None:
    # Value equality is what the controller compares to avoid re-sending unchanged knobs.
    ctl = PostureController(PostureConfig(boot_mode=PostureMode.GREEN))
    debt = BeliefDebt(breadth=1, depth=0.1)
    first = ctl.update(debt, 0.0)
    second = ctl.update(debt, 5.0)
    assert first.knobs == second.knobs
    assert first.knobs is not second.knobs
