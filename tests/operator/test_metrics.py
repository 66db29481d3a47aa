"""Prometheus metrics read from a running system: parseable, private, and true to the journal.

Every value is checked against an independent reading of the same run: the journal's
entries decoded one by one, the posture controller, the supervisor.
"""

from collections.abc import Iterable

import pytest
import trio
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scalper.messages import OrderSending, ReconcileCompleted, RetryScheduled, decode_event
from scalper.operator.metrics import METRICS_CONTENT_TYPE, render_metrics
from scalper.system import System
from scalper.venues.sim.faults import FaultSpec
from tests.operator.kit import (
    BTC,
    REF,
    D,
    entry,
    make_venue,
    pin_unprotected,
    ready_for_entries,
    running,
    until,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(system: System) -> Samples:
    """Render and parse; keyed by (sample name, sorted labels)."""
    text = render_metrics(system).decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


def journal_events(system: System, type_: str) -> Iterable[object]:
    for e in system.journal.store.entries():
        if e.type == type_:
            yield decode_event(e.type, e.payload)


async def test_metrics_of_a_trading_system_match_the_journal(autojump_clock) -> None:
    async with running(make_venue()) as system:
        idle = scrape(system)
        await ready_for_entries(system)
        assert (await system.submit(entry("e1"), reference_price=REF)).accepted
        await until(lambda: system.journal.state.position(BTC) == D("0.002"))
        await trio.sleep(5.0)
        probe = system.journal.subscribe("probe")  # never read: its lag grows
        await trio.sleep(10.0)
        samples = scrape(system)
        lag = system.journal.subscriber_lag()
        mode = system.belief.posture.mode
        sends = [e for e in journal_events(system, "order_sending") if isinstance(e, OrderSending)]
        reconciles = [
            e
            for e in journal_events(system, "reconcile_completed")
            if isinstance(e, ReconcileCompleted)
        ]
        fills = list(journal_events(system, "fill_applied"))
        await system.halt("metrics test")
        halted = scrape(system)
        probe.receive.close()
    stopped = scrape(system)

    assert value(idle, "scalper_fills_total") == 0
    assert value(idle, "scalper_halted") == 0
    # Counters equal what the journal holds, event by event.
    assert value(samples, "scalper_fills_total") == len(fills) >= 1
    assert value(samples, "scalper_reconcile_runs_total") == len(reconciles) > 0
    assert value(samples, "scalper_reconcile_mismatch_runs_total") == sum(
        1 for r in reconciles if not r.clean
    )
    assert value(samples, "scalper_orders_sent_total", lane="entry") == sum(
        1 for s in sends if s.risk_increasing
    )
    assert value(samples, "scalper_orders_sent_total", lane="exit") == sum(
        1 for s in sends if not s.risk_increasing
    )
    assert value(samples, "scalper_orders_sent_total", lane="entry") >= 1
    # Posture: exactly one mode is 1, and it is the controller's; the level matches.
    posture = labelled(samples, "scalper_posture", "mode")
    assert set(posture) == {"GREEN", "YELLOW", "ORANGE", "RED"}
    assert [m for m, v in posture.items() if v == 1.0] == [mode.value]
    assert sum(posture.values()) == 1.0
    assert value(samples, "scalper_posture_level") == mode.level
    # The probe subscription has been fed without reading: its lag is visible.
    lags = labelled(samples, "scalper_journal_subscriber_lag", "subscriber")
    assert lags["probe"] == lag["probe"] > 0
    assert value(samples, "scalper_unknown_intents") == 0
    assert value(samples, "scalper_running") == 1
    assert set(labelled(samples, "scalper_actor_restarts_total", "actor")) >= {"router", "belief"}
    assert value(halted, "scalper_halted") == 1
    assert value(stopped, "scalper_running") == 0


async def test_retries_unknown_intents_and_their_age_are_measured(autojump_clock) -> None:
    # The create never reaches the exchange: SENDING, then UNKNOWN after the timeout, then
    # query retries until the order is proven absent.
    dropped = FaultSpec(start=0.0, end=100_000.0, kind="DROP_REQUEST", operations={"create"})
    async with running(make_venue(dropped)) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("lost"), reference_price=REF)).accepted
        await trio.sleep(2.5)
        pending = scrape(system)
        await until(lambda: not system.journal.state.unresolved_orders())
        done = scrape(system)
        retries = [
            e for e in journal_events(system, "retry_scheduled") if isinstance(e, RetryScheduled)
        ]

    assert value(pending, "scalper_unknown_intents") == 1
    assert value(pending, "scalper_unknown_intent_oldest_age_seconds") == pytest.approx(2.5)
    assert value(done, "scalper_unknown_intents") == 0
    assert value(done, "scalper_unknown_intent_oldest_age_seconds") == 0
    assert retries, "the scenario must retry"
    by_class = labelled(done, "scalper_retries_total", "error_class")
    by_operation = labelled(done, "scalper_retries_by_operation_total", "operation")
    expected_class: dict[str, float] = {}
    expected_operation: dict[str, float] = {}
    for r in retries:
        expected_class[r.error_class] = expected_class.get(r.error_class, 0) + 1
        expected_operation[r.operation] = expected_operation.get(r.operation, 0) + 1
    assert by_class == expected_class
    assert by_operation == expected_operation
    # The two vocabularies never mix: no operation appears as a class.
    assert not set(by_class) & set(by_operation)


async def test_unprotected_seconds_per_symbol(
    autojump_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(make_venue()) as system:
        await trio.sleep(5.0)
        # Read back-to-back with no await between: the same instant.
        real = system.unprotected_seconds()
        real_samples = scrape(system)
        pin_unprotected(monkeypatch, system, {BTC: 12.5, "ETHUSDT": 3.0})
        pinned = scrape(system)
    assert labelled(real_samples, "scalper_unprotected_seconds", "symbol") == real
    assert labelled(pinned, "scalper_unprotected_seconds", "symbol") == {BTC: 12.5, "ETHUSDT": 3.0}


async def test_the_registry_is_private_and_the_format_is_prometheus_0_0_4(autojump_clock) -> None:
    async with running(make_venue()) as system:
        text = render_metrics(system).decode("utf-8")
    assert METRICS_CONTENT_TYPE.startswith("text/plain; version=0.0.4")
    assert "# TYPE scalper_fills_total counter" in text
    assert "# TYPE scalper_posture gauge" in text
    # Nothing leaked into the process-global registry.
    assert b"scalper_" not in generate_latest(REGISTRY)
