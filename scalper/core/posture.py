r"""Posture: belief debt to a score, a mode, and the guard knobs that clamp entries.

Theory of operation
-------------------

The reconciler measures how wrong our picture of the account might be and hands that over as
a :class:`BeliefDebt`: how old the oldest unresolved uncertainty is, how many symbols or
orders it touches, how wide the worst-case envelope is, how hard the evidence sources
contradict each other, how long filled exposure has gone without a protective stop, and so
on. This module turns that debt into a *posture* and the posture into :class:`GuardKnobs`.

**Score.** :func:`score_debt` maps every debt field to a *pressure* in [0, 1] (a linear ramp
that saturates at a reference value: ``min(1, value / ref)``; for source confidence the
pressure is ``1 - confidence``), multiplies it by the contributor's weight (the most that
contributor can add on its own) and adds the terms::

    score = min(1, sum(weight_i * pressure_i))

Default weights (:class:`PostureConfig`)::

    contributor         ref          weight   alone at ref reaches
    debt_age            600 s        0.60     ORANGE
    breadth             5 symbols    0.30     YELLOW
    depth               1.0 x ref    0.50     ORANGE
    contradiction_burn  3.0 /min     0.50     ORANGE
    protection_gap      20 s (2xTTL) 0.60     ORANGE (I9: an uncovered fill escalates)
    mismatch_streak     10 ticks     0.30     YELLOW
    source_confidence   1 - conf     0.60     ORANGE (entries frozen when feeds are blind)
    unknown_intents     4 intents    0.40     YELLOW
    extra_pressure      1.0          0.50     ORANGE (replace storms, reconcile-first, ...)

No single contributor reaches RED alone at its reference value; RED needs several at once or
a sudden rise. Each contributor's *share* is its term divided by the sum of all terms (before
the cap), so the explanation can name the dominant contributors. The *growth* is the fastest
rise of the score over the last ``growth_window_s`` seconds, in score per second.

**Modes.** GREEN < YELLOW < ORANGE < RED, with score thresholds 0.25 / 0.50 / 0.80.

* *Degrade fast.* RED at once when the score reaches ``red_score`` or on a growth burst
  (growth >= ``burst_growth_per_s`` with the score at least ``burst_min_score``). YELLOW and
  ORANGE once the score has stayed at or above their threshold for ``persist_s`` (straight to
  the highest persisted mode). The knobs follow the score continuously, so entries tighten at
  the first bad tick even while a mode change is still persisting.
* *Recover slow.* Down one level per update, never more. A step down from mode M needs every
  unlock condition met at once:

  - ``score_below_release``: score < threshold(M) x ``down_hysteresis`` (a release threshold
    below the up threshold, so a score hovering at a threshold cannot flap the mode);
  - ``mismatch_streak`` <= 0, ``source_confidence`` >= 0.8, ``protection_gap_s`` <= 0,
    ``unknown_intent_age_s`` <= 30 (no unknown intent older than that);
  - ``contradiction_clear_s`` >= 60 (contradiction burn at or below 0.1 for that long);
  - ``post_red_warmup_s`` >= 180, in ORANGE after a RED (the warm-up before going below
    ORANGE);
  - ``recovery_window_s`` >= 90: the recovery clock, which runs only while the score is below
    the release threshold *and* the four evidence conditions above hold, and restarts at
    every mode change.

  In the seed system these unlock conditions were only reported; here they are the gate.
  Recovery cannot happen while any of them is unmet, and every decision lists them with
  their current and required values and, when it can be known, the earliest unlock time.

* *Boot conservative.* A new controller starts in ``boot_mode`` (ORANGE by default: no entries
  until the first clean reconciles have run for a recovery window).

**Knobs.** :func:`knobs_for` is a pure function of (score, mode) and is monotone (I6): a
higher score or a worse mode never loosens any knob. A risk multiplier
``m = min(clamp(1 - risk_slope * score, 0, 1), cap(mode))`` (caps 1 / 0.8 / 0.45 / 0) scales
notional, leverage and open entry orders down and confidence floor and cooldown up. Entries
are allowed only in GREEN and YELLOW with ``m >= min_entry_risk``; RED trips the kill switch.

**Exits are never constrained (I1).** Every knob is an *entry* limit. There is no knob that
could block or shrink a reduce-only order, a protective stop or a close; exits take a separate
path that does not consult posture at all.

The controller is deterministic: its state is a function of the sequence of
``(debt, now)`` updates, so replaying the journaled debts reproduces every decision (I5).
"""

import collections
import decimal
import enum
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import attrs

from scalper.core.errors_base import CoreValueError

__all__ = [
    "BeliefDebt",
    "Contributor",
    "GuardKnobs",
    "PostureConfig",
    "PostureController",
    "PostureDecision",
    "PostureExplanation",
    "PostureMode",
    "ScoreBreakdown",
    "UnlockCondition",
    "knobs_for",
    "score_debt",
]


