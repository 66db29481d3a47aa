"""Bounded retries: when to try again, how long to wait, and when to give up.

Theory of operation
-------------------

Every retry loop in scalper is bounded twice, in attempts *and* in elapsed time (I2), and
both bounds come from one :class:`RetryPolicy`. A policy is a pure function of (attempts made
so far, time elapsed since the first attempt, an injected ``random.Random``) to a
:class:`RetryDecision`: wait ``delay_s`` and try again, or give up with a reason tag the actor
journals (``max_attempts``, ``max_elapsed``, ``backoff_exceeds_budget``).

The delay before attempt ``n + 1`` (after ``n`` failed attempts) is::

    raw = min(max_delay_s, base_delay_s * 2 ** (n - 1))  # exponential, capped
    delay = raw * (1 + U(-jitter_ratio, +jitter_ratio))  # decorrelates a herd of bots
    delay = clamp(delay, 0, max_delay_s)  # jitter never breaks the cap
    delay = min(delay, max_elapsed_s - elapsed_s)  # never sleep past the budget

A venue backoff hint (``Retry-After``, an IP ban) raises the delay to at least the hint, even
past the cap: the venue knows when its limiter lifts, and retrying earlier only deepens a ban.
If the hint does not fit in the remaining budget the policy gives up
(``backoff_exceeds_budget``) instead of retrying too early.

Rules that make the bounds hold:

* Giving up is monotone: with the same hint, if the policy gives up after ``n`` attempts at
  ``elapsed_s``, it gives up for every larger ``n`` and every larger elapsed time.
* The RNG is consulted exactly once per delay computed (never when giving up), so a seeded
  run replays the same schedule.
* :class:`RetryBudget` is the stateful wrapper an actor holds for one loop: it counts attempts,
  refuses to record an attempt the policy does not allow, and once it has given up it stays
  given up (even if the caller's clock misbehaves).

Which errors are retried at all is decided by :class:`RetryConfig` per
:class:`~scalper.core.errors.ErrorClass`: RETRYABLE and RETRYABLE_WITH_MODIFICATION get a
policy (optionally overridden per reason tag); FATAL and IDEMPOTENT_SAFE are never retried;
AMBIGUOUS is never retried either: the mutation is *resolved* by querying its client order
id under the separate ``resolve`` policy (I4, I7), which must outlast the venue's recvWindow
so that "not found" at the end is evidence of absence.

Defaults are the seed router's (base 0.25 s, cap 5 s, jitter 25 %, 30 s, 6 attempts).
"""

import math
import random
import re

import attrs

from scalper.core.errors import ErrorClass, ErrorVerdict
from scalper.core.errors_base import CoreValueError

__all__ = [
    "GIVE_UP_REASONS",
    "RetryBudget",
    "RetryConfig",
    "RetryDecision",
    "RetryPolicy",
]

_MAX_ATTEMPTS_LIMIT = 1000
_REASON_RE = re.compile(r"^[a-z][a-z0-9_]*$")

#: Every reason a decision can give for not retrying.
GIVE_UP_REASONS = frozenset(
    {"max_attempts", "max_elapsed", "backoff_exceeds_budget", "not_retryable", "resolve_by_query"}
)


