"""The operator's status document: envelopes, unknown work and posture, from the journal.

Two kinds of test. The envelope arithmetic is checked on an account state folded from a
hand-written journal (a long with a partial stop, an unresolved stop, resting entries on
both sides, a resting exit), read through a stand-in that has exactly the members the
operator surface uses. The rest runs the real System on the simulated exchange.
"""

import json

import pytest
import trio

from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill
from scalper.core.types import OrderType, PositionSide, Side
from scalper.messages import FillApplied
from scalper.operator.views import status_document, unknown_intents
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
from tests.operator.standin import EPOCH_MS, Ledger, busy_long, stand_in

# ------------------------------------------------------------------------------ envelopes


def test_envelope_of_a_busy_long_counts_only_acknowledged_stops_and_worst_case_entries() -> None:
    ledger, coids = busy_long()
    doc = status_document(stand_in(ledger, now_s=50.0, unprotected={BTC: 4.25}))
    json.dumps(doc, allow_nan=False)  # JSON-ready, no NaN

    [position] = doc["positions"]
    assert position["symbol"] == BTC
    assert position["position_side"] == "BOTH"
    assert D(position["quantity"]) == D("0.004")
    # Selling part of the long does not change what the rest cost.
    assert D(position["entry_price"]) == D("60000")
    # Both stops are listed with their ledger state; only the acknowledged one covers.
    stops = {s["client_order_id"]: s["state"] for s in position["stops"]}
    assert stops == {coids["s1"]: "ACKED", coids["s2"]: "UNKNOWN"}
    coverage = position["coverage"]
    assert coverage["status"] == "under_covered"
    assert D(coverage["covered_qty"]) == D("0.002")
    assert D(coverage["uncovered_qty"]) == D("0.002")
    assert coverage["covered_by"] == [coids["s1"]]
    assert sorted(position["entry_orders"]) == sorted([coids["l1"], coids["l2"]])
    assert sorted(position["exit_orders"]) == sorted([coids["s1"], coids["s2"], coids["x1"]])
    # Worst case: every entry on one side fills, no exit does.
    assert D(position["open_buy_entry_qty"]) == D("0.004")
    assert D(position["open_sell_entry_qty"]) == D("0.009")  # 0.010 less the 0.001 filled
    assert D(position["worst_case_long"]) == D("0.008")
    assert D(position["worst_case_short"]) == D("-0.005")
    assert D(position["worst_case_qty"]) == D("0.008")
    # Valued at the last fill price (61000), not the entry.
    assert D(position["worst_case_notional"]) == D("0.008") * D("61000")
    assert position["unprotected_s"] == 4.25


def test_unknown_intents_carry_their_age_from_the_send() -> None:
    ledger, coids = busy_long()
    doc = status_document(stand_in(ledger, now_s=50.0))
    # s2 was sent at t=20 s: 30 s of not knowing whether the stop exists.
    assert doc["unknown_intents"] == [
        {
            "intent_id": "s2",
            "symbol": BTC,
            "client_order_ids": [coids["s2"]],
            "states": ["UNKNOWN"],
            "age_s": 30.0,
        }
    ]
    later = status_document(stand_in(ledger, now_s=75.5))
    assert later["unknown_intents"][0]["age_s"] == 55.5
    # A wall clock that steps back before the send shows age 0, never a negative age.
    assert unknown_intents(ledger.state, EPOCH_MS + 1_000)[0].age_s == 0.0


def test_open_orders_and_intents_list_every_possibly_live_order() -> None:
    ledger, coids = busy_long()
    doc = status_document(stand_in(ledger, now_s=50.0))
    orders = {o["client_order_id"]: o for o in doc["open_orders"]}
    # The filled market entry is gone; everything else may still execute.
    assert set(orders) == {coids[k] for k in ("s1", "s2", "l1", "l2", "x1")}
    assert orders[coids["l2"]]["lane"] == "entry"
    assert D(orders[coids["l2"]]["remaining_qty"]) == D("0.009")
    assert orders[coids["x1"]]["lane"] == "exit"
    assert orders[coids["x1"]]["reduce_only"] is True
    assert orders[coids["s2"]]["state"] == "UNKNOWN"
    assert orders[coids["l1"]]["age_s"] == 20.0
    intents = {i["intent_id"]: i for i in doc["open_intents"]}
    assert set(intents) == {"s1", "s2", "l1", "l2", "x1"}
    assert intents["s1"]["kind"] == "PROTECT"
    assert intents["s1"]["lane"] == "exit"
    assert doc["restarts"] == {"evidence": 0, "router": 2}
    assert doc["journal_lag"] == {"console": 3}


def test_a_flat_account_has_no_envelopes_and_a_close_position_stop_covers_any_size() -> None:
    ledger = Ledger()
    assert status_document(stand_in(ledger, now_s=1.0))["positions"] == []
    short = Intent(intent_id="sh", symbol=BTC, side=Side.SELL, quantity=D("0.003"))
    coid = ledger.at(1).send(short)
    ledger.fill(short, coid, "t9", "0.003", "60500")
    guard = Intent(
        intent_id="cp",
        symbol=BTC,
        side=Side.BUY,
        quantity=None,
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=D("61500"),
        close_position=True,
    )
    cp = ledger.at(2).send(guard)
    [position] = status_document(stand_in(ledger, now_s=3.0))["positions"]
    assert D(position["quantity"]) == D("-0.003")
    assert position["coverage"]["status"] == "covered"
    assert position["coverage"]["covered_by"] == [cp]
    assert position["stops"][0]["quantity"] is None
    assert position["stops"][0]["close_position"] is True
    # No entries rest: the worst case is the position itself.
    assert D(position["worst_case_qty"]) == D("0.003")