class PostureMode(enum.StrEnum):
    """Posture modes, from healthy to halted. Order by :attr:`level`."""

    GREEN = "GREEN"
    YELLOW = "YELLOW"
    ORANGE = "ORANGE"
    RED = "RED"

    @property
    def level(self) -> int:
        """0 for GREEN up to 3 for RED: higher is more degraded."""
        return _LEVELS.index(self)

    @classmethod
    def from_level(cls, level: int) -> "PostureMode":
        """The mode at ``level`` (0-3).

        Raises:
            CoreValueError: if ``level`` is outside 0-3.
        """
        if not 0 <= level < len(_LEVELS):
            raise CoreValueError("level", f"must be in 0..{len(_LEVELS) - 1}, got {level}")
        return _LEVELS[level]


_LEVELS = (PostureMode.GREEN, PostureMode.YELLOW, PostureMode.ORANGE, PostureMode.RED)

_TAG_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# Decimal arithmetic for the notional cap runs in its own context so a caller that changed
# the thread's decimal context cannot change (or break) a risk limit.
_DECIMAL_CTX = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)
_CENT = Decimal("0.01")
_MAX_NOTIONAL = Decimal(10) ** 12

# Bound on the growth-window sample buffer: updates arriving faster than anyone needs are
# coalesced instead of growing memory without limit.
_MAX_SAMPLES = 256

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


# --- validators ------------------------------------------------------------------------------


def _to_float(value: Any) -> Any:
    """Convert ints to float (TOML writes ``20`` for ``20.0``); leave the rest to validators."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _real(
    *, ge: float | None = None, gt: float | None = None, le: float | None = None
) -> _Validator:
    """A validator for a finite float within the given bounds."""

    def check(_inst: Any, attr: "attrs.Attribute[Any]", value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, float):
            raise CoreValueError(attr.name, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise CoreValueError(attr.name, f"must be finite, got {value!r}")
        if ge is not None and value < ge:
            raise CoreValueError(attr.name, f"must be >= {ge}, got {value!r}")
        if gt is not None and value <= gt:
            raise CoreValueError(attr.name, f"must be > {gt}, got {value!r}")
        if le is not None and value > le:
            raise CoreValueError(attr.name, f"must be <= {le}, got {value!r}")

    return check


def _count(*, ge: int = 0) -> _Validator:
    """A validator for an int (not a bool) at least ``ge``."""

    def check(_inst: Any, attr: "attrs.Attribute[Any]", value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CoreValueError(attr.name, f"must be an integer, got {value!r}")
        if value < ge:
            raise CoreValueError(attr.name, f"must be >= {ge}, got {value!r}")

    return check


def _mode_validator(_inst: Any, attr: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, PostureMode):
        raise CoreValueError(attr.name, f"must be a PostureMode, got {value!r}")


def _to_mode(value: Any) -> Any:
    """Accept a mode's name (as config files spell it); leave anything else to the validator."""
    if isinstance(value, str) and not isinstance(value, PostureMode):
        try:
            return PostureMode(value.upper())
        except ValueError:
            return value
    return value


