import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors import ErrorClass, Operation, classify_error, classify_transport_failure
from scalper.core.errors_base import CoreValueError
from scalper.core.retry import GIVE_UP_REASONS, RetryBudget, RetryConfig, RetryDecision, RetryPolicy

EPS = 1e-9


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


# ---------------------------------------------------------------- examples


def test_seed_defaults():
    p = RetryPolicy()
    assert (p.max_attempts, p.base_delay_s, p.max_delay_s, p.max_elapsed_s, p.jitter_ratio) == (
        6,
        0.25,
        5.0,
        30.0,
        0.25,
    )


def test_unjittered_schedule_doubles_then_caps():
    p = RetryPolicy(
        max_attempts=8, base_delay_s=0.25, max_delay_s=2.0, max_elapsed_s=100.0, jitter_ratio=0.0
    )
    assert p.schedule(rng()) == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_schedule_is_cut_by_the_elapsed_budget():
    # 1 + 2 + 4 = 7 > 5: the third delay shrinks to what is left, then the loop gives up.
    p = RetryPolicy(
        max_attempts=10, base_delay_s=1.0, max_delay_s=8.0, max_elapsed_s=5.0, jitter_ratio=0.0
    )
    assert p.schedule(rng()) == [1.0, 2.0, 2.0]
    assert p.decide(4, 5.0, rng()).reason == "max_elapsed"


def test_single_attempt_policy_never_retries():
    p = RetryPolicy(max_attempts=1)
    assert p.schedule(rng()) == []
    d = p.decide(1, 0.0, rng())
    assert (d.retry, d.delay_s, d.reason) == (False, None, "max_attempts")


def test_decision_records_attempt_and_elapsed():
    d = RetryPolicy().decide(2, 1.5, rng())
    assert d.retry
    assert d.reason == "retry"
    assert (d.attempt, d.elapsed_s) == (2, 1.5)
    assert d.delay_s is not None
    assert 0.5 * 0.75 <= d.delay_s <= 0.5 * 1.25


def test_rate_limit_hint_raises_the_delay_past_the_cap():
    p = RetryPolicy()
    d = p.decide(1, 0.0, rng(), backoff_hint_s=12.0)
    assert d.retry
    assert d.delay_s == 12.0


def test_ip_ban_longer_than_the_budget_gives_up():
    # A 418 with a 2-minute ban inside a 30 s budget: give up now rather than hammer the venue.
    verdict = classify_error(418, -1003, "IP banned", operation=Operation.CREATE)
    d = RetryConfig().decide_after(verdict, 1, 0.0, rng())
    assert not d.retry
    assert d.reason == "backoff_exceeds_budget"


def test_fatal_and_idempotent_safe_are_never_retried():
    cfg = RetryConfig()
    for cls in (ErrorClass.FATAL, ErrorClass.IDEMPOTENT_SAFE):
        assert cfg.policy_for(cls) is None
        d = cfg.decide(cls, 1, 0.0, rng())
        assert (d.retry, d.reason) == (False, "not_retryable")


def test_ambiguous_create_is_resolved_by_query_not_retried():
    cfg = RetryConfig()
    verdict = classify_transport_failure(request_written=True, operation=Operation.CREATE)
    d = cfg.decide_after(verdict, 1, 0.0, rng())
    assert (d.retry, d.reason) == (False, "resolve_by_query")
    # The queries that resolve it have their own, longer-than-recvWindow budget.
    assert cfg.resolve.max_elapsed_s > 5.0
    assert cfg.resolve.decide(1, 0.0, rng()).retry


def test_reason_override_applies_to_retryable_classes_only():
    cfg = RetryConfig()
    ts = classify_error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    policy = cfg.policy_for(ts.error_class, ts.reason)
    assert policy is cfg.by_reason["timestamp_outside_recv_window"]
    assert policy.max_attempts == 2
    # An override keyed by a fatal reason must not make a fatal error retryable.
    sneaky = RetryConfig(by_reason={"invalid_signature": RetryPolicy()})
    assert sneaky.policy_for(ErrorClass.FATAL, "invalid_signature") is None


