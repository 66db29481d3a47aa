"""The kill switch: when to stop opening risk, for how long, and who may lift the stop.

Theory of operation
-------------------

The kill switch is the last automatic control between a confused trading system and more
exposure (Knight Capital had none). It decides one thing: **are new entries allowed right now?**
It never decides anything about exits. There is no method here that blocks an exit, reduce-only
order, cancel or protective stop; :meth:`KillSwitch.allows_exit` exists only so callers and
tests can say so explicitly, and it is always True (I1). An actor that halts must keep its
exit and cancel paths running.

Triggers
~~~~~~~~

Each :meth:`KillSwitch.evaluate` receives a :class:`KillSwitchInputs` and derives the set of
*active* automatic triggers, each a :class:`KillReason` tag:

* ``reconcile_mismatch_streak``: consecutive reconciliation mismatches reached the limit;
* ``posture_red``: the belief controller's posture is RED;
* ``api_error_burst`` / ``api_error_rate``: too many API errors, or too high an error share,
  in the sliding window of ``error_window_sec`` (the inputs carry counts *since the previous
  evaluation*; the switch keeps the window);
* ``daily_loss_limit``: equity fell by the configured fraction of start-of-day equity;
* ``drawdown_limit``: equity fell by the configured fraction from peak equity;
* ``min_equity``: equity is below the floor;
* ``invalid_inputs``: **fail closed**. Inputs that are not finite, of the wrong type or
  impossible (NaN equity, a negative count, zero start-of-day equity) trip the switch instead
  of raising, because an exception in the caller must never become "no halt". This is the one
  place where bad input is not a :class:`~scalper.core.errors_base.CoreValueError`; only a
  broken clock (a non-finite or backwards ``now``) raises, since no halt end can be computed.

A limit of zero disables its trigger (configuration, never inputs, can disable one).

What counts as an API error
~~~~~~~~~~~~~~~~~~~~~~~~~~~

The API-error triggers measure the health of the venue and of the path to it, not the
venue's opinion of our orders. :func:`is_api_error` says which verdict reasons (the tags of
:func:`scalper.core.errors.classify_error`) count, in :data:`API_ERROR_REASONS`: every reason
some venue table classifies RETRYABLE or AMBIGUOUS (429 and -1003 rate limits, 418 bans, 5xx,
-1000/-1001/-1006/-1007/-1008, 408, the WAF's 403, -1021 timestamp outside the recvWindow,
maintenance) plus the failures that got no usable answer (``transport_before_write``,
``transport_after_write``: a timeout, a reset; ``malformed_response``; and
``rate_limited_backoff``, the client declining to send during a ban). Business answers never
count: FATAL rejects
(-2010 rejected, -2019 insufficient margin, filter failures), RETRYABLE_WITH_MODIFICATION
(-2021 would trigger at once, -5022 post-only) and IDEMPOTENT_SAFE answers (-4116, -2011,
-2013) are the venue working as documented. Two retryable codes are business too and are
excluded: -4117 (a stop order is triggering) and -5043 (a modification is pending). Which
events carry those reasons is the caller's business (the BeliefController reads them from
the journal).

Trading day
~~~~~~~~~~~

``daily_loss_limit`` compares equity with the equity at the start of the *UTC* day.
:class:`DayEquity` keeps it: the first equity observed at or after each UTC midnight (of the
injected wall clock, passed in as ``utc_ts`` epoch seconds) becomes that day's start, and
the highest equity observed is the peak. It can be restored from a journaled record, so a
restart in the middle of the day keeps the day's start instead of resetting it to whatever
equity the new process sees first. A wall clock that steps back across midnight never moves
the day backwards.

Halts and escalation
~~~~~~~~~~~~~~~~~~~~

Entries are blocked while any of these holds (each is a reason in :class:`KillSwitchState`):
an automatic trigger was active at the last evaluation; a timed halt runs (``now < until``);
the operator halted; the switch was never evaluated (``not_evaluated``: at boot we know
nothing, so we fail closed); or the last evaluation is older than ``max_evaluation_age_sec``
(``evaluation_stale``: a dead evaluator loop must not leave entries open).

A *trip* happens when a trigger is active and no timed halt runs. It starts a timed halt of
``halt_ladder_sec[level]`` and raises ``level`` by one, capped at the ladder's last rung
(defaults 60 s, 300 s, 900 s, 3600 s). A trigger that is still active when its halt ends trips
again, one rung higher: persistent trouble earns ever longer halts, up to the cap. Each full
``calm_sec`` without any active trigger after the last halt lowers ``level`` by one
(de-escalation). Escalation memory is lazy: it is computed from the times given, never from a
clock.

For a given prior state and time, a more adverse input never produces a less severe state:
never un-halted, never an earlier ``until``, never a lower level, never fewer reasons (I6).

Operator
~~~~~~~~

:meth:`KillSwitch.operator_halt` halts until :meth:`KillSwitch.operator_resume`, which
succeeds only if the switch has a fresh evaluation and no automatic trigger is active; it then
also ends any timed halt (the operator takes responsibility). A refusal is returned as a record
naming what blocks it, and both are kept in the history.
"""