def _finite_nonneg(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CoreValueError(attribute.name, f"must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise CoreValueError(attribute.name, f"must be a finite number >= 0, got {value!r}")


def _check_attempts(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CoreValueError(attribute.name, f"must be an integer, got {value!r}")
    if not 1 <= value <= _MAX_ATTEMPTS_LIMIT:
        raise CoreValueError(attribute.name, f"must be in 1..{_MAX_ATTEMPTS_LIMIT}, got {value}")


def _check_jitter(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    _finite_nonneg(_inst, attribute, value)
    if value > 1:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


@attrs.frozen
class RetryDecision:
    """What to do after a failed attempt.

    Attributes:
        retry: True to try again after ``delay_s``.
        delay_s: seconds to wait before the next attempt; ``None`` when giving up.
        attempt: attempts made so far (the decision is about attempt ``attempt + 1``).
        elapsed_s: seconds since the first attempt started.
        reason: ``retry`` or one of :data:`GIVE_UP_REASONS`.
    """

    retry: bool
    delay_s: float | None
    attempt: int
    elapsed_s: float
    reason: str


def _check_attempt_arg(attempt: object) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise CoreValueError("attempt", f"must be an integer >= 1 (attempts made), got {attempt!r}")


def _check_seconds_arg(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise CoreValueError(field, f"must be a finite number >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and elapsed time.

    Attributes:
        max_attempts: total attempts including the first (1 means never retry).
        base_delay_s: the delay after the first failure, before jitter.
        max_delay_s: cap on any single delay (jitter included; hints excepted).
        max_elapsed_s: no attempt starts later than this after the first one.
        jitter_ratio: each delay is scaled by a uniform factor in ``[1 - r, 1 + r]``.
    """

    max_attempts: int = attrs.field(default=6, validator=_check_attempts)
    base_delay_s: float = attrs.field(default=0.25, validator=_finite_nonneg)
    max_delay_s: float = attrs.field(default=5.0, validator=_finite_nonneg)
    max_elapsed_s: float = attrs.field(default=30.0, validator=_finite_nonneg)
    jitter_ratio: float = attrs.field(default=0.25, validator=_check_jitter)

    def __attrs_post_init__(self) -> None:
        if self.max_delay_s < self.base_delay_s:
            raise CoreValueError(
                "max_delay_s",
                f"must be >= base_delay_s ({self.base_delay_s}), got {self.max_delay_s}",
            )
        if self.max_elapsed_s <= 0:
            raise CoreValueError("max_elapsed_s", f"must be > 0, got {self.max_elapsed_s}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The jittered, capped delay after ``attempt`` failures, ignoring the elapsed budget.

        Consumes one draw from ``rng`` (none if ``jitter_ratio`` is 0).
        """
        _check_attempt_arg(attempt)
        # Exponent capped so the power stays a finite float; the cap bounds the result anyway.
        raw = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(attempt - 1, 1000))
        if self.jitter_ratio > 0:
            raw *= 1.0 + rng.uniform(-self.jitter_ratio, self.jitter_ratio)
        return min(max(raw, 0.0), self.max_delay_s)

    def decide(
        self,
        attempt: int,
        elapsed_s: float,
        rng: random.Random,
        *,
        backoff_hint_s: float | None = None,
    ) -> RetryDecision:
        """Decide whether to make attempt ``attempt + 1``, and after what delay.

        Args:
            attempt: attempts made so far (>= 1).
            elapsed_s: seconds since the first attempt started.
            rng: the injected RNG, used for jitter.
            backoff_hint_s: a minimum wait the venue asked for (``Retry-After``), if any.

        Raises:
            CoreValueError: on a non-positive attempt, a negative or non-finite elapsed time
                or hint.
        """
        _check_attempt_arg(attempt)
        _check_seconds_arg("elapsed_s", elapsed_s)
        if backoff_hint_s is not None:
            _check_seconds_arg("backoff_hint_s", backoff_hint_s)

        def give_up(reason: str) -> RetryDecision:
            return RetryDecision(False, None, attempt, elapsed_s, reason)

        if attempt >= self.max_attempts:
            return give_up("max_attempts")
        remaining = self.max_elapsed_s - elapsed_s
        if remaining <= 0:
            return give_up("max_elapsed")
        if backoff_hint_s is not None and backoff_hint_s > remaining:
            return give_up("backoff_exceeds_budget")
        delay = self.backoff(attempt, rng)
        if backoff_hint_s is not None:
            delay = max(delay, backoff_hint_s)
        return RetryDecision(True, min(delay, remaining), attempt, elapsed_s, "retry")

    def next_delay(self, attempt: int, elapsed_s: float, rng: random.Random) -> float | None:
        """The delay before attempt ``attempt + 1``, or ``None`` to give up."""
        return self.decide(attempt, elapsed_s, rng).delay_s

    def schedule(self, rng: random.Random) -> list[float]:
        """The full delay schedule if every attempt fails instantly.

        At most ``max_attempts - 1`` delays; their sum never exceeds ``max_elapsed_s``.
        """
        delays: list[float] = []
        elapsed = 0.0
        attempt = 1
        while (delay := self.next_delay(attempt, elapsed, rng)) is not None:
            delays.append(delay)
            elapsed += delay
            attempt += 1
        return delays


def _default_by_reason() -> dict[str, RetryPolicy]:
    # The seed's "timestamp" policy: one more attempt after a clock resync.
    return {
        "timestamp_outside_recv_window": RetryPolicy(
            max_attempts=2, base_delay_s=0.3, max_delay_s=2.5, max_elapsed_s=10.0
        ),
    }


def _check_by_reason(
    _inst: object,
    attribute: "attrs.Attribute[dict[str, RetryPolicy]]",
    value: dict[str, RetryPolicy],
) -> None:
    entries: list[tuple[object, object]] = list(value.items())
    for reason, policy in entries:
        if not isinstance(reason, str) or not _REASON_RE.match(reason):
            raise CoreValueError(
                attribute.name, f"keys must be snake_case reason tags, got {reason!r}"
            )
        if not isinstance(policy, RetryPolicy):
            raise CoreValueError(attribute.name, f"{reason}: must be a RetryPolicy, got {policy!r}")


_IS_POLICY = attrs.validators.instance_of(RetryPolicy)
_DEFAULT_WITH_MODIFICATION = RetryPolicy(
    max_attempts=3, base_delay_s=0.1, max_delay_s=1.0, max_elapsed_s=5.0
)
_DEFAULT_RESOLVE = RetryPolicy(
    max_attempts=8, base_delay_s=0.25, max_delay_s=2.0, max_elapsed_s=15.0, jitter_ratio=0.1
)


@attrs.frozen
class RetryConfig:
    """Retry policies per error class, with optional per-reason overrides.

    Attributes:
        retryable: for RETRYABLE errors (resend unchanged).
        with_modification: for RETRYABLE_WITH_MODIFICATION (the caller changes the request;
            few attempts, since each one is a new decision).
        resolve: for the *queries* that resolve an AMBIGUOUS mutation. Its budget must
            outlast the venue's recvWindow (5 s for orders) so that a final "not found" is
            evidence the request never took effect.
        by_reason: overrides keyed by verdict reason tag (only for retryable classes).
    """

    retryable: RetryPolicy = attrs.field(factory=RetryPolicy, validator=_IS_POLICY)
    with_modification: RetryPolicy = attrs.field(
        default=_DEFAULT_WITH_MODIFICATION, validator=_IS_POLICY
    )
    resolve: RetryPolicy = attrs.field(default=_DEFAULT_RESOLVE, validator=_IS_POLICY)
    by_reason: dict[str, RetryPolicy] = attrs.field(
        factory=_default_by_reason, validator=_check_by_reason
    )

    def policy_for(self, error_class: ErrorClass, reason: str | None = None) -> RetryPolicy | None:
        """The policy for retrying the *same operation* after this error, or ``None``.

        FATAL, IDEMPOTENT_SAFE and AMBIGUOUS never retry the operation (AMBIGUOUS is resolved
        with :attr:`resolve` on queries instead).
        """
        if error_class is ErrorClass.RETRYABLE:
            base = self.retryable
        elif error_class is ErrorClass.RETRYABLE_WITH_MODIFICATION:
            base = self.with_modification
        else:
            return None
        if reason is not None:
            return self.by_reason.get(reason, base)
        return base

    def decide(
        self,
        error_class: ErrorClass,
        attempt: int,
        elapsed_s: float,
        rng: random.Random,
        *,
        reason: str | None = None,
        backoff_hint_s: float | None = None,
    ) -> RetryDecision:
        """Decide whether to retry the operation that failed with ``error_class``."""
        policy = self.policy_for(error_class, reason)
        if policy is None:
            _check_attempt_arg(attempt)
            _check_seconds_arg("elapsed_s", elapsed_s)
            why = "resolve_by_query" if error_class is ErrorClass.AMBIGUOUS else "not_retryable"
            return RetryDecision(False, None, attempt, elapsed_s, why)
        return policy.decide(attempt, elapsed_s, rng, backoff_hint_s=backoff_hint_s)

    def decide_after(
        self, verdict: ErrorVerdict, attempt: int, elapsed_s: float, rng: random.Random
    ) -> RetryDecision:
        """:meth:`decide` for a classified error: uses its class, reason and backoff hint."""
        return self.decide(
            verdict.error_class,
            attempt,
            elapsed_s,
            rng,
            reason=verdict.reason,
            backoff_hint_s=verdict.backoff_hint_s,
        )


@attrs.define
class RetryBudget:
    """The retry state of one loop: attempts made, start time, and a sticky final verdict.

    Usage: :meth:`record_attempt` before each try; after a failure, :meth:`next` says whether
    (and when) to try again. Once :meth:`next` has given up, it always returns that decision.
    """

    policy: RetryPolicy
    started_at: float
    attempts: int = 0
    final: RetryDecision | None = None

    @property
    def exhausted(self) -> bool:
        """True once the budget has given up."""
        return self.final is not None

    def record_attempt(self) -> int:
        """Count one attempt about to be made; return its number (1 for the first).

        Raises:
            CoreValueError: if the budget has given up or the policy allows no more attempts
                (a loop that ignores its budget is a bug, I2).
        """
        if self.final is not None:
            raise CoreValueError("attempts", f"budget gave up ({self.final.reason})")
        if self.attempts >= self.policy.max_attempts:
            raise CoreValueError("attempts", f"max_attempts {self.policy.max_attempts} reached")
        self.attempts += 1
        return self.attempts

    def next(
        self, now: float, rng: random.Random, *, backoff_hint_s: float | None = None
    ) -> RetryDecision:
        """Decide about the next attempt after the last one failed at ``now``.

        Raises:
            CoreValueError: if no attempt was recorded, or ``now`` is before ``started_at``.
        """
        if self.final is not None:
            return self.final
        if self.attempts < 1:
            raise CoreValueError("attempts", "record_attempt() before asking for a retry")
        if not (math.isfinite(now) and now >= self.started_at):
            raise CoreValueError("now", f"must be >= started_at ({self.started_at}), got {now!r}")
        decision = self.policy.decide(
            self.attempts, now - self.started_at, rng, backoff_hint_s=backoff_hint_s
        )
        if not decision.retry:
            self.final = decision
        return decision