def test_modification_policy_is_used_for_fixable_rejections():
    cfg = RetryConfig()
    v = classify_error(400, -2021, "Order would immediately trigger.", operation=Operation.CREATE)
    assert cfg.policy_for(v.error_class, v.reason) is cfg.with_modification


def test_service_unavailable_retries_with_backoff():
    cfg = RetryConfig()
    v = classify_error(503, None, "Service Unavailable.", operation=Operation.CREATE)
    d = cfg.decide_after(v, 1, 0.0, rng())
    assert d.retry
    assert d.delay_s is not None
    assert 0 <= d.delay_s <= cfg.retryable.max_delay_s


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 10_000}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"base_delay_s": -1.0}, "base_delay_s"),
        ({"base_delay_s": math.nan}, "base_delay_s"),
        ({"max_delay_s": 0.1}, "max_delay_s"),  # below base 0.25
        ({"max_elapsed_s": 0.0}, "max_elapsed_s"),
        ({"max_elapsed_s": math.inf}, "max_elapsed_s"),
        ({"jitter_ratio": 1.5}, "jitter_ratio"),
        ({"jitter_ratio": -0.1}, "jitter_ratio"),
    ],
)
def test_bad_policy_names_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as exc:
        RetryPolicy(**kwargs)
    assert exc.value.field == field


def test_bad_config_names_the_field():
    with pytest.raises(CoreValueError) as exc:
        RetryConfig(by_reason={"Not A Tag": RetryPolicy()})
    assert exc.value.field == "by_reason"
    with pytest.raises(TypeError):
        RetryConfig(resolve="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "elapsed", "field"),
    [(0, 0.0, "attempt"), (1, -1.0, "elapsed_s"), (1, math.nan, "elapsed_s")],
)
def test_bad_decide_arguments(attempt, elapsed, field):
    with pytest.raises(CoreValueError) as exc:
        RetryPolicy().decide(attempt, elapsed, rng())
    assert exc.value.field == field


def test_budget_drives_a_create_retry_loop():
    # Three 503 "Service Unavailable." in a row, then success.
    policy = RetryPolicy(jitter_ratio=0.0)
    budget = RetryBudget(policy, started_at=100.0)
    now = 100.0
    for expected in (0.25, 0.5, 1.0):
        budget.record_attempt()
        d = budget.next(now, rng())
        assert d.delay_s == expected
        now += d.delay_s
    assert budget.record_attempt() == 4
    assert not budget.exhausted


def test_budget_refuses_attempts_beyond_the_policy():
    budget = RetryBudget(RetryPolicy(max_attempts=2, jitter_ratio=0.0), started_at=0.0)
    budget.record_attempt()
    assert budget.next(0.1, rng()).retry
    budget.record_attempt()
    final = budget.next(0.5, rng())
    assert final.reason == "max_attempts"
    assert budget.exhausted
    with pytest.raises(CoreValueError):
        budget.record_attempt()


def test_budget_stays_given_up_even_if_the_clock_goes_back():
    budget = RetryBudget(RetryPolicy(max_elapsed_s=1.0), started_at=10.0)
    budget.record_attempt()
    assert budget.next(11.5, rng()).reason == "max_elapsed"
    # Clock jumps back (e.g. a misbehaving caller): still given up.
    assert budget.next(10.0, rng()).reason == "max_elapsed"


def test_budget_requires_an_attempt_and_a_sane_clock():
    budget = RetryBudget(RetryPolicy(), started_at=10.0)
    with pytest.raises(CoreValueError) as exc:
        budget.next(10.0, rng())
    assert exc.value.field == "attempts"
    budget.record_attempt()
    with pytest.raises(CoreValueError) as exc:
        budget.next(9.0, rng())
    assert exc.value.field == "now"


def test_budget_cannot_record_past_max_attempts_without_asking():
    budget = RetryBudget(RetryPolicy(max_attempts=3), started_at=0.0)
    for _ in range(3):
        budget.record_attempt()
    with pytest.raises(CoreValueError):
        budget.record_attempt()


# ---------------------------------------------------------------- properties