import enum
import math
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from scalper.core.errors import ERROR_TABLES, ErrorClass
from scalper.core.errors_base import CoreValueError
from scalper.core.types import ZERO

__all__ = [
    "API_ERROR_REASONS",
    "SECONDS_PER_DAY",
    "DayEquity",
    "KillReason",
    "KillSwitch",
    "KillSwitchConfig",
    "KillSwitchEvent",
    "KillSwitchEventKind",
    "KillSwitchInputs",
    "KillSwitchState",
    "ResumeDecision",
    "is_api_error",
    "utc_day",
]


class KillReason(enum.StrEnum):
    """Why entries are blocked."""

    RECONCILE_MISMATCH = "reconcile_mismatch_streak"
    POSTURE_RED = "posture_red"
    API_ERROR_BURST = "api_error_burst"
    API_ERROR_RATE = "api_error_rate"
    DAILY_LOSS = "daily_loss_limit"
    DRAWDOWN = "drawdown_limit"
    MIN_EQUITY = "min_equity"
    INVALID_INPUTS = "invalid_inputs"
    OPERATOR = "operator_halt"
    NOT_EVALUATED = "not_evaluated"
    EVALUATION_STALE = "evaluation_stale"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _number_in(low: float, high: float = math.inf, *, low_open: bool = False) -> _Validator:
    def check(_inst: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise CoreValueError(attribute.name, f"must be a number, got {value!r}")
        number = float(value)
        too_low = number <= low if low_open else number < low
        if not math.isfinite(number) or too_low or number > high:
            bound = "(" if low_open else "["
            raise CoreValueError(attribute.name, f"must be in {bound}{low}, {high}], got {value}")

    return check


def _decimal_in(low: Decimal, high: Decimal | None = None) -> _Validator:
    def check(_inst: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        # Money and money fractions are Decimal: a float here is a configuration type error.
        if not isinstance(value, Decimal) or not value.is_finite():
            raise CoreValueError(attribute.name, f"must be a finite Decimal, got {value!r}")
        if value < low or (high is not None and value > high):
            raise CoreValueError(attribute.name, f"must be in [{low}, {high}], got {value}")

    return check


def _is_bool(_inst: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, bool):
        raise CoreValueError(attribute.name, f"must be a bool, got {value!r}")


def _int_at_least(low: int) -> _Validator:
    def check(_inst: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise CoreValueError(attribute.name, f"must be an integer >= {low}, got {value!r}")

    return check


def _ladder(_inst: object, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise CoreValueError(attribute.name, f"must be a non-empty tuple, got {value!r}")
    previous = 0.0
    for rung in value:
        if isinstance(rung, bool) or not isinstance(rung, int | float):
            raise CoreValueError(attribute.name, f"rungs must be numbers, got {rung!r}")
        if not math.isfinite(rung) or rung <= 0 or rung < previous:
            raise CoreValueError(
                attribute.name, f"rungs must be positive and non-decreasing, got {value}"
            )
        previous = float(rung)


@attrs.frozen
class KillSwitchConfig:
    """Kill-switch limits and halt ladder. A limit of zero disables its trigger.

    Attributes:
        reconcile_mismatch_streak_max: consecutive reconcile mismatches that trip.
        trip_on_red_posture: whether posture RED trips.
        error_window_sec: the sliding window for API error counting.
        api_error_burst_max: API errors within the window that trip.
        api_error_rate_max: share of errored requests within the window that trips.
        api_error_rate_min_requests: requests needed in the window before the rate counts.
        max_daily_loss_frac: loss from start-of-day equity, as a fraction, that trips.
        max_drawdown_frac: loss from peak equity, as a fraction, that trips.
        min_equity: equity below this trips.
        halt_ladder_sec: halt durations by escalation level, non-decreasing.
        calm_sec: trigger-free time after a halt that lowers the level by one.
        max_evaluation_age_sec: entries block if the last evaluation is older (0 = never).
        history_max: trip and operator records kept.
    """

    reconcile_mismatch_streak_max: int = attrs.field(default=6, validator=_int_at_least(0))
    trip_on_red_posture: bool = attrs.field(default=True, validator=_is_bool)
    error_window_sec: float = attrs.field(default=60.0, validator=_number_in(0.0, low_open=True))
    api_error_burst_max: int = attrs.field(default=12, validator=_int_at_least(0))
    api_error_rate_max: float = attrs.field(default=0.35, validator=_number_in(0.0, 1.0))
    api_error_rate_min_requests: int = attrs.field(default=10, validator=_int_at_least(1))
    max_daily_loss_frac: Decimal = attrs.field(
        default=Decimal("0.05"), validator=_decimal_in(ZERO, Decimal(1))
    )
    max_drawdown_frac: Decimal = attrs.field(
        default=Decimal("0.15"), validator=_decimal_in(ZERO, Decimal(1))
    )
    min_equity: Decimal = attrs.field(default=ZERO, validator=_decimal_in(ZERO))
    halt_ladder_sec: tuple[float, ...] = attrs.field(
        default=(60.0, 300.0, 900.0, 3600.0), validator=_ladder
    )
    calm_sec: float = attrs.field(default=1800.0, validator=_number_in(0.0, low_open=True))
    max_evaluation_age_sec: float = attrs.field(default=30.0, validator=_number_in(0.0))
    history_max: int = attrs.field(default=50, validator=_int_at_least(1))

    @property
    def top_level(self) -> int:
        """The highest escalation level (the ladder's last rung)."""
        return len(self.halt_ladder_sec) - 1


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@attrs.frozen
class KillSwitchInputs:
    """What the kill switch judges, gathered by the actor at one instant.

    Deliberately *not* validated at construction: :meth:`KillSwitch.evaluate` turns bad
    values into an ``invalid_inputs`` trip, so a NaN equity halts entries instead of raising
    somewhere the halt would be skipped.

    Attributes:
        equity: current account equity (margin balance plus unrealized PnL), in the quote asset.
        day_start_equity: equity at the start of the trading day (the caller owns the day;
            :class:`DayEquity` keeps the UTC day).
        peak_equity: the highest equity seen (the caller's accounting owns it).
        reconcile_mismatch_streak: consecutive reconciliation passes that found a mismatch.
        posture_red: True if the belief controller's posture is RED.
        api_errors: API errors since the previous evaluation.
        api_requests: API requests since the previous evaluation (errored ones included).
    """

    equity: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    reconcile_mismatch_streak: int = 0
    posture_red: bool = False
    api_errors: int = 0
    api_requests: int = 0


@attrs.frozen
class KillSwitchState:
    """The kill switch's verdict at one instant: what the actor journals and acts on.

    Attributes:
        at: the time of the verdict.
        halted: True if entries are blocked (exits never are).
        until: end of the running timed halt, or None if none runs.
        reasons: everything holding the halt, sorted (empty when not halted).
        active: the automatic triggers active at the last evaluation, sorted.
        level: the escalation level the next trip would use.
        trip_count: automatic trips so far.
        new_trip: True if this evaluation started a halt.
        halt_sec: duration of the halt this evaluation started (0.0 otherwise).
        operator_halted: True while an operator halt holds.
        details: measured values behind the triggers, e.g. ``daily_loss_frac=0.0612``.
    """

    at: float
    halted: bool
    until: float | None
    reasons: tuple[KillReason, ...]
    active: tuple[KillReason, ...]
    level: int
    trip_count: int
    new_trip: bool = False
    halt_sec: float = 0.0
    operator_halted: bool = False
    details: tuple[str, ...] = ()

    @property
    def entry_blocked(self) -> bool:
        """True if new risk-increasing orders must not be sent."""
        return self.halted

    @property
    def exits_allowed(self) -> bool:
        """Always True: no kill-switch state blocks an exit (I1)."""
        return True


class KillSwitchEventKind(enum.StrEnum):
    """Kinds of kill-switch history records."""

    TRIP = "trip"
    OPERATOR_HALT = "operator_halt"
    OPERATOR_RESUME = "operator_resume"
    RESUME_REFUSED = "resume_refused"


@attrs.frozen
class KillSwitchEvent:
    """One record of the kill switch's history.

    Attributes:
        kind: trip, operator halt, operator resume, or a refused resume.
        at: when.
        reasons: the triggers of a trip, the operator's reason, or what refused a resume.
        level: the escalation level a trip used (its ladder rung).
        halt_sec: the duration of a trip's halt.
        until: the end of a trip's halt.
    """

    kind: KillSwitchEventKind
    at: float
    reasons: tuple[str, ...]
    level: int = 0
    halt_sec: float = 0.0
    until: float | None = None


@attrs.frozen
class ResumeDecision:
    """The answer to an operator resume.

    Attributes:
        resumed: True if the operator halt and any timed halt were lifted.
        blocking: what refused the resume (empty if resumed).
        state: the verdict after the decision.
    """

    resumed: bool
    blocking: tuple[KillReason, ...]
    state: KillSwitchState


# --------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------


def _money(value: object) -> Decimal | None:
    """The value as a finite Decimal, or None if it is not one (floats are a type error here)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return None
    amount = Decimal(value)
    return amount if amount.is_finite() else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


# --------------------------------------------------------------------------------------------
# The switch
# --------------------------------------------------------------------------------------------


@attrs.define
class KillSwitch:
    """The kill switch: blocks entries, never exits. Pure; time comes in as ``now``.

    Attributes:
        config: limits and ladder.
        level: the escalation level the next trip uses (decayed lazily at each evaluation).
        trip_count: automatic trips so far.
        until: end of the current or last timed halt (``-inf`` before the first).
        operator_halted: True while an operator halt holds.
        operator_reason: the operator's stated reason.
        active: automatic triggers active at the last evaluation.
        halt_reasons: the triggers behind the running timed halt.
        last_evaluated_at: time of the last evaluation, None before the first.
        history: trips and operator actions, oldest first, at most ``config.history_max``.
    """

    config: KillSwitchConfig = attrs.field(factory=KillSwitchConfig)
    level: int = attrs.field(default=0, init=False)
    trip_count: int = attrs.field(default=0, init=False)
    until: float = attrs.field(default=-math.inf, init=False)
    operator_halted: bool = attrs.field(default=False, init=False)
    operator_reason: str = attrs.field(default="", init=False)
    active: frozenset[KillReason] = attrs.field(default=frozenset(), init=False)
    halt_reasons: frozenset[KillReason] = attrs.field(default=frozenset(), init=False)
    last_evaluated_at: float | None = attrs.field(default=None, init=False)
    history: list[KillSwitchEvent] = attrs.field(factory=list, init=False)
    _details: tuple[str, ...] = attrs.field(default=(), init=False)
    # Start of the current calm period: de-escalation counts whole calm_sec from here.
    _calm_anchor: float = attrs.field(default=-math.inf, init=False)
    _errors: deque[tuple[float, int, int]] = attrs.field(factory=deque, init=False)
    _last_now: float = attrs.field(default=-math.inf, init=False)

    # ---- queries ---------------------------------------------------------------------------

    def allows_exit(self) -> bool:
        """Always True. The kill switch blocks entries only; exits are never blocked (I1)."""
        return True

    def is_entry_blocked(self, now: float) -> bool:
        """True if a new risk-increasing order must not be sent at ``now``."""
        return self.state(now).halted

    def state(self, now: float) -> KillSwitchState:
        """The verdict at ``now`` without evaluating new inputs (does not mutate).

        Raises:
            CoreValueError: if ``now`` is not finite.
        """
        if not math.isfinite(now):
            raise CoreValueError("now", f"must be finite, got {now}")
        return self._verdict(now, new_trip=False, halt_sec=0.0)

    # ---- evaluation ------------------------------------------------------------------------

    def evaluate(self, inputs: KillSwitchInputs, now: float) -> KillSwitchState:
        """Judge ``inputs`` at ``now``: update triggers, trip or escalate, return the verdict.

        Raises:
            CoreValueError: if ``now`` is not finite or earlier than a previous call's.
        """
        self._advance_clock(now)
        active, details = self._triggers(inputs, now)
        self.level, self._calm_anchor = self._decayed(now)
        new_trip = False
        halt_sec = 0.0
        if active:
            if now >= self.until:
                halt_sec = float(self.config.halt_ladder_sec[self.level])
                self.history.append(
                    KillSwitchEvent(
                        KillSwitchEventKind.TRIP,
                        now,
                        tuple(sorted(active)),
                        level=self.level,
                        halt_sec=halt_sec,
                        until=now + halt_sec,
                    )
                )
                self._trim_history()
                self.until = now + halt_sec
                self.level = min(self.level + 1, self.config.top_level)
                self.trip_count += 1
                self.halt_reasons = active
                new_trip = True
            else:
                self.halt_reasons = self.halt_reasons | active
            self._calm_anchor = max(self._calm_anchor, self.until, now)
        elif now >= self.until:
            self.halt_reasons = frozenset()
        self.active = active
        self._details = details
        self.last_evaluated_at = now
        return self._verdict(now, new_trip=new_trip, halt_sec=halt_sec)

    # ---- operator --------------------------------------------------------------------------

    def operator_halt(self, now: float, reason: str) -> KillSwitchState:
        """Halt entries until :meth:`operator_resume`.

        Raises:
            CoreValueError: on an empty reason or a bad ``now``.
        """
        if not reason.strip():
            raise CoreValueError("reason", "an operator halt needs a reason")
        self._advance_clock(now)
        self.operator_halted = True
        self.operator_reason = reason
        self.history.append(KillSwitchEvent(KillSwitchEventKind.OPERATOR_HALT, now, (reason,)))
        self._trim_history()
        return self._verdict(now, new_trip=False, halt_sec=0.0)

    def operator_resume(self, now: float) -> ResumeDecision:
        """Lift the operator halt and any timed halt, if nothing automatic still objects.

        Refused (and recorded) if the switch was never evaluated, its last evaluation is stale,
        or an automatic trigger was active at the last evaluation. Escalation memory is kept.

        Raises:
            CoreValueError: on a bad ``now``.
        """
        self._advance_clock(now)
        blocking: tuple[KillReason, ...]
        if self.last_evaluated_at is None:
            blocking = (KillReason.NOT_EVALUATED,)
        elif self._is_stale(now):
            blocking = (KillReason.EVALUATION_STALE,)
        else:
            blocking = tuple(sorted(self.active))
        if blocking:
            self.history.append(
                KillSwitchEvent(KillSwitchEventKind.RESUME_REFUSED, now, tuple(blocking))
            )
            self._trim_history()
            return ResumeDecision(False, blocking, self._verdict(now, False, 0.0))
        self.operator_halted = False
        self.operator_reason = ""
        self.until = min(self.until, now)
        self.halt_reasons = frozenset()
        self.history.append(KillSwitchEvent(KillSwitchEventKind.OPERATOR_RESUME, now, ()))
        self._trim_history()
        return ResumeDecision(True, (), self._verdict(now, False, 0.0))

    # ---- internals -------------------------------------------------------------------------

    def _advance_clock(self, now: float) -> None:
        if not math.isfinite(now):
            raise CoreValueError("now", f"must be finite, got {now}")
        if now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        self._last_now = now

    def _trim_history(self) -> None:
        excess = len(self.history) - self.config.history_max
        if excess > 0:
            del self.history[:excess]

    def _is_stale(self, now: float) -> bool:
        max_age = self.config.max_evaluation_age_sec
        return (
            max_age > 0
            and self.last_evaluated_at is not None
            and now - self.last_evaluated_at > max_age
        )

    def _decayed(self, now: float) -> tuple[int, float]:
        """The escalation level and calm anchor after the calm periods elapsed by ``now``."""
        level, anchor = self.level, self._calm_anchor
        if level > 0 and now > anchor:
            periods = int((now - anchor) // self.config.calm_sec)
            if periods > 0:
                level = max(0, level - periods)
                anchor += periods * self.config.calm_sec
        return level, anchor

    def _triggers(
        self, inputs: KillSwitchInputs, now: float
    ) -> tuple[frozenset[KillReason], tuple[str, ...]]:
        cfg = self.config
        active: set[KillReason] = set()
        details: list[str] = []
        invalid: list[str] = []

        streak = _count(inputs.reconcile_mismatch_streak)
        if streak is None:
            invalid.append("reconcile_mismatch_streak")
        elif cfg.reconcile_mismatch_streak_max and streak >= cfg.reconcile_mismatch_streak_max:
            active.add(KillReason.RECONCILE_MISMATCH)
            details.append(f"reconcile_mismatch_streak={streak}")

        red: object = inputs.posture_red
        if not isinstance(red, bool):
            invalid.append("posture_red")
        elif red and cfg.trip_on_red_posture:
            active.add(KillReason.POSTURE_RED)

        errors, requests = _count(inputs.api_errors), _count(inputs.api_requests)
        if errors is None or requests is None:
            invalid.append("api_errors" if errors is None else "api_requests")
        else:
            self._errors.append((now, errors, requests))
        while self._errors and self._errors[0][0] <= now - cfg.error_window_sec:
            self._errors.popleft()
        window_errors = sum(e for _, e, _ in self._errors)
        # Errors the caller did not count as requests still count as attempts.
        window_attempts = max(sum(r for _, _, r in self._errors), window_errors)
        if cfg.api_error_burst_max and window_errors >= cfg.api_error_burst_max:
            active.add(KillReason.API_ERROR_BURST)
            details.append(f"api_errors_in_window={window_errors}")
        if (
            cfg.api_error_rate_max > 0
            and window_attempts >= cfg.api_error_rate_min_requests
            and window_errors >= cfg.api_error_rate_max * window_attempts
        ):
            active.add(KillReason.API_ERROR_RATE)
            details.append(f"api_error_rate={window_errors / window_attempts:.3f}")

        equity = _money(inputs.equity)
        day_start = _money(inputs.day_start_equity)
        peak = _money(inputs.peak_equity)
        if equity is None:
            invalid.append("equity")
        else:
            if cfg.min_equity > 0 and equity < cfg.min_equity:
                active.add(KillReason.MIN_EQUITY)
                details.append(f"equity={equity}")
            if day_start is None or day_start <= 0:
                invalid.append("day_start_equity")
            elif cfg.max_daily_loss_frac > 0:
                loss = (day_start - equity) / day_start
                if loss >= cfg.max_daily_loss_frac:
                    active.add(KillReason.DAILY_LOSS)
                    details.append(f"daily_loss_frac={loss:.4f}")
            if peak is None or peak <= 0:
                invalid.append("peak_equity")
            elif cfg.max_drawdown_frac > 0:
                top = max(peak, equity)
                drawdown = (top - equity) / top
                if drawdown >= cfg.max_drawdown_frac:
                    active.add(KillReason.DRAWDOWN)
                    details.append(f"drawdown_frac={drawdown:.4f}")
        if invalid:
            active.add(KillReason.INVALID_INPUTS)
            details.extend(f"invalid:{name}" for name in invalid)
        return frozenset(active), tuple(details)

    def _verdict(self, now: float, new_trip: bool, halt_sec: float) -> KillSwitchState:
        reasons: set[KillReason] = set(self.active)
        if now < self.until:
            reasons |= self.halt_reasons
        if self.operator_halted:
            reasons.add(KillReason.OPERATOR)
        if self.last_evaluated_at is None:
            reasons.add(KillReason.NOT_EVALUATED)
        elif self._is_stale(now):
            reasons.add(KillReason.EVALUATION_STALE)
        level, _ = self._decayed(now)
        return KillSwitchState(
            at=now,
            halted=bool(reasons),
            until=self.until if now < self.until else None,
            reasons=tuple(sorted(reasons)),
            active=tuple(sorted(self.active)),
            level=level,
            trip_count=self.trip_count,
            new_trip=new_trip,
            halt_sec=halt_sec,
            operator_halted=self.operator_halted,
            details=self._details,
        )


# --------------------------------------------------------------------------------------------
# API errors: which failures say the venue (or the path to it) is unhealthy
# --------------------------------------------------------------------------------------------

#: Retryable by the tables, but the venue answering about our request, not failing: a stop
#: that is triggering (-4117) and a modification still pending (-5043).
_BUSINESS_RETRYABLE = frozenset({"stop_order_triggering", "modification_pending"})

#: Failures without a usable venue answer, tagged outside the tables: transport failures
#: (:func:`scalper.core.errors.classify_transport_failure`), a response that does not parse,
#: and the Binance client's own refusal to send while a 429/418 back-off runs.
_NO_ANSWER_REASONS = frozenset(
    {
        "transport_before_write",
        "transport_after_write",
        "malformed_response",
        "rate_limited_backoff",
    }
)

#: Verdict reasons that count as API errors (see the module docstring). Derived from the
#: error tables, so a reason a table learns to call RETRYABLE or AMBIGUOUS counts at once.
API_ERROR_REASONS: frozenset[str] = (
    frozenset(
        rule.reason
        for table in ERROR_TABLES.values()
        for rule in (*table.rules, table.default)
        if rule.error_class in (ErrorClass.RETRYABLE, ErrorClass.AMBIGUOUS)
    )
    - _BUSINESS_RETRYABLE
) | _NO_ANSWER_REASONS


def is_api_error(reason: str) -> bool:
    """True if a failed request with this verdict reason counts as an API error.

    ``reason`` is one verdict reason tag (``rate_limited``, ``transport_after_write``, ...);
    a ``retries_exhausted:<reason>`` tag (the Router's final reject after retrying) is
    judged by the reason it carries. Anything else (business rejects, idempotent answers,
    unknown tags) is not an API error.
    """
    prefix = "retries_exhausted:"
    if reason.startswith(prefix):
        reason = reason[len(prefix) :]
    return reason in API_ERROR_REASONS


# --------------------------------------------------------------------------------------------
# The trading day
# --------------------------------------------------------------------------------------------

#: Seconds in a UTC day (UTC has no daylight saving; leap seconds are not in epoch time).
SECONDS_PER_DAY = 86_400


def utc_day(utc_ts: float) -> int:
    """The UTC day number (days since 1970-01-01) of an epoch timestamp in seconds.

    Raises:
        CoreValueError: if ``utc_ts`` is not a finite number.
    """
    ts: object = utc_ts
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise CoreValueError("utc_ts", f"must be a finite number, got {ts!r}")
    return math.floor(ts / SECONDS_PER_DAY)


@attrs.define
class DayEquity:
    """Start-of-UTC-day equity and peak equity, for :class:`KillSwitchInputs`.

    Feed every equity reading to :meth:`observe` with the wall-clock time it was read at;
    the first reading of a new UTC day becomes that day's start. Pure: no clock is read.

    Attributes:
        day: the UTC day number of the current day start, or None before the first reading.
        day_start: the equity at the start of ``day``.
        peak: the highest equity observed (or restored).
        equity: the latest equity observed.
    """

    day: int | None = attrs.field(default=None, init=False)
    day_start: Decimal | None = attrs.field(default=None, init=False)
    peak: Decimal | None = attrs.field(default=None, init=False)
    equity: Decimal | None = attrs.field(default=None, init=False)

    def restore(self, day: int, day_start: Decimal, peak: Decimal) -> None:
        """Take a journaled day start (and the peak journaled with it) as if observed.

        Raises:
            CoreValueError: on a non-integer day or a non-positive or non-finite equity.
        """
        day_in: object = day
        if isinstance(day_in, bool) or not isinstance(day_in, int):
            raise CoreValueError("day", f"must be an integer, got {day_in!r}")
        amounts: tuple[tuple[str, object], ...] = (("day_start", day_start), ("peak", peak))
        for name, value in amounts:
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise CoreValueError(name, f"must be a positive finite Decimal, got {value!r}")
        self.day = day
        self.day_start = day_start
        self.peak = max(peak, day_start) if self.peak is None else max(self.peak, peak, day_start)

    def observe(self, equity: Decimal, utc_ts: float) -> bool:
        """Fold in one equity reading taken at ``utc_ts``; True if it started a new day.

        Raises:
            CoreValueError: on a non-finite equity or ``utc_ts``.
        """
        amount: object = equity
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise CoreValueError("equity", f"must be a finite Decimal, got {amount!r}")
        day = utc_day(utc_ts)
        self.equity = equity
        self.peak = equity if self.peak is None else max(self.peak, equity)
        if self.day is None or day > self.day:
            self.day = day
            self.day_start = equity
            return True
        # Same day, or a wall clock that stepped back across midnight: the day stays.
        return False