def test_a_hedge_leg_whose_sign_contradicts_its_side_is_shown_not_guessed() -> None:
    ledger = Ledger()
    # A SELL fill on the LONG leg drives it negative: impossible at the venue, but the
    # journal's fold reports what it was told, and the view must not invent a coverage.
    sell = Intent(
        intent_id="bad",
        symbol=BTC,
        side=Side.SELL,
        quantity=D("0.001"),
        position_side=PositionSide.LONG,
        reduce_only=True,
        kind=IntentKind.EXIT,
    )
    coid = ledger.at(1).send(sell)
    fill = Fill(
        symbol=BTC,
        trade_id="h1",
        order_id="v",
        client_order_id=coid,
        side=Side.SELL,
        quantity=D("0.001"),
        price=D("60000"),
        position_side=PositionSide.LONG,
    )
    ledger.state.apply(FillApplied("bad", "bad", fill, "stream"), ledger.wall_ms)
    [position] = status_document(stand_in(ledger, now_s=2.0))["positions"]
    assert position["position_side"] == "LONG"
    assert position["coverage"]["status"] == "invalid"
    assert "LONG leg cannot be negative" in position["coverage"]["detail"]


# ------------------------------------------------------------------------------ the real system


async def test_fresh_system_document_shows_orange_boot_and_its_identity(autojump_clock) -> None:
    async with running(make_venue()) as system:
        doc = status_document(system)
        last = system.journal.store.last_entry()
    json.dumps(doc, allow_nan=False)
    assert doc["running"] is True
    assert doc["posture"]["mode"] == "ORANGE"
    assert doc["posture"]["level"] == 2
    assert doc["posture"]["entries_allowed"] is False
    assert doc["posture"]["knobs"]["allow_entries"] is False
    assert doc["halted"] is False
    assert doc["positions"] == []
    assert doc["unknown_intents"] == []
    assert last is not None
    assert doc["journal_entries"] == last.seq
    assert doc["incarnation"] == system.journal.store.incarnation
    assert set(doc["restarts"]) >= {"router", "evidence", "reconciler", "belief"}
    assert all(v == 0 for v in doc["restarts"].values())


async def test_a_filled_entry_shows_its_entry_price_coverage_and_halt(
    autojump_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(make_venue()) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("e1"), reference_price=REF)).accepted
        state = system.journal.state
        await until(lambda: state.position(BTC) == D("0.002"))
        fills = [e for e in system.journal.store.entries() if e.type == "fill_applied"]
        # Stops are placed by the ProtectionManager once the fill is journaled (I9).
        await until(
            lambda: status_document(system)["positions"][0]["coverage"]["status"] == "covered"
        )
        doc = status_document(system)
        pin_unprotected(monkeypatch, system, {BTC: 2.5})
        pinned = status_document(system)
        await system.halt("operator: news in 2 minutes")
        halted = status_document(system)

    [position] = doc["positions"]
    fill_price = D(json.loads(fills[0].payload)["fill"]["price"])
    assert D(position["entry_price"]) == fill_price
    assert D(position["quantity"]) == D("0.002")
    covering = position["coverage"]["covered_by"]
    assert covering
    by_coid = {s["client_order_id"]: s for s in position["stops"]}
    for coid in covering:
        order = state.orders[coid]
        assert not order.risk_increasing
        assert order.request.side is Side.SELL
        assert by_coid[coid]["state"] in ("ACKED", "PARTIALLY_FILLED")
    assert D(position["coverage"]["covered_qty"]) >= D("0.002")
    # No entries rest, so the worst case is the position, valued at the last fill.
    assert D(position["worst_case_qty"]) == D("0.002")
    assert D(position["worst_case_notional"]) == D("0.002") * fill_price
    assert pinned["positions"][0]["unprotected_s"] == 2.5
    assert pinned["unprotected_s"] == {BTC: 2.5}
    assert halted["halted"] is True
    assert halted["halts"] == {"operator": "operator: news in 2 minutes"}
    assert halted["posture"]["entries_allowed"] is False


async def test_an_unresolved_create_is_an_unknown_intent_whose_age_grows(autojump_clock) -> None:
    # The create never reaches the exchange: the order stays SENDING until the request
    # times out, then UNKNOWN until queries prove it absent.
    dropped = FaultSpec(start=0.0, end=100_000.0, kind="DROP_REQUEST", operations={"create"})
    async with running(make_venue(dropped)) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("lost"), reference_price=REF)).accepted
        await trio.sleep(3.0)
        first = status_document(system)
        await trio.sleep(4.0)
        second = status_document(system)
        await until(lambda: not system.journal.state.unresolved_orders())
        settled = status_document(system)

    [u1] = first["unknown_intents"]
    [u2] = second["unknown_intents"]
    assert u1["intent_id"] == u2["intent_id"] == "lost"
    assert u1["states"] == ["SENDING"]
    assert u1["age_s"] >= 3.0
    assert u2["age_s"] == pytest.approx(u1["age_s"] + 4.0)
    assert [o["client_order_id"] for o in first["open_orders"]] == u1["client_order_ids"]
    assert settled["unknown_intents"] == []