policies = st.builds(
    lambda attempts, base, extra, elapsed, jitter: RetryPolicy(
        max_attempts=attempts,
        base_delay_s=base,
        max_delay_s=base + extra,
        max_elapsed_s=elapsed,
        jitter_ratio=jitter,
    ),
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=0.0, max_value=10.0),
    st.floats(min_value=0.0, max_value=60.0),
    st.floats(min_value=1e-3, max_value=300.0),
    st.floats(min_value=0.0, max_value=1.0),
)
seeds = st.integers(min_value=0, max_value=2**32)


@given(policies, seeds)
def test_schedule_is_bounded(policy, seed):
    delays = policy.schedule(random.Random(seed))
    assert len(delays) <= policy.max_attempts - 1
    assert sum(delays) <= policy.max_elapsed_s + EPS
    for d in delays:
        assert 0.0 <= d <= policy.max_delay_s


@given(policies, seeds)
def test_same_seed_same_schedule(policy, seed):
    assert policy.schedule(random.Random(seed)) == policy.schedule(random.Random(seed))


@given(policies, seeds, st.integers(min_value=1, max_value=40))
def test_jitter_stays_within_its_ratio(policy, seed, attempt):
    raw = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (attempt - 1))
    d = policy.backoff(attempt, random.Random(seed))
    assert (
        raw * (1 - policy.jitter_ratio) - EPS
        <= d
        <= min(policy.max_delay_s, raw * (1 + policy.jitter_ratio)) + EPS
    )


@given(
    policies,
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=0.0, max_value=400.0),
    st.integers(min_value=0, max_value=10),
    st.floats(min_value=0.0, max_value=100.0),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=200.0)),
)
def test_giving_up_is_monotone(policy, attempt, elapsed, more_attempts, more_elapsed, hint):
    first = policy.decide(attempt, elapsed, random.Random(1), backoff_hint_s=hint)
    later = policy.decide(
        attempt + more_attempts, elapsed + more_elapsed, random.Random(2), backoff_hint_s=hint
    )
    if not first.retry:
        assert not later.retry
        assert later.delay_s is None


@given(
    policies,
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=0.0, max_value=400.0),
    seeds,
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=200.0)),
)
def test_a_retry_never_starts_past_the_budget_and_honours_the_hint(
    policy, attempt, elapsed, seed, hint
):
    d = policy.decide(attempt, elapsed, random.Random(seed), backoff_hint_s=hint)
    assert isinstance(d, RetryDecision)
    if d.retry:
        assert d.delay_s is not None
        assert attempt < policy.max_attempts
        assert elapsed + d.delay_s <= policy.max_elapsed_s + EPS
        if hint is not None:
            assert d.delay_s >= hint
    else:
        assert d.delay_s is None
        assert d.reason in GIVE_UP_REASONS


@settings(max_examples=50)
@given(policies, seeds, st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=60))
def test_budget_loop_terminates_within_both_bounds(policy, seed, attempt_durations):
    # A loop driven only by the budget, with attempts that take arbitrary time, is bounded.
    r = random.Random(seed)
    budget = RetryBudget(policy, started_at=0.0)
    now = 0.0
    starts = []
    for duration in attempt_durations:
        starts.append(now)
        budget.record_attempt()
        now += duration
        d = budget.next(now, r)
        if not d.retry:
            break
        assert d.delay_s is not None
        now += d.delay_s
    assert len(starts) <= policy.max_attempts
    assert all(s <= policy.max_elapsed_s + EPS for s in starts)


@given(
    st.sampled_from(list(ErrorClass)),
    st.integers(min_value=1, max_value=50),
    st.floats(min_value=0, max_value=100),
    seeds,
)
def test_only_retryable_classes_ever_retry(error_class, attempt, elapsed, seed):
    d = RetryConfig().decide(error_class, attempt, elapsed, random.Random(seed))
    if error_class in (ErrorClass.FATAL, ErrorClass.IDEMPOTENT_SAFE, ErrorClass.AMBIGUOUS):
        assert not d.retry
    if d.retry:
        assert error_class in (ErrorClass.RETRYABLE, ErrorClass.RETRYABLE_WITH_MODIFICATION)