def _to_decimal(value: Any) -> Any:
    """Accept ``Decimal``, ``int`` or a decimal string; floats are refused (house rule)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except decimal.InvalidOperation:
            return value
    return value


def _to_tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise CoreValueError("extra_tags", f"must be a sequence of tags, not a string {value!r}")
    if not isinstance(value, Iterable):
        raise CoreValueError("extra_tags", f"must be a sequence of tags, got {value!r}")
    return tuple(value)


def _tags_validator(_inst: Any, attr: "attrs.Attribute[Any]", value: tuple[Any, ...]) -> None:
    for tag in value:
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            raise CoreValueError(attr.name, f"tags must be snake_case, got {tag!r}")


# --- inputs ----------------------------------------------------------------------------------


@attrs.frozen
class BeliefDebt:
    """How uncertain our belief is right now: the posture controller's only input.

    The reconciler (and the evidence collector, intent ledger and replace manager through
    it) fills this record; every field defaults to "healthy", so ``BeliefDebt()`` means no
    debt at all.

    Attributes:
        debt_age_s: age of the oldest unresolved uncertainty (mismatch, unknown order), s.
        breadth: number of symbols or orders currently in debt.
        depth: worst-case notional of the uncertainty envelopes divided by the reference
            notional (0.5 = half a standard entry could be wrong).
        contradiction_burn: rate of severe contradictions between evidence sources, per
            minute (0 when the sources agree).
        protection_gap_s: longest time any symbol's filled exposure has been uncovered by a
            protective stop, s (max over symbols).
        mismatch_streak: consecutive reconcile passes that found a mismatch.
        source_confidence: lowest confidence among the evidence sources, in [0, 1].
        unknown_intents: intents whose exchange outcome is unknown.
        oldest_unknown_intent_s: age of the oldest of those, s (0 when there are none).
        extra_pressure: any further pressure in [0, 1], e.g. a replace storm or
            reconcile-first pressure; name it in ``extra_tags``.
        extra_tags: ``snake_case`` tags naming the extra pressure, carried into the
            explanation's cause tags.

    Raises:
        CoreValueError: on a negative, non-finite or out-of-range field, naming it.
    """

    debt_age_s: float = attrs.field(default=0.0, converter=_to_float, validator=_real(ge=0.0))
    breadth: int = attrs.field(default=0, validator=_count())
    depth: float = attrs.field(default=0.0, converter=_to_float, validator=_real(ge=0.0))
    contradiction_burn: float = attrs.field(
        default=0.0, converter=_to_float, validator=_real(ge=0.0)
    )
    protection_gap_s: float = attrs.field(default=0.0, converter=_to_float, validator=_real(ge=0.0))
    mismatch_streak: int = attrs.field(default=0, validator=_count())
    source_confidence: float = attrs.field(
        default=1.0, converter=_to_float, validator=_real(ge=0.0, le=1.0)
    )
    unknown_intents: int = attrs.field(default=0, validator=_count())
    oldest_unknown_intent_s: float = attrs.field(
        default=0.0, converter=_to_float, validator=_real(ge=0.0)
    )
    extra_pressure: float = attrs.field(
        default=0.0, converter=_to_float, validator=_real(ge=0.0, le=1.0)
    )
    extra_tags: tuple[str, ...] = attrs.field(
        default=(), converter=_to_tags, validator=_tags_validator
    )

    def __attrs_post_init__(self) -> None:
        if self.unknown_intents == 0 and self.oldest_unknown_intent_s > 0.0:
            raise CoreValueError(
                "oldest_unknown_intent_s",
                f"must be 0 when unknown_intents is 0, got {self.oldest_unknown_intent_s!r}",
            )

    @property
    def is_clear(self) -> bool:
        """True when there is no debt at all (every field at its healthy default)."""
        return self == BeliefDebt()


# --- configuration ---------------------------------------------------------------------------


def _float_field(default: float, **bounds: float) -> Any:
    return attrs.field(default=default, converter=_to_float, validator=_real(**bounds))


@attrs.frozen
class PostureConfig:
    """Every posture default, validated. Seed-derived defaults, rescaled to a [0, 1] score.

    Thresholds and timing:
        yellow_score, orange_score, red_score: up thresholds, strictly increasing in (0, 1].
        persist_s: how long the score must stay above a YELLOW/ORANGE threshold to go up.
        recover_s: recovery window per step down (the recovery clock must reach it).
        down_hysteresis: release threshold = up threshold x this factor, in (0, 1).
        post_red_warmup_s: time after leaving RED before ORANGE may be left.
        burst_growth_per_s, burst_min_score: a growth burst (RED at once) is growth at or
            above the first with the score at or above the second.
        growth_window_s: the window over which growth is measured.
        boot_mode: the mode a new controller starts in (conservative after a restart).

    Score: ``<name>_weight`` is the most that contributor adds on its own, ``<name>_ref`` the
    value at which its pressure saturates (see the module docstring).

    Unlock conditions: ``unlock_*`` (see the module docstring).

    Knobs: ``base_*`` are the GREEN, zero-score values; ``risk_slope`` how fast the risk
    multiplier falls with the score; ``yellow_risk_cap``/``orange_risk_cap`` the mode caps on
    it; ``min_entry_risk`` the multiplier below which entries stop;
    ``min_conf_spread``/``cooldown_extra_s`` how much the confidence floor and cooldown grow
    as the multiplier falls to 0.

    Raises:
        CoreValueError: on any out-of-range or inconsistent field, naming it.
    """

    yellow_score: float = _float_field(0.25, gt=0.0, le=1.0)
    orange_score: float = _float_field(0.5, gt=0.0, le=1.0)
    red_score: float = _float_field(0.8, gt=0.0, le=1.0)
    persist_s: float = _float_field(20.0, ge=0.0)
    recover_s: float = _float_field(90.0, ge=0.0)
    down_hysteresis: float = _float_field(0.75, gt=0.0)
    post_red_warmup_s: float = _float_field(180.0, ge=0.0)
    burst_growth_per_s: float = _float_field(0.015, gt=0.0)
    burst_min_score: float = _float_field(0.6, ge=0.0, le=1.0)
    growth_window_s: float = _float_field(30.0, gt=0.0)
    boot_mode: PostureMode = attrs.field(
        default=PostureMode.ORANGE, converter=_to_mode, validator=_mode_validator
    )

    debt_age_ref_s: float = _float_field(600.0, gt=0.0)
    debt_age_weight: float = _float_field(0.6, ge=0.0, le=1.0)
    breadth_ref: float = _float_field(5.0, gt=0.0)
    breadth_weight: float = _float_field(0.3, ge=0.0, le=1.0)
    depth_ref: float = _float_field(1.0, gt=0.0)
    depth_weight: float = _float_field(0.5, ge=0.0, le=1.0)
    contradiction_burn_ref: float = _float_field(3.0, gt=0.0)
    contradiction_burn_weight: float = _float_field(0.5, ge=0.0, le=1.0)
    protection_gap_ref_s: float = _float_field(20.0, gt=0.0)
    protection_gap_weight: float = _float_field(0.6, ge=0.0, le=1.0)
    mismatch_streak_ref: float = _float_field(10.0, gt=0.0)
    mismatch_streak_weight: float = _float_field(0.3, ge=0.0, le=1.0)
    source_confidence_weight: float = _float_field(0.6, ge=0.0, le=1.0)
    unknown_intents_ref: float = _float_field(4.0, gt=0.0)
    unknown_intents_weight: float = _float_field(0.4, ge=0.0, le=1.0)
    extra_pressure_weight: float = _float_field(0.5, ge=0.0, le=1.0)
    dominant_count: int = attrs.field(default=3, validator=_count(ge=1))

    unlock_max_mismatch_streak: int = attrs.field(default=0, validator=_count())
    unlock_min_source_confidence: float = _float_field(0.8, ge=0.0, le=1.0)
    unlock_max_protection_gap_s: float = _float_field(0.0, ge=0.0)
    unlock_max_unknown_intent_age_s: float = _float_field(30.0, ge=0.0)
    unlock_max_contradiction_burn: float = _float_field(0.1, ge=0.0)
    unlock_contradiction_clear_s: float = _float_field(60.0, ge=0.0)

    base_max_notional: Decimal = attrs.field(default=Decimal(100), converter=_to_decimal)
    base_max_leverage: int = attrs.field(default=5, validator=_count(ge=1))
    base_min_entry_conf: float = _float_field(0.0, ge=0.0, le=1.0)
    base_entry_cooldown_s: float = _float_field(8.0, ge=0.0)
    base_max_open_orders_per_symbol: int = attrs.field(default=2, validator=_count(ge=1))
    risk_slope: float = _float_field(0.9, ge=0.0)
    yellow_risk_cap: float = _float_field(0.8, ge=0.0, le=1.0)
    orange_risk_cap: float = _float_field(0.45, ge=0.0, le=1.0)
    min_entry_risk: float = _float_field(0.2, ge=0.0, le=1.0)
    min_conf_spread: float = _float_field(0.35, ge=0.0, le=1.0)
    cooldown_extra_s: float = _float_field(40.0, ge=0.0)

    def __attrs_post_init__(self) -> None:
        if not self.yellow_score < self.orange_score:
            raise CoreValueError("orange_score", "must be greater than yellow_score")
        if not self.orange_score < self.red_score:
            raise CoreValueError("red_score", "must be greater than orange_score")
        if not self.down_hysteresis < 1.0:
            raise CoreValueError("down_hysteresis", f"must be < 1, got {self.down_hysteresis}")
        if self.orange_risk_cap > self.yellow_risk_cap:
            # A worse mode with a looser cap would break I6.
            raise CoreValueError("orange_risk_cap", "must not exceed yellow_risk_cap")
        notional: object = self.base_max_notional
        if not isinstance(notional, Decimal) or not notional.is_finite():
            raise CoreValueError("base_max_notional", f"must be a finite Decimal, got {notional!r}")
        if not Decimal(0) <= notional <= _MAX_NOTIONAL:
            raise CoreValueError(
                "base_max_notional", f"must be in 0..{_MAX_NOTIONAL}, got {notional}"
            )

    def threshold(self, mode: PostureMode) -> float:
        """The score at which ``mode`` is entered (0 for GREEN)."""
        return {
            PostureMode.GREEN: 0.0,
            PostureMode.YELLOW: self.yellow_score,
            PostureMode.ORANGE: self.orange_score,
            PostureMode.RED: self.red_score,
        }[mode]

    def release_score(self, mode: PostureMode) -> float:
        """The score ``mode`` must stay below to recover: its threshold x hysteresis."""
        return self.threshold(mode) * self.down_hysteresis

    def risk_cap(self, mode: PostureMode) -> float:
        """The cap ``mode`` puts on the risk multiplier (non-increasing with the mode)."""
        return {
            PostureMode.GREEN: 1.0,
            PostureMode.YELLOW: self.yellow_risk_cap,
            PostureMode.ORANGE: self.orange_risk_cap,
            PostureMode.RED: 0.0,
        }[mode]

    def mode_for_score(self, score: float) -> PostureMode:
        """The mode the score alone points at (ignoring persistence and hysteresis)."""
        for mode in reversed(_LEVELS):
            if score >= self.threshold(mode):
                return mode
        return PostureMode.GREEN


# --- score -----------------------------------------------------------------------------------


@attrs.frozen
class Contributor:
    """One term of the debt score.

    Attributes:
        name: the contributor (``protection_gap``, ``debt_age``, ...).
        pressure: its normalised pressure in [0, 1].
        contribution: weight x pressure: what it adds to the score (before the cap at 1).
        share: contribution / sum of all contributions (0 when the debt is clear).
    """

    name: str
    pressure: float
    contribution: float
    share: float


@attrs.frozen
class ScoreBreakdown:
    """The debt score and every contributor's part in it.

    Attributes:
        score: the capped score in [0, 1].
        raw_total: the sum of contributions before the cap.
        contributors: every contributor, in the fixed order of the module docstring table.
    """

    score: float
    raw_total: float
    contributors: tuple[Contributor, ...]

    def dominant(self, n: int) -> tuple[Contributor, ...]:
        """The ``n`` largest non-zero contributors, largest first (ties in table order)."""
        active = [c for c in self.contributors if c.contribution > 0.0]
        # sorted() is stable, so equal contributions keep the table order: deterministic.
        return tuple(sorted(active, key=lambda c: -c.contribution)[:n])


def _ramp(value: float, ref: float) -> float:
    return min(1.0, value / ref)


def score_debt(debt: BeliefDebt, config: PostureConfig) -> ScoreBreakdown:
    """Score a belief debt: ``min(1, sum(weight_i * pressure_i))``.

    Every pressure is monotone non-decreasing in its debt field (non-increasing in source
    confidence), so more debt never lowers the score.

    Args:
        debt: the belief debt to score.
        config: weights and reference values.

    Returns:
        The score with each contributor's pressure, contribution and share.
    """
    c = config
    terms = (
        ("debt_age", _ramp(debt.debt_age_s, c.debt_age_ref_s), c.debt_age_weight),
        ("breadth", _ramp(float(debt.breadth), c.breadth_ref), c.breadth_weight),
        ("depth", _ramp(debt.depth, c.depth_ref), c.depth_weight),
        (
            "contradiction_burn",
            _ramp(debt.contradiction_burn, c.contradiction_burn_ref),
            c.contradiction_burn_weight,
        ),
        (
            "protection_gap",
            _ramp(debt.protection_gap_s, c.protection_gap_ref_s),
            c.protection_gap_weight,
        ),
        (
            "mismatch_streak",
            _ramp(float(debt.mismatch_streak), c.mismatch_streak_ref),
            c.mismatch_streak_weight,
        ),
        ("source_confidence", 1.0 - debt.source_confidence, c.source_confidence_weight),
        (
            "unknown_intents",
            _ramp(float(debt.unknown_intents), c.unknown_intents_ref),
            c.unknown_intents_weight,
        ),
        ("extra_pressure", debt.extra_pressure, c.extra_pressure_weight),
    )
    contributions = [(name, p, w * p) for name, p, w in terms]
    raw_total = math.fsum(x for _, _, x in contributions)
    contributors = tuple(
        Contributor(
            name=name,
            pressure=p,
            contribution=x,
            share=(x / raw_total) if raw_total > 0.0 else 0.0,
        )
        for name, p, x in contributions
    )
    return ScoreBreakdown(
        score=max(0.0, min(1.0, raw_total)), raw_total=raw_total, contributors=contributors
    )


# --- knobs -----------------------------------------------------------------------------------


@attrs.frozen
class GuardKnobs:
    """Limits on *new entries* for the current posture.

    Exits are never constrained (I1): every field here limits risk-increasing entries only.
    There is deliberately no knob that could block, delay or shrink a reduce-only order, a
    close-position order or a protective stop; those take the exit path, which never
    consults posture, guard knobs or the kill switch.

    Attributes:
        allow_entries: whether new entries may be submitted at all.
        max_notional: largest notional (quote currency, USDT) for one new entry.
        max_leverage: highest leverage a new entry may use (at least 1).
        min_entry_conf: lowest strategy confidence in [0, 1] an entry signal needs.
        entry_cooldown_s: minimum time between entries on one symbol, s.
        max_open_orders_per_symbol: most resting *entry* orders per symbol (protective and
            reduce-only orders are not counted and not limited).
        mode: the posture mode these knobs belong to.
        kill_switch_trip: True in RED: the actor asks the kill switch to halt entries.
    """

    allow_entries: bool
    max_notional: Decimal
    max_leverage: int
    min_entry_conf: float
    entry_cooldown_s: float
    max_open_orders_per_symbol: int
    mode: PostureMode
    kill_switch_trip: bool

    def __attrs_post_init__(self) -> None:
        if self.kill_switch_trip and self.allow_entries:
            raise CoreValueError("allow_entries", "must be False when kill_switch_trip is set")
        if self.max_notional < 0:
            raise CoreValueError("max_notional", f"must be >= 0, got {self.max_notional}")
        if self.max_leverage < 1:
            raise CoreValueError("max_leverage", f"must be >= 1, got {self.max_leverage}")
        if not 0.0 <= self.min_entry_conf <= 1.0:
            raise CoreValueError("min_entry_conf", f"must be in [0, 1], got {self.min_entry_conf}")
        if not self.entry_cooldown_s >= 0.0:
            raise CoreValueError("entry_cooldown_s", f"must be >= 0, got {self.entry_cooldown_s}")
        if self.max_open_orders_per_symbol < 0:
            raise CoreValueError(
                "max_open_orders_per_symbol",
                f"must be >= 0, got {self.max_open_orders_per_symbol}",
            )

    def no_looser_than(self, other: "GuardKnobs") -> bool:
        """True if every knob here is at least as strict as in ``other``.

        The runtime form of I6: when uncertainty has grown, the new knobs must satisfy this
        against the old ones.
        """
        return (
            (other.allow_entries or not self.allow_entries)
            and self.max_notional <= other.max_notional
            and self.max_leverage <= other.max_leverage
            and self.min_entry_conf >= other.min_entry_conf
            and self.entry_cooldown_s >= other.entry_cooldown_s
            and self.max_open_orders_per_symbol <= other.max_open_orders_per_symbol
            and self.mode.level >= other.mode.level
            and (self.kill_switch_trip or not other.kill_switch_trip)
        )


def _check_score(score: object) -> float:
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise CoreValueError("score", f"must be a number, got {score!r}")
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise CoreValueError("score", f"must be in [0, 1], got {score!r}")
    return float(score)


def knobs_for(score: float, mode: PostureMode, config: PostureConfig) -> GuardKnobs:
    """The entry limits for a score and a mode: pure and monotone (I6).

    ``m = min(clamp(1 - risk_slope * score, 0, 1), risk_cap(mode))`` is non-increasing in
    both arguments, and every knob is a monotone function of ``m`` and the mode, so a higher
    score or a worse mode never loosens any knob. Entries stop outside GREEN/YELLOW or when
    ``m < min_entry_risk``; RED trips the kill switch. Exits are not limited by anything
    here (I1).

    Args:
        score: the debt score in [0, 1].
        mode: the posture mode.
        config: base values and scaling.

    Returns:
        The guard knobs.

    Raises:
        CoreValueError: if ``score`` is outside [0, 1] or ``mode`` is not a PostureMode.
    """
    score = _check_score(score)
    if not isinstance(mode, PostureMode):
        raise CoreValueError("mode", f"must be a PostureMode, got {mode!r}")
    c = config
    m = min(max(0.0, min(1.0, 1.0 - c.risk_slope * score)), c.risk_cap(mode))
    allow = mode.level <= PostureMode.YELLOW.level and m >= c.min_entry_risk and m > 0.0
    # Exact float->Decimal conversion and ROUND_DOWN keep the notional monotone in m and
    # never round a limit up.
    notional = _DECIMAL_CTX.multiply(c.base_max_notional, Decimal(m)).quantize(
        _CENT, rounding=decimal.ROUND_DOWN, context=_DECIMAL_CTX
    )
    return GuardKnobs(
        allow_entries=allow,
        max_notional=notional,
        max_leverage=max(1, math.floor(c.base_max_leverage * m)),
        min_entry_conf=min(1.0, c.base_min_entry_conf + (1.0 - m) * c.min_conf_spread),
        entry_cooldown_s=c.base_entry_cooldown_s + (1.0 - m) * c.cooldown_extra_s,
        max_open_orders_per_symbol=(
            max(1, math.floor(c.base_max_open_orders_per_symbol * m)) if allow else 0
        ),
        mode=mode,
        kill_switch_trip=mode is PostureMode.RED,
    )


# --- decisions -------------------------------------------------------------------------------


@attrs.frozen
class UnlockCondition:
    """One requirement for stepping the posture down, and whether it holds now.

    Attributes:
        name: the condition (``mismatch_streak``, ``recovery_window_s``, ...).
        met: whether ``current <relation> required`` holds.
        current: the current value.
        required: the bound it must satisfy.
        relation: ``"<"``, ``"<="`` or ``">="``.
    """

    name: str
    met: bool
    current: float
    required: float
    relation: str

    def describe(self) -> str:
        """A one-line operator rendering, e.g. ``mismatch_streak 2 <= 0: unmet``."""
        state = "met" if self.met else "unmet"
        return f"{self.name} {self.current:g} {self.relation} {self.required:g}: {state}"


_RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _condition(name: str, current: float, relation: str, required: float) -> UnlockCondition:
    return UnlockCondition(
        name=name,
        met=_RELATIONS[relation](current, required),
        current=float(current),
        required=float(required),
        relation=relation,
    )


@attrs.frozen
class PostureExplanation:
    """Why the posture is what it is, for the journal and the operator.

    Attributes:
        target_mode: the mode the score alone points at.
        dominant: the largest contributors to the score, largest first.
        cause_tags: ``snake_case`` tags: active contributors (largest first), the debt's
            extra tags, and event tags (``red_score``, ``growth_burst``).
        unlock_conditions: every requirement for the next step down (empty in GREEN).
        next_unlock_at: the earliest time the next step down can happen if every condition
            that depends on evidence stays met; ``None`` in GREEN or while one is unmet.
    """

    target_mode: PostureMode
    dominant: tuple[Contributor, ...]
    cause_tags: tuple[str, ...]
    unlock_conditions: tuple[UnlockCondition, ...]
    next_unlock_at: float | None

    @property
    def unmet(self) -> tuple[UnlockCondition, ...]:
        """The unlock conditions that do not hold yet."""
        return tuple(u for u in self.unlock_conditions if not u.met)


@attrs.frozen
class PostureDecision:
    """The result of one posture update.

    Attributes:
        now: the update time.
        mode: the posture after this update.
        previous_mode: the posture before it.
        changed: ``mode != previous_mode``.
        reason: why, one of ``red_score``, ``red_burst``, ``escalate_persisted``,
            ``recover_step``, ``hold_persisting``, ``hold_recovering``, ``hold_locked``,
            ``steady``.
        score: the debt score in [0, 1].
        growth_per_s: the fastest score rise over the growth window, per second.
        knobs: the entry limits for this posture.
        explanation: dominant contributors, cause tags and unlock conditions.
    """

    now: float
    mode: PostureMode
    previous_mode: PostureMode
    changed: bool
    reason: str
    score: float
    growth_per_s: float
    knobs: GuardKnobs
    explanation: PostureExplanation

    def __attrs_post_init__(self) -> None:
        if self.changed != (self.mode is not self.previous_mode):
            raise CoreValueError("changed", "must equal mode != previous_mode")


# --- controller ------------------------------------------------------------------------------

# The evidence conditions that must hold (with the score below release) for the recovery
# clock to run; the time gates (contradiction clear, post-RED warm-up, the clock itself) are
# checked only at the step.
_CLOCK_CONDITIONS = (
    "score_below_release",
    "mismatch_streak",
    "source_confidence",
    "protection_gap_s",
    "unknown_intent_age_s",
)


def _config_validator(_inst: Any, attr: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, PostureConfig):
        raise CoreValueError(attr.name, f"must be a PostureConfig, got {value!r}")


@attrs.define
class PostureController:
    """The posture state machine: feed it belief debts, get decisions.

    Starts in ``config.boot_mode``. Call :meth:`update` with every new debt and the current
    time; ``now`` must never go backwards. See the module docstring for the rules.
    """

    config: PostureConfig = attrs.field(factory=PostureConfig, validator=_config_validator)
    _mode: PostureMode = attrs.field(init=False)
    _last_now: float | None = attrs.field(init=False, default=None)
    _samples: collections.deque[tuple[float, float]] = attrs.field(
        init=False, factory=collections.deque
    )
    # Since when the score has been continuously at or above YELLOW's / ORANGE's threshold.
    _above_since: dict[PostureMode, float] = attrs.field(init=False, factory=dict)
    _recovery_since: float | None = attrs.field(init=False, default=None)
    _contradiction_clear_since: float | None = attrs.field(init=False, default=None)
    _red_exit_at: float | None = attrs.field(init=False, default=None)
    _last_decision: PostureDecision | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._mode = self.config.boot_mode

    @property
    def mode(self) -> PostureMode:
        """The current posture mode."""
        return self._mode

    @property
    def last_decision(self) -> PostureDecision | None:
        """The most recent decision, or ``None`` before the first update."""
        return self._last_decision

    @property
    def knobs(self) -> GuardKnobs:
        """The current knobs; before the first update, the boot mode's at score 0."""
        if self._last_decision is not None:
            return self._last_decision.knobs
        return knobs_for(0.0, self._mode, self.config)

    def update(self, debt: BeliefDebt, now: float) -> PostureDecision:
        """Fold in a new belief debt observed at ``now`` and decide the posture.

        Args:
            debt: the current belief debt.
            now: the current time on the injected clock, s; never earlier than the last.

        Returns:
            The decision: mode, knobs and explanation.

        Raises:
            CoreValueError: if ``debt`` is not a BeliefDebt or ``now`` is not finite or
                goes backwards.
        """
        if not isinstance(debt, BeliefDebt):
            raise CoreValueError("debt", f"must be a BeliefDebt, got {debt!r}")
        now = self._check_now(now)
        cfg = self.config
        breakdown = score_debt(debt, cfg)
        score = breakdown.score
        growth = self._record_growth(now, score)
        self._track_thresholds(now, score)
        self._track_contradiction(now, debt)

        previous = self._mode
        red_by_score = score >= cfg.red_score
        burst = growth >= cfg.burst_growth_per_s and score >= cfg.burst_min_score
        persisted = self._persisted_target(now)
        new = previous
        if red_by_score or burst:
            new = PostureMode.RED
            reason = "red_score" if red_by_score else "red_burst"
            # A trigger restarts recovery even when we are already RED.
            self._recovery_since = None
        elif persisted.level > previous.level:
            new = persisted
            reason = "escalate_persisted"
        elif previous is PostureMode.GREEN:
            pending = cfg.mode_for_score(score) is not PostureMode.GREEN
            reason = "hold_persisting" if pending else "steady"
        else:
            conditions = self._unlock_conditions(debt, score, previous, now)
            if all(u.met for u in conditions):
                new = PostureMode.from_level(previous.level - 1)
                reason = "recover_step"
            elif cfg.mode_for_score(score).level > previous.level:
                reason = "hold_persisting"
            elif self._recovery_since is not None:
                reason = "hold_recovering"
            else:
                reason = "hold_locked"

        if new is not previous:
            self._recovery_since = None
            if previous is PostureMode.RED and new is PostureMode.ORANGE:
                self._red_exit_at = now
            elif new.level < PostureMode.ORANGE.level:
                self._red_exit_at = None
        self._mode = new

        if new is PostureMode.GREEN:
            conditions = ()
        else:
            # Recomputed for the final mode: this also starts the new mode's recovery clock.
            conditions = self._unlock_conditions(debt, score, new, now)

        tags = [c.name for c in breakdown.dominant(len(breakdown.contributors))]
        tags.extend(debt.extra_tags)
        if red_by_score:
            tags.append("red_score")
        if burst:
            tags.append("growth_burst")
        explanation = PostureExplanation(
            target_mode=cfg.mode_for_score(score),
            dominant=breakdown.dominant(cfg.dominant_count),
            cause_tags=tuple(dict.fromkeys(tags)),
            unlock_conditions=conditions,
            next_unlock_at=self._next_unlock_at(conditions),
        )
        decision = PostureDecision(
            now=now,
            mode=new,
            previous_mode=previous,
            changed=new is not previous,
            reason=reason,
            score=score,
            growth_per_s=growth,
            knobs=knobs_for(score, new, cfg),
            explanation=explanation,
        )
        self._last_decision = decision
        return decision

    # -- internals ----------------------------------------------------------------------------

    def _check_now(self, now: object) -> float:
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise CoreValueError("now", f"must be a finite number, got {now!r}")
        now = float(now)
        if self._last_now is not None and now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now!r} < {self._last_now!r}")
        self._last_now = now
        return now

    def _record_growth(self, now: float, score: float) -> float:
        """Fastest rise against any retained sample: (score - s_i) / max(now - t_i, window).

        The buffer keeps every sample inside the window plus the newest one before it, so
        sparse updates still compare against the previous reading. The denominator is at
        least the window, so a step looks the same whether updates come every second or
        every 15 s.
        """
        window = self.config.growth_window_s
        samples = self._samples
        horizon = now - window
        while len(samples) >= 2 and samples[1][0] <= horizon:
            samples.popleft()
        growth = max(((score - s) / max(now - t, window) for t, s in samples), default=0.0)
        if samples and samples[-1][0] == now:
            # Same instant: keep the lower reading, so a later rise is measured from it.
            samples[-1] = (now, min(samples[-1][1], score))
        else:
            samples.append((now, score))
        while len(samples) > _MAX_SAMPLES:
            samples.popleft()
        return growth

    def _track_thresholds(self, now: float, score: float) -> None:
        for mode in (PostureMode.YELLOW, PostureMode.ORANGE):
            if score >= self.config.threshold(mode):
                self._above_since.setdefault(mode, now)
            else:
                self._above_since.pop(mode, None)

    def _track_contradiction(self, now: float, debt: BeliefDebt) -> None:
        if debt.contradiction_burn <= self.config.unlock_max_contradiction_burn:
            if self._contradiction_clear_since is None:
                self._contradiction_clear_since = now
        else:
            self._contradiction_clear_since = None

    def _persisted_target(self, now: float) -> PostureMode:
        for mode in (PostureMode.ORANGE, PostureMode.YELLOW):
            since = self._above_since.get(mode)
            if since is not None and now - since >= self.config.persist_s:
                return mode
        return PostureMode.GREEN

    def _unlock_conditions(
        self, debt: BeliefDebt, score: float, mode: PostureMode, now: float
    ) -> tuple[UnlockCondition, ...]:
        """Evaluate the unlock conditions for leaving ``mode``, ticking the recovery clock."""
        cfg = self.config
        evidence = (
            _condition("score_below_release", score, "<", cfg.release_score(mode)),
            _condition(
                "mismatch_streak", debt.mismatch_streak, "<=", cfg.unlock_max_mismatch_streak
            ),
            _condition(
                "source_confidence", debt.source_confidence, ">=", cfg.unlock_min_source_confidence
            ),
            _condition(
                "protection_gap_s", debt.protection_gap_s, "<=", cfg.unlock_max_protection_gap_s
            ),
            _condition(
                "unknown_intent_age_s",
                debt.oldest_unknown_intent_s,
                "<=",
                cfg.unlock_max_unknown_intent_age_s,
            ),
        )
        if all(u.met for u in evidence):
            if self._recovery_since is None:
                self._recovery_since = now
        else:
            self._recovery_since = None
        clear_since = self._contradiction_clear_since
        gates = [
            _condition(
                "contradiction_clear_s",
                0.0 if clear_since is None else now - clear_since,
                ">=",
                cfg.unlock_contradiction_clear_s,
            )
        ]
        if mode is PostureMode.ORANGE and self._red_exit_at is not None:
            gates.append(
                _condition(
                    "post_red_warmup_s", now - self._red_exit_at, ">=", cfg.post_red_warmup_s
                )
            )
        recovery_since = self._recovery_since
        gates.append(
            _condition(
                "recovery_window_s",
                0.0 if recovery_since is None else now - recovery_since,
                ">=",
                cfg.recover_s,
            )
        )
        return (*evidence, *gates)

    def _next_unlock_at(self, conditions: tuple[UnlockCondition, ...]) -> float | None:
        """Earliest next step-down time, if only time gates remain; else ``None``."""
        if not conditions:
            return None
        if not all(u.met for u in conditions if u.name in _CLOCK_CONDITIONS):
            return None
        cfg = self.config
        if self._recovery_since is None or self._contradiction_clear_since is None:
            return None
        times = [
            self._recovery_since + cfg.recover_s,
            self._contradiction_clear_since + cfg.unlock_contradiction_clear_s,
        ]
        if any(u.name == "post_red_warmup_s" for u in conditions) and self._red_exit_at is not None:
            times.append(self._red_exit_at + cfg.post_red_warmup_s)
        return max(times)
