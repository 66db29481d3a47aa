"""The operator console: what it shows for a given document, and the live loop on a real System."""

import io

import pytest
import trio
from rich.console import Console

from scalper.messages import HaltChanged, PostureChanged, encode_event
from scalper.operator.console import (
    EventTail,
    RecentEvent,
    recent_event,
    render_console,
    run_console,
)
from scalper.operator.views import status_document
from scalper.store.records import JournalEntry
from tests.operator.kit import BTC, make_venue, running
from tests.operator.standin import EPOCH_MS, Ledger, busy_long, stand_in


def text_of(renderable: object, width: int = 160) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def entry_at(seq: int, type_: str, payload: str = "{}", intent_id: str = "") -> JournalEntry:
    return JournalEntry(
        seq=seq,
        wall_ms=EPOCH_MS + seq * 1000,
        type=type_,
        intent_id=intent_id,
        correlation_id=intent_id,
        payload=payload,
        prev_hash="0" * 64,
        hash="0" * 64,
    )


def test_a_busy_account_shows_positions_envelopes_unknown_work_and_orders() -> None:
    ledger, coids = busy_long()
    doc = status_document(stand_in(ledger, now_s=50.0, unprotected={BTC: 4.25}))
    events = [
        RecentEvent(41, EPOCH_MS + 49_000, "order_outcome_unknown", "s2", "error_class=AMBIGUOUS"),
        RecentEvent(42, EPOCH_MS + 49_500, "fill_applied", "l2", "SELL 0.001 BTCUSDT @ 61000"),
    ]
    text = text_of(render_console(doc, events))
    assert "Posture ORANGE" in text  # the stand-in's controller boots ORANGE
    assert "entries blocked" in text
    assert "Causes unknown_intents" in text
    assert "unlock mismatch_streak 0 <= 0: met" in text
    # The position line: quantity, entry, coverage and the time it has been unprotected.
    assert "0.004" in text
    assert "60000" in text
    assert "under_covered 0.002" in text
    assert "4.2s" in text
    assert "Unknown intents" in text
    assert f"{coids['s2']} [UNKNOWN]" in text
    for key in ("l1", "l2", "x1", "s1"):
        assert coids[key] in text
    assert "00:00:49.000" in text  # event time, UTC
    assert "order_outcome_unknown" in text
    assert "SELL 0.001 BTCUSDT @ 61000" in text
    assert "journal" in text
    assert "incarnation 7" in text
    assert "restarts router=2" in text
    assert "no reconcile yet" in text


def test_a_halted_stopped_flat_system_says_so() -> None:
    ledger = Ledger()
    ledger.state.apply(HaltChanged(True, "CPI at 14:30", "operator"), EPOCH_MS)
    system = stand_in(ledger, now_s=1.0, stop_reason="escalated: router crashed 6 times")
    system.stopped.set()
    text = text_of(render_console(status_document(system), []))
    assert "HALTED operator: CPI at 14:30" in text
    assert "STOPPED: escalated: router crashed 6 times" in text
    assert "No open positions or orders." in text
    assert "No journal events yet." in text
    assert "Unknown intents" not in text


def test_recent_events_are_summarised_and_the_tail_is_bounded_and_ordered() -> None:
    posture = PostureChanged(
        mode="YELLOW",
        previous="ORANGE",
        score=0.1,
        causes=("mismatch_streak",),
        unlock=(),
        knobs=stand_in(Ledger(), now_s=0.0).knobs,
    )
    line = recent_event(entry_at(1, "posture_changed", encode_event(posture)))
    assert line.summary.startswith("mode=YELLOW previous=ORANGE score=0.1 causes=mismatch_streak")
    broken = recent_event(entry_at(2, "posture_changed", "{not json"))
    assert broken.summary.startswith("undecodable:")

    tail = EventTail(3)
    halt = HaltChanged(True, "x", "operator")
    for seq in (1, 2, 3, 4, 5):
        tail.add(entry_at(seq, "halt_changed"), halt)
    tail.add(entry_at(4, "halt_changed"), halt)  # a repeat (seeded and subscribed) is dropped
    assert [e.seq for e in tail.events()] == [3, 4, 5]
    with pytest.raises(ValueError, match="limit"):
        EventTail(0)


async def test_run_console_draws_the_live_system_until_it_stops(autojump_clock) -> None:
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None, force_terminal=False)
    async with running(make_venue()) as system, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_console(system, refresh_s=0.5, console=console))
        await trio.sleep(3.0)
        await system.halt("console test")
        await trio.sleep(1.0)
        lag = system.journal.subscriber_lag()
        nursery.cancel_scope.cancel()
    text = out.getvalue()
    # A non-terminal console gets the final frame: the halt and its journal event are in it.
    assert "HALTED operator: console test" in text
    assert "halt_changed" in text
    assert "system_started" in text  # seeded from the journal's tail
    # The console's subscription is drained on every redraw.
    assert lag.get("console", 0) <= 1
    with pytest.raises(ValueError, match="refresh_s"):
        await run_console(system, refresh_s=0.0)
