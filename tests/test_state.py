"""AccountState: the account as the journal tells it, driven through real order stories.

Every story is applied the way the Journal actor applies it (encode, then fold, then write
the row) and ends by replaying the journal it wrote: the replayed state must have the same
fingerprint as the live one (I5). The property test at the end does the same for random
but valid event sequences, with repeated trade ids, and checks exactly-once fills (I10).
"""

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.ids import Role, client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.orders import OrderState
from scalper.core.orphans import IntentStanding
from scalper.core.posture import PostureConfig, PostureMode, knobs_for
from scalper.core.reconcile import LocalOrder, LocalOrderState, LocalPosition, LocalView
from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce
from scalper.messages import (
    ActorCrashed,
    BackfillCompleted,
    CancelFailed,
    CancelRequested,
    CancelResolved,
    Event,
    FillApplied,
    HaltChanged,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderAdopted,
    OrderMissing,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    PositionSynced,
    PostureChanged,
    ReconcileCompleted,
    Resolution,
    RetryScheduled,
    StreamDown,
    StreamGapObserved,
    SymbolFrozen,
    SystemStarted,
    canonical_json,
    converter,
    decode_event,
    encode_event,
    event_type,
)
from scalper.state import AccountState, DuplicateFill, IntentFate, IntentStatus, OrderRecord
from scalper.store.records import InsertFill, LedgerOp, LedgerState, SetCursor, UpsertLedger

PREFIX = "sc"
T0 = 1_700_000_000_000  # journal wall clock, epoch ms
BTC = "BTCUSDT"
ETH = "ETHUSDT"
LOT = Decimal("0.001")

# --------------------------------------------------------------------------- the tape


class Tape:
    """Applies events to an AccountState exactly like the Journal actor, keeping the journal.

    ``Journal.append`` encodes the event, applies it, and writes the row only if apply did
    not refuse it (a duplicate fill is not journaled).
    """

    def __init__(self, *, start_ms: int = T0) -> None:
        self.state = AccountState(prefix=PREFIX)
        self.wall = start_ms
        self.high = start_ms  # the fold's own clock: the journal's wall time, never backwards
        self.journal: list[tuple[str, str, int]] = []
        self.ops: list[tuple[LedgerOp, ...]] = []

    def apply(self, event: Event, *, dt: int = 100) -> tuple[LedgerOp, ...]:
        self.wall += dt
        self.high = max(self.high, self.wall)
        payload = encode_event(event)
        ops = self.state.apply(event, self.wall)
        self.journal.append((event_type(event), payload, self.wall))
        self.ops.append(ops)
        return ops

    def replayed(self) -> AccountState:
        return AccountState.replay(self.journal, prefix=PREFIX)

    def assert_replays(self) -> None:
        replayed = self.replayed()
        assert replayed.fingerprint() == self.state.fingerprint()
        # What the fingerprint leaves out (leg times, placed_at) reaches the Reconciler too.
        assert replayed.local_view() == self.state.local_view()
        # The ledger rows derived on replay are the ones the store wrote live.
        fresh = AccountState(prefix=PREFIX)
        for (type_, payload, wall_ms), ops in zip(self.journal, self.ops, strict=True):
            assert fresh.apply(decode_event(type_, payload), wall_ms) == ops


# --------------------------------------------------------------------------- builders


def lots(n: int | str) -> Decimal:
    return LOT * Decimal(n)


TEN_LOTS = LOT * 10


def limit_buy(intent_id: str = "i-entry", qty: Decimal = TEN_LOTS) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.BUY,
        quantity=qty,
        order_type=OrderType.LIMIT,
        price=Decimal("64000.0"),
        correlation_id=f"c-{intent_id}",
    )


def market_exit(intent_id: str = "i-exit", qty: Decimal = TEN_LOTS) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.SELL,
        quantity=qty,
        kind=IntentKind.EXIT,
        reduce_only=True,
        correlation_id=f"c-{intent_id}",
    )


def close_stop(intent_id: str = "i-stop", symbol: str = BTC) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=symbol,
        side=Side.SELL,
        quantity=None,
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=Decimal("61000"),
        close_position=True,
        correlation_id=f"c-{intent_id}",
    )


def coid(intent: Intent, gen: int = 0) -> str:
    return client_order_id(PREFIX, intent.intent_id, intent.role, gen)


def accepted(intent: Intent) -> IntentAccepted:
    lane = Lane.EXIT if intent.is_exit else Lane.ENTRY
    return IntentAccepted(intent, lane, "strategy", intent.intent_id, intent.correlation_id)


def sending(intent: Intent, gen: int = 0, *, sent_wall_ms: int = T0) -> OrderSending:
    return OrderSending(
        intent_id=intent.intent_id,
        correlation_id=intent.correlation_id,
        client_order_id=coid(intent, gen),
        generation=gen,
        request=intent.to_order_request(coid(intent, gen)),
        risk_increasing=intent.is_risk_increasing,
        recv_window_ms=5000,
        sent_wall_ms=sent_wall_ms,
    )


def venue(
    intent: Intent,
    status: VenueOrderStatus,
    filled: Decimal = ZERO,
    *,
    gen: int = 0,
    order_id: str = "8389765",
) -> VenueOrder:
    return VenueOrder(
        symbol=intent.symbol,
        order_id=order_id,
        client_order_id=coid(intent, gen),
        side=intent.side,
        order_type=intent.order_type,
        status=status,
        quantity=intent.quantity if intent.quantity is not None else ZERO,
        filled_qty=filled,
        price=intent.price,
        stop_price=intent.stop_price,
        time_in_force=intent.time_in_force,
        reduce_only=intent.reduce_only,
        close_position=intent.close_position,
        position_side=intent.position_side,
    )


def acked(intent: Intent, *, gen: int = 0, order_id: str = "8389765") -> OrderAcked:
    return OrderAcked(
        intent.intent_id,
        intent.correlation_id,
        coid(intent, gen),
        venue(intent, VenueOrderStatus.NEW, gen=gen, order_id=order_id),
    )


def trade(
    intent: Intent, trade_id: str, qty: Decimal, *, gen: int = 0, source: str = "stream"
) -> FillApplied:
    return FillApplied(
        intent.intent_id,
        intent.correlation_id,
        Fill(
            symbol=intent.symbol,
            trade_id=trade_id,
            order_id="8389765",
            client_order_id=coid(intent, gen),
            side=intent.side,
            quantity=qty,
            price=Decimal("64000.0"),
            fee=Decimal("0.0256"),
            position_side=intent.position_side,
        ),
        source,
    )


def observed(
    intent: Intent,
    status: VenueOrderStatus,
    filled: Decimal = ZERO,
    *,
    source: str = "query",
    at_ms: int,
    gen: int = 0,
) -> OrderObserved:
    return OrderObserved(
        intent.intent_id,
        intent.correlation_id,
        coid(intent, gen),
        venue(intent, status, filled, gen=gen),
        source,
        at_ms,
    )


def upserts(ops: Sequence[LedgerOp]) -> list[UpsertLedger]:
    return [op for op in ops if isinstance(op, UpsertLedger)]


def fill_ops(ops: Sequence[LedgerOp]) -> list[InsertFill]:
    return [op for op in ops if isinstance(op, InsertFill)]


def only_row(ops: Sequence[LedgerOp]) -> Any:
    rows = upserts(ops)
    assert len(rows) == 1, ops
    return rows[0].row


def order(tape: Tape, intent: Intent, gen: int = 0) -> OrderRecord:
    return tape.state.orders[coid(intent, gen)]


def status(tape: Tape, intent_id: str) -> IntentStatus:
    return tape.state.intents[intent_id].status


def placed(tape: Tape, intent: Intent) -> None:
    """Accepted, sent and acknowledged: a resting order."""
    tape.apply(accepted(intent))
    tape.apply(sending(intent, sent_wall_ms=tape.wall + 100))
    tape.apply(acked(intent))


# --------------------------------------------------------------------------- (a) entry


def test_entry_story_from_intent_to_filled_position():
    tape = Tape()
    it = limit_buy()
    assert tape.apply(accepted(it)) == ()
    assert status(tape, "i-entry") is IntentStatus.OPEN
    assert tape.state.intents["i-entry"].lane is Lane.ENTRY

    sent_at = tape.wall + 100
    ops = tape.apply(sending(it, sent_wall_ms=sent_at))
    row = only_row(ops)
    assert row.client_order_id == coid(it)
    assert row.intent_id == "i-entry"
    assert row.generation == 0
    assert row.symbol == BTC
    assert row.state is LedgerState.SENDING
    assert row.risk_increasing is True
    assert row.sent_wall_ms == sent_at
    assert row.recv_window_ms == 5000
    assert row.created_wall_ms == row.updated_wall_ms == tape.wall
    assert row.spec == canonical_json(converter.unstructure(it.to_order_request(coid(it))))
    assert tape.state.intents["i-entry"].client_order_ids == [coid(it)]
    assert [o.client_order_id for o in tape.state.unresolved_orders()] == [coid(it)]
    assert tape.state.open_entry_orders(BTC) == 1
    created = tape.wall

    row = only_row(tape.apply(acked(it)))
    assert row.state is LedgerState.ACKED
    assert row.venue_order_id == "8389765"
    assert row.created_wall_ms == created
    assert row.updated_wall_ms == tape.wall
    assert tape.state.unresolved_orders() == []
    assert order(tape, it).order_state is OrderState.LIVE

    first = trade(it, "5001", lots(4))
    ops = tape.apply(first)
    assert only_row(ops).state is LedgerState.PARTIALLY_FILLED
    (ins,) = fill_ops(ops)
    assert ins.key == (BTC, "5001")
    assert ins.client_order_id == coid(it)
    assert converter.structure(json.loads(ins.payload), Fill) == first.fill
    assert tape.state.position(BTC) == lots(4)
    opened_at = tape.wall
    assert tape.state.legs[(BTC, PositionSide.BOTH)].opened_wall_ms == opened_at

    ops = tape.apply(trade(it, "5002", lots(6)))
    assert only_row(ops).state is LedgerState.FILLED
    assert [op.key for op in fill_ops(ops)] == [(BTC, "5002")]
    assert order(tape, it).order_state is OrderState.FILLED
    assert order(tape, it).filled_qty == lots(10)
    assert tape.state.position(BTC) == lots(4) + lots(6)
    assert tape.state.legs[(BTC, PositionSide.BOTH)].opened_wall_ms == opened_at
    assert status(tape, "i-entry") is IntentStatus.DONE
    assert tape.state.live_orders() == []
    assert tape.state.open_entry_orders(BTC) == 0
    assert tape.state.count("fills") == 2
    assert tape.state.contradictions == []
    tape.assert_replays()


def test_orders_are_found_by_venue_id_and_a_reused_venue_id_is_a_contradiction():
    tape = Tape()
    entry, stop = limit_buy(), market_exit()
    placed(tape, entry)  # acked as venue order 8389765
    assert tape.state.order_by_venue_id(BTC, "8389765") is order(tape, entry)
    assert tape.state.order_by_venue_id(BTC, "1") is None
    assert tape.state.order_by_venue_id("ETHUSDT", "8389765") is None  # numbered per symbol
    tape.apply(accepted(stop))
    tape.apply(sending(stop))
    assert tape.state.unnumbered_orders(BTC) == [order(tape, stop)]
    tape.apply(acked(stop, order_id="8389765"))  # the venue cannot number two orders alike
    assert tape.state.count("contradictions") == 1
    assert "already held by" in tape.state.contradictions[-1]
    assert tape.state.order_by_venue_id(BTC, "8389765") is order(tape, entry)
    assert tape.state.unnumbered_orders(BTC) == []
    tape.assert_replays()


def test_exit_fills_bring_the_leg_back_to_flat():
    tape = Tape()
    entry, exit_ = limit_buy(), market_exit(qty=lots(10))
    placed(tape, entry)
    tape.apply(trade(entry, "1", lots(10)))
    tape.apply(accepted(exit_))
    assert tape.state.intents["i-exit"].lane is Lane.EXIT
    row = only_row(tape.apply(sending(exit_)))
    assert row.risk_increasing is False
    tape.apply(trade(exit_, "2", lots(7)))
    assert tape.state.position(BTC) == lots(3)
    tape.apply(trade(exit_, "3", lots(3)))
    assert tape.state.position(BTC) == ZERO
    assert tape.state.legs[(BTC, PositionSide.BOTH)].opened_wall_ms is None
    assert status(tape, "i-exit") is IntentStatus.DONE
    # The flat leg stays in the Reconciler's view: a snapshot lagging the exit is judged.
    (flat,) = tape.state.local_view().positions
    assert (flat.quantity, flat.opened_at) == (ZERO, None)
    assert flat.updated_at is not None
    tape.assert_replays()


# --------------------------------------------------------------------------- (b) duplicates


def test_duplicate_fill_is_refused_and_changes_nothing():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "5001", lots(4)))
    before = tape.state.fingerprint()
    applied = tape.state.events_applied
    journal_len = len(tape.journal)

    # The same trade again, from the REST backfill this time: same (symbol, trade id).
    with pytest.raises(DuplicateFill, match="BTCUSDT trade 5001"):
        tape.apply(trade(it, "5001", lots(4), source="backfill"))
    assert tape.state.fingerprint() == before
    assert tape.state.events_applied == applied
    assert len(tape.journal) == journal_len
    assert tape.state.position(BTC) == lots(4)
    assert order(tape, it).filled_qty == lots(4)
    assert tape.state.is_duplicate_fill(trade(it, "5001", lots(4)).fill)
    tape.assert_replays()


def test_trade_ids_are_unique_per_symbol_not_globally():
    tape = Tape()
    btc = limit_buy("i-btc")
    eth = Intent(intent_id="i-eth", symbol=ETH, side=Side.BUY, quantity=Decimal("0.5"))
    placed(tape, btc)
    placed(tape, eth)
    tape.apply(trade(btc, "777", lots(2)))
    tape.apply(trade(eth, "777", Decimal("0.5")))  # same id, other symbol: another trade
    assert tape.state.position(BTC) == lots(2)
    assert tape.state.position(ETH) == Decimal("0.5")
    assert tape.state.fill_keys == {(BTC, "777"), (ETH, "777")}
    tape.assert_replays()


def test_replay_counts_a_duplicate_fill_in_a_hand_made_journal():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "9", lots(2)))
    journal = [*tape.journal, tape.journal[-1]]  # the store never writes this; a hand edit does
    replayed = AccountState.replay(journal, prefix=PREFIX)
    assert replayed.count("replay.duplicate_fill") == 1
    assert replayed.position(BTC) == lots(2)


# --------------------------------------------------------------------------- (c) ambiguous create


def test_ambiguous_create_resolved_present_by_query():
    tape = Tape()
    it = limit_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    row = only_row(
        tape.apply(
            OrderOutcomeUnknown("i-entry", "c-i-entry", coid(it), "AMBIGUOUS", None, "timeout")
        )
    )
    assert row.state is LedgerState.UNKNOWN
    assert order(tape, it).order_state is OrderState.UNKNOWN
    assert [o.client_order_id for o in tape.state.unresolved_orders()] == [coid(it)]
    (local,) = tape.state.local_view().orders
    assert local.state is LocalOrderState.UNKNOWN

    found = venue(it, VenueOrderStatus.NEW, order_id="4242")
    row = only_row(
        tape.apply(
            OrderResolved("i-entry", "c-i-entry", coid(it), Resolution.PRESENT, "query", found)
        )
    )
    assert row.state is LedgerState.ACKED
    assert row.venue_order_id == "4242"
    assert tape.state.unresolved_orders() == []
    assert order(tape, it).order_state is OrderState.LIVE
    assert status(tape, "i-entry") is IntentStatus.OPEN
    tape.assert_replays()


def test_ambiguous_create_proven_absent_then_second_generation():
    tape = Tape()
    it = limit_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    tape.apply(OrderOutcomeUnknown("i-entry", "c-i-entry", coid(it), "AMBIGUOUS", -1007, "timeout"))
    row = only_row(
        tape.apply(
            OrderResolved(
                "i-entry", "c-i-entry", coid(it), Resolution.ABSENT, "not_found_after_recv_window"
            )
        )
    )
    assert row.state is LedgerState.ABSENT
    assert order(tape, it).is_terminal
    assert tape.state.unresolved_orders() == []
    # Proven absent is not done: the Router may send the next generation.
    assert status(tape, "i-entry") is IntentStatus.OPEN
    assert tape.state.local_view().known_intents == {"i-entry": IntentStanding.OPEN}

    row = only_row(tape.apply(sending(it, gen=1)))
    assert row.generation == 1
    assert row.client_order_id == coid(it, 1) != coid(it, 0)
    assert row.state is LedgerState.SENDING
    assert tape.state.intents["i-entry"].client_order_ids == [coid(it, 0), coid(it, 1)]
    assert [o.generation for o in tape.state.orders_for_intent("i-entry")] == [0, 1]

    tape.apply(acked(it, gen=1))
    tape.apply(trade(it, "61", lots(10), gen=1))
    assert order(tape, it, 1).ledger_state is LedgerState.FILLED
    assert order(tape, it, 0).ledger_state is LedgerState.ABSENT
    assert status(tape, "i-entry") is IntentStatus.DONE
    assert tape.state.position(BTC) == lots(10)
    tape.assert_replays()


def test_create_rejected_closes_the_intent():
    tape = Tape()
    it = limit_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    row = only_row(
        tape.apply(
            OrderRejected("i-entry", "c-i-entry", coid(it), "FATAL", -2019, "margin_insufficient")
        )
    )
    assert row.state is LedgerState.REJECTED
    rec = tape.state.intents["i-entry"]
    assert rec.status is IntentStatus.DONE
    assert rec.reason == "order_rejected"
    tape.assert_replays()


# --------------------------------------------------------------------------- (d) cancel


def test_cancel_story_with_partial_fill_and_canceled_report():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "71", lots(4)))
    row = only_row(tape.apply(CancelRequested("i-entry", "c-i-entry", coid(it), "operator")))
    # Cancel in flight: the order can still fill, so the ledger keeps it live and settled.
    assert not row.state.is_terminal
    assert row.state in (LedgerState.ACKED, LedgerState.PARTIALLY_FILLED)
    assert tape.state.unresolved_orders() == []
    assert order(tape, it).order_state is OrderState.CANCEL_PENDING
    assert order(tape, it).cancel_requested
    (local,) = tape.state.local_view().orders
    assert local.state is LocalOrderState.CANCELING
    assert local.filled_qty == lots(4)

    final = venue(it, VenueOrderStatus.CANCELED, lots(4))
    row = only_row(
        tape.apply(CancelResolved("i-entry", "c-i-entry", coid(it), "cancel_ack", final))
    )
    assert row.state is LedgerState.CANCELED
    assert order(tape, it).is_terminal
    assert status(tape, "i-entry") is IntentStatus.DONE
    assert tape.state.local_view().orders == ()
    assert tape.state.position(BTC) == lots(4)
    assert tape.state.contradictions == []
    tape.assert_replays()


def test_trades_covered_by_the_cancel_count_are_backfills_not_contradictions():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(CancelRequested("i-entry", "c-i-entry", coid(it), "operator"))
    # Binance answered the cancel with executedQty 0.007 before the stream sent the trades.
    final = venue(it, VenueOrderStatus.CANCELED, lots(7))
    tape.apply(CancelResolved("i-entry", "c-i-entry", coid(it), "cancel_ack", final))
    tape.apply(trade(it, "81", lots(4), source="backfill"))
    tape.apply(trade(it, "82", lots(3), source="backfill"))
    assert tape.state.contradictions == []
    assert order(tape, it).ledger_state is LedgerState.CANCELED
    assert tape.state.position(BTC) == lots(7)
    tape.assert_replays()


def test_cancel_answered_not_found_leaves_status_unknown_for_the_router():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(CancelRequested("i-entry", "c-i-entry", coid(it), "operator"))
    row = only_row(
        tape.apply(
            CancelResolved("i-entry", "c-i-entry", coid(it), "cancel_rejected+not_found", None)
        )
    )
    # -2011 may mean filled: not terminal, resolved by query.
    assert row.state is LedgerState.UNKNOWN
    assert order(tape, it).order_state is OrderState.STATUS_UNKNOWN
    assert [o.client_order_id for o in tape.state.unresolved_orders()] == [coid(it)]
    tape.apply(observed(it, VenueOrderStatus.FILLED, lots(10), at_ms=tape.wall))
    assert order(tape, it).ledger_state is LedgerState.FILLED
    tape.assert_replays()


def test_cancel_failed_keeps_the_order_live_and_counts():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(CancelRequested("i-entry", "c-i-entry", coid(it), "operator"))
    ops = tape.apply(CancelFailed("i-entry", "c-i-entry", coid(it), "rate_limited", True))
    assert ops == ()
    assert order(tape, it).cancel_failures == 1
    assert not order(tape, it).is_terminal
    assert tape.state.count("cancel_failed") == 1
    tape.assert_replays()


def test_intent_fate_follows_the_newest_order_through_its_story():
    tape = Tape()
    it, refused, dup = limit_buy(), limit_buy("i-refused"), limit_buy("i-dup")
    fate = tape.state.intent_fate
    assert fate("never-seen") is IntentFate.PENDING
    tape.apply(accepted(it))
    assert fate("i-entry") is IntentFate.PENDING  # accepted, nothing sent
    tape.apply(sending(it))
    assert fate("i-entry") is IntentFate.PENDING  # sent, outcome unknown
    tape.apply(acked(it))
    assert fate("i-entry") is IntentFate.LIVE
    tape.apply(trade(it, "1", lots(4)))
    assert fate("i-entry") is IntentFate.LIVE  # partly filled, still working
    tape.apply(trade(it, "2", TEN_LOTS - lots(4)))
    assert fate("i-entry") is IntentFate.FILLED
    tape.apply(accepted(refused))
    tape.apply(sending(refused))
    tape.apply(OrderRejected("i-refused", "c-i-refused", coid(refused), "FATAL", -2019, "margin"))
    assert fate("i-refused") is IntentFate.REJECTED
    tape.apply(accepted(dup))
    tape.apply(sending(dup))
    tape.apply(
        OrderResolved("i-dup", "c-i-dup", coid(dup), Resolution.PRESENT, "duplicate_client_id")
    )
    assert fate("i-dup") is IntentFate.PROVEN  # exists (-4116), status not known
    tape.apply(
        OrderResolved(
            "i-dup",
            "c-i-dup",
            coid(dup),
            Resolution.PRESENT,
            "query",
            venue(dup, VenueOrderStatus.CANCELED, order_id="77"),
        )
    )
    assert fate("i-dup") is IntentFate.CLOSED
    tape.assert_replays()


# --------------------------------------------------------------------------- (e) duplicate id


def test_duplicate_client_id_means_present_but_status_unknown():
    tape = Tape()
    it = limit_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    row = only_row(
        tape.apply(
            OrderResolved(
                "i-entry", "c-i-entry", coid(it), Resolution.PRESENT, "duplicate_client_id"
            )
        )
    )
    assert row.state is LedgerState.UNKNOWN
    assert order(tape, it).order_state is OrderState.STATUS_UNKNOWN
    assert [o.client_order_id for o in tape.state.unresolved_orders()] == [coid(it)]

    # Existence is proven: a later "absent" verdict is a contradiction, never a licence.
    tape.apply(
        OrderResolved(
            "i-entry", "c-i-entry", coid(it), Resolution.ABSENT, "not_found_after_recv_window"
        )
    )
    assert order(tape, it).order_state is OrderState.STATUS_UNKNOWN
    assert order(tape, it).ledger_state is LedgerState.UNKNOWN
    assert tape.state.count("contradictions") == 1
    assert coid(it) in tape.state.contradictions[0]

    found = venue(it, VenueOrderStatus.PARTIALLY_FILLED, lots(2))
    tape.apply(OrderResolved("i-entry", "c-i-entry", coid(it), Resolution.PRESENT, "query", found))
    assert order(tape, it).ledger_state is LedgerState.PARTIALLY_FILLED
    assert tape.state.unresolved_orders() == []
    tape.assert_replays()


# --------------------------------------------------------------------------- (f) late fill


def test_late_fill_after_cancel_is_a_contradiction_but_moves_the_position():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(CancelRequested("i-entry", "c-i-entry", coid(it), "operator"))
    tape.apply(
        CancelResolved(
            "i-entry", "c-i-entry", coid(it), "cancel_ack", venue(it, VenueOrderStatus.CANCELED)
        )
    )
    ops = tape.apply(trade(it, "91", lots(3)))
    assert [op.key for op in fill_ops(ops)] == [(BTC, "91")]  # the fill is stored (I10)
    assert tape.state.count("contradictions") == 1
    assert "91" in tape.state.contradictions[0]
    assert tape.state.position(BTC) == lots(3)
    assert order(tape, it).ledger_state is LedgerState.CANCELED  # the verdict is not rewritten
    assert order(tape, it).filled_qty == lots(3)
    tape.assert_replays()


def test_fill_for_an_absent_order_is_a_contradiction_and_still_counts():
    tape = Tape()
    it = limit_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    tape.apply(OrderOutcomeUnknown("i-entry", "c-i-entry", coid(it), "AMBIGUOUS", None, "timeout"))
    tape.apply(
        OrderResolved(
            "i-entry", "c-i-entry", coid(it), Resolution.ABSENT, "not_found_after_recv_window"
        )
    )
    tape.apply(trade(it, "99", lots(10)))
    assert tape.state.position(BTC) == lots(10)
    assert tape.state.count("contradictions") == 1
    assert order(tape, it).ledger_state is LedgerState.ABSENT
    tape.assert_replays()


def test_overfill_is_a_contradiction_and_the_position_follows_the_trades():
    tape = Tape()
    it = limit_buy(qty=lots(5))
    placed(tape, it)
    tape.apply(trade(it, "1", lots(4)))
    tape.apply(trade(it, "2", lots(4)))  # 8 > 5: arithmetic that cannot be true
    assert tape.state.position(BTC) == lots(8)
    assert tape.state.count("contradictions") == 1
    (local,) = tape.state.local_view().orders
    assert local.filled_qty == lots(5)  # capped: the view never claims more than the order
    tape.assert_replays()


# --------------------------------------------------------------------------- (g) flags and legs


def test_halts_from_two_sources_hold_until_both_clear():
    tape = Tape()
    halted: list[bool] = [tape.state.halted]
    tape.apply(HaltChanged(True, "maintenance", "operator"))
    tape.apply(HaltChanged(True, "daily_loss", "kill_switch"))
    halted.append(tape.state.halted)
    assert tape.state.halt_reason == "kill_switch: daily_loss; operator: maintenance"
    tape.apply(HaltChanged(False, "resume", "operator"))
    halted.append(tape.state.halted)
    assert tape.state.halt_reason == "kill_switch: daily_loss"
    tape.apply(HaltChanged(False, "resume", "operator"))  # resuming twice is harmless
    halted.append(tape.state.halted)
    tape.apply(HaltChanged(False, "reset", "kill_switch"))
    halted.append(tape.state.halted)
    assert halted == [False, True, True, True, False]
    assert tape.state.halt_reason == ""
    tape.assert_replays()


def test_symbol_freeze_and_clear():
    tape = Tape()
    tape.apply(SymbolFrozen(ETH, True, "foreign_order"))
    tape.apply(SymbolFrozen(BTC, True, "unknown_exposure"))
    assert tape.state.frozen_symbols == {ETH: "foreign_order", BTC: "unknown_exposure"}
    tape.apply(SymbolFrozen(ETH, False, "operator"))
    assert tape.state.frozen_symbols == {BTC: "unknown_exposure"}
    tape.assert_replays()


def test_position_sync_overrides_the_leg_and_later_fills_add_to_it():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "1", lots(10)))
    ops = tape.apply(
        PositionSynced(BTC, PositionSide.BOTH, lots(7), lots(10), "position_drift", "c-r1")
    )
    assert ops == ()
    assert tape.state.position(BTC) == lots(7)
    assert tape.state.count("position_synced") == 1
    exit_ = market_exit(qty=lots(7))
    tape.apply(accepted(exit_))
    tape.apply(sending(exit_))
    tape.apply(trade(exit_, "2", lots(7)))
    assert tape.state.position(BTC) == ZERO
    # Syncing a flat leg to a venue position (an adopted orphan position).
    tape.apply(PositionSynced(ETH, PositionSide.SHORT, Decimal("-0.3"), ZERO, "orphan", "c-r2"))
    assert tape.state.position(ETH, PositionSide.SHORT) == Decimal("-0.3")
    assert tape.state.position(ETH) == ZERO  # the BOTH leg is another leg
    tape.apply(PositionSynced(ETH, PositionSide.SHORT, ZERO, Decimal("-0.3"), "phantom", "c-r3"))
    assert tape.state.legs[(ETH, PositionSide.SHORT)].opened_wall_ms is None
    tape.assert_replays()


def test_backfill_completed_sets_the_trade_cursor():
    tape = Tape()
    ops = tape.apply(BackfillCompleted(BTC, "100", 12, 3, "c-bf", cursor="112"))
    assert ops == (SetCursor("trades:BTCUSDT", "112"),)
    assert tape.state.cursors == {"trades:BTCUSDT": "112"}
    assert tape.apply(BackfillCompleted(BTC, "112", 0, 0, "c-bf2")) == ()
    assert tape.state.cursors == {"trades:BTCUSDT": "112"}
    tape.apply(BackfillCompleted(BTC, "112", 5, 5, "c-bf3", cursor="117"))
    assert tape.state.cursors == {"trades:BTCUSDT": "117"}
    tape.assert_replays()


def test_bookkeeping_events_update_counters_and_posture():
    tape = Tape()
    tape.apply(SystemStarted(3, "0.1.0", "sim", "crash"))
    assert tape.state.incarnation == 3
    tape.apply(RetryScheduled("i", "c", "x", "create", 1, 0.2, "RETRYABLE", "503"))
    tape.apply(RetryScheduled("i", "c", "x", "cancel", 2, 0.4, "RETRYABLE", "503"))
    assert tape.state.count("retries.RETRYABLE") == 2
    assert tape.state.count("retries.create") == 1
    tape.apply(ActorCrashed("router", "ValueError", "boom", 1.0))
    assert tape.state.count("actor_crashes") == 1
    tape.apply(ReconcileCompleted("2 mismatches", False, 1, ("position_drift",), (), (), "c-1"))
    tape.apply(ReconcileCompleted("clean", True, 0, (), (), (), "c-2"))
    assert tape.state.count("reconcile_runs") == 2
    assert tape.state.count("reconcile_mismatch_runs") == 1
    assert tape.state.last_reconcile is not None
    assert tape.state.last_reconcile.clean
    knobs = knobs_for(0.5, PostureMode.ORANGE, PostureConfig())
    tape.apply(PostureChanged("ORANGE", "YELLOW", 0.5, ("stream_gap",), ("clean_x3",), knobs))
    assert tape.state.posture is not None
    assert tape.state.posture.knobs == knobs
    tape.apply(IntentRejected("i-9", "c-9", "posture_blocks_entries", "ORANGE"))
    assert status(tape, "i-9") is IntentStatus.REJECTED
    assert tape.state.count("intent_rejected.posture_blocks_entries") == 1
    tape.apply(StreamGapObserved(1.0, 2.5, "disconnect"))
    assert tape.state.events_applied == 9
    tape.assert_replays()


def _down_ms(state: AccountState) -> int | None:
    """Read through a call: mypy would keep an earlier ``is None`` narrowing otherwise."""
    return state.stream_down_since_ms


def test_an_open_stream_outage_is_kept_in_wall_time_until_its_gap():
    tape = Tape()
    assert _down_ms(tape.state) is None
    # Reported 2.5 s after the stream's last frame: the outage began 2.5 s before the row.
    tape.apply(StreamDown(since=100.0, detected_at=102.5, reason="ping_timeout"))
    began = tape.wall - 2_500
    assert _down_ms(tape.state) == began
    # A second report of the same outage does not move its start.
    tape.apply(StreamDown(since=101.0, detected_at=110.0, reason="stream_ended"), dt=5_000)
    assert _down_ms(tape.state) == began
    replayed = tape.replayed()
    assert _down_ms(replayed) == began
    tape.apply(StreamGapObserved(100.0, 130.0, "ping_timeout"))
    assert _down_ms(tape.state) is None
    assert _down_ms(tape.replayed()) is None


def test_wall_clock_stepping_back_never_moves_fold_time_back():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "1", lots(2)), dt=5_000)
    high = tape.wall
    # The wall clock stepped back across a restart: the fold's time stays put.
    ops = tape.apply(trade(it, "2", lots(2)), dt=-60_000)
    assert only_row(ops).updated_wall_ms == high
    assert tape.state.legs[(BTC, PositionSide.BOTH)].updated_wall_ms == high
    assert tape.state.position(BTC) == lots(4)
    tape.assert_replays()


# --------------------------------------------------------------------------- (h) close-position


def test_close_position_stop_follows_venue_status():
    tape = Tape()
    entry, stop = limit_buy(), close_stop()
    placed(tape, entry)
    tape.apply(trade(entry, "1", lots(10)))
    tape.apply(accepted(stop))
    row = only_row(tape.apply(sending(stop)))
    assert row.state is LedgerState.SENDING
    assert row.risk_increasing is False
    assert order(tape, stop).tracker is None
    assert order(tape, stop).order_state is None
    assert order(tape, stop).conditional

    assert only_row(tape.apply(acked(stop))).state is LedgerState.ACKED
    protective = tape.state.local_view().protective_orders
    assert [o.client_order_id for o in protective] == [coid(stop)]
    assert protective[0].quantity is None
    assert protective[0].close_position
    assert protective[0].role is Role.SL

    # The stop triggers and fills: the fill moves the leg, the status waits for the venue.
    ops = tape.apply(trade(stop, "2", lots(10)))
    assert only_row(ops).state is LedgerState.ACKED
    assert tape.state.position(BTC) == ZERO
    assert order(tape, stop).filled_qty == lots(10)
    row = only_row(
        tape.apply(observed(stop, VenueOrderStatus.FILLED, source="stream", at_ms=tape.wall))
    )
    assert row.state is LedgerState.FILLED
    assert status(tape, "i-stop") is IntentStatus.DONE
    tape.assert_replays()


def test_close_position_stop_ambiguous_create_and_absence():
    tape = Tape()
    stop = close_stop()
    tape.apply(accepted(stop))
    tape.apply(sending(stop))
    tape.apply(OrderOutcomeUnknown("i-stop", "c-i-stop", coid(stop), "AMBIGUOUS", None, "timeout"))
    assert order(tape, stop).ledger_state is LedgerState.UNKNOWN
    assert [o.client_order_id for o in tape.state.unresolved_orders()] == [coid(stop)]
    tape.apply(
        OrderResolved(
            "i-stop", "c-i-stop", coid(stop), Resolution.ABSENT, "not_found_after_recv_window"
        )
    )
    assert order(tape, stop).ledger_state is LedgerState.ABSENT
    assert status(tape, "i-stop") is IntentStatus.OPEN
    tape.apply(sending(stop, gen=1))
    tape.apply(OrderRejected("i-stop", "c-i-stop", coid(stop, 1), "FATAL", -2021, "would_trigger"))
    assert order(tape, stop, 1).ledger_state is LedgerState.REJECTED
    assert status(tape, "i-stop") is IntentStatus.DONE
    tape.assert_replays()


def test_close_position_stop_gone_after_cancel_becomes_unknown_not_live_forever():
    # -2011 then "not found" for a close-position stop: like a tracked order, its status is
    # unknown and the Router must query it; leaving it ACKED would show a live stop forever.
    tape = Tape()
    stop = close_stop()
    placed(tape, stop)
    tape.apply(CancelRequested("i-stop", "c-i-stop", coid(stop), "replace"))
    row = only_row(
        tape.apply(
            CancelResolved("i-stop", "c-i-stop", coid(stop), "cancel_rejected+not_found", None)
        )
    )
    assert row.state is LedgerState.UNKNOWN
    assert [o.client_order_id for o in tape.state.unresolved_orders()] == [coid(stop)]
    tape.apply(observed(stop, VenueOrderStatus.CANCELED, at_ms=tape.wall))
    assert order(tape, stop).ledger_state is LedgerState.CANCELED
    tape.assert_replays()


def test_close_position_stop_missing_from_snapshot_becomes_unknown():
    tape = Tape()
    stop = close_stop()
    placed(tape, stop)
    row = only_row(tape.apply(OrderMissing("i-stop", "c-i-stop", coid(stop), tape.wall)))
    assert row.state is LedgerState.UNKNOWN
    assert tape.state.unresolved_orders() == [order(tape, stop)]
    tape.assert_replays()


def test_close_position_stop_terminal_status_absorbs_create_side_news():
    tape = Tape()
    stop = close_stop()
    placed(tape, stop)
    tape.apply(observed(stop, VenueOrderStatus.CANCELED, at_ms=tape.wall))
    # A late ambiguity or absence verdict about the create cannot reopen a canceled stop.
    tape.apply(OrderOutcomeUnknown("i-stop", "c-i-stop", coid(stop), "AMBIGUOUS", None, "late"))
    tape.apply(OrderMissing("i-stop", "c-i-stop", coid(stop), tape.wall))
    assert order(tape, stop).ledger_state is LedgerState.CANCELED
    assert tape.state.unresolved_orders() == []
    tape.assert_replays()


# --------------------------------------------------------------------------- (i) local view


def test_local_view_matches_the_state_and_leaves_out_terminal_orders():
    tape = Tape()
    done = limit_buy("i-done", lots(2))
    resting = limit_buy("i-rest", lots(5))
    canceling = limit_buy("i-cxl", lots(3))
    inflight = limit_buy("i-fly", lots(1))
    stop = close_stop()
    placed(tape, done)
    tape.apply(trade(done, "1", lots(2)))
    placed(tape, resting)
    tape.apply(trade(resting, "2", lots(1)))
    placed(tape, canceling)
    tape.apply(CancelRequested("i-cxl", "c-i-cxl", coid(canceling), "operator"))
    tape.apply(accepted(inflight))
    tape.apply(sending(inflight, sent_wall_ms=T0 + 12_345))
    placed(tape, stop)
    tape.apply(IntentRejected("i-no", "c-i-no", "halted"))

    view = tape.state.local_view()
    assert isinstance(view, LocalView)
    by_id = {o.client_order_id: o for o in view.orders}
    assert set(by_id) == {coid(resting), coid(canceling), coid(inflight), coid(stop)}
    assert by_id[coid(resting)].state is LocalOrderState.OPEN
    assert by_id[coid(canceling)].state is LocalOrderState.CANCELING
    assert by_id[coid(inflight)].state is LocalOrderState.SENDING
    assert by_id[coid(stop)].state is LocalOrderState.OPEN
    for rec in tape.state.live_orders():
        local = by_id[rec.client_order_id]
        assert local == LocalOrder(
            intent_id=rec.intent_id,
            client_order_id=rec.client_order_id,
            symbol=rec.request.symbol,
            side=rec.request.side,
            role=Role.SL if rec.intent_id == "i-stop" else Role.ENTRY,
            quantity=rec.request.quantity,
            placed_at=rec.sent_wall_ms / 1000.0,
            filled_qty=rec.filled_qty,
            state=local.state,
            reduce_only=rec.request.reduce_only,
            close_position=rec.request.close_position,
            stop_price=rec.request.stop_price,
            position_side=rec.request.position_side,
        )
    assert by_id[coid(inflight)].placed_at == (T0 + 12_345) / 1000.0
    assert by_id[coid(resting)].filled_qty == lots(1)

    leg = tape.state.legs[(BTC, PositionSide.BOTH)]
    assert leg.opened_wall_ms is not None
    assert leg.updated_wall_ms is not None
    assert view.positions == (
        LocalPosition(
            symbol=BTC,
            quantity=lots(3),
            position_side=PositionSide.BOTH,
            opened_at=leg.opened_wall_ms / 1000.0,
            updated_at=leg.updated_wall_ms / 1000.0,
        ),
    )
    assert view.known_intents == {
        "i-done": IntentStanding.CLOSED,
        "i-rest": IntentStanding.OPEN,
        "i-cxl": IntentStanding.OPEN,
        "i-fly": IntentStanding.OPEN,
        "i-stop": IntentStanding.OPEN,
        "i-no": IntentStanding.CLOSED,
    }
    tape.assert_replays()


def test_adopted_order_enters_the_ledger_and_the_view():
    tape = Tape()
    it = limit_buy("i-lost")
    # The venue lists an order with our prefix that the ledger never recorded.
    ops = tape.apply(
        OrderAdopted(
            "i-lost",
            "c-adopt",
            coid(it),
            venue(it, VenueOrderStatus.NEW, order_id="55"),
            "ours_unknown_intent",
        )
    )
    row = only_row(ops)
    assert row.state is LedgerState.ACKED
    assert row.generation == 0
    assert row.venue_order_id == "55"
    assert row.risk_increasing is True
    (local,) = tape.state.local_view().orders
    assert local.client_order_id == coid(it)
    assert local.state is LocalOrderState.OPEN
    tape.apply(trade(it, "3", lots(10)))
    assert order(tape, it).ledger_state is LedgerState.FILLED
    tape.assert_replays()


# --------------------------------------------------------------------------- (j) foreign fills


def test_foreign_fill_moves_the_position_and_is_counted():
    tape = Tape()
    fill = Fill(
        symbol=BTC,
        trade_id="31337",
        order_id="999",
        client_order_id="web_Xy12abc",  # the operator traded by hand in the web UI
        side=Side.SELL,
        quantity=lots(2),
        price=Decimal("64100"),
    )
    ops = tape.apply(FillApplied("", "", fill, "stream"))
    assert len(ops) == 1
    assert isinstance(ops[0], InsertFill)
    assert ops[0].client_order_id == "web_Xy12abc"
    assert tape.state.position(BTC) == -lots(2)
    assert tape.state.foreign_fills == 1
    assert tape.state.orders == {}
    with pytest.raises(DuplicateFill):
        tape.apply(FillApplied("", "", fill, "backfill"))
    assert tape.state.foreign_fills == 1
    tape.assert_replays()


def test_events_for_unknown_orders_are_counted_not_fatal():
    tape = Tape()
    ops = tape.apply(CancelResolved("", "orphan:77", "venue:77", "foreign_order", None))
    assert ops == ()
    tape.apply(observed(limit_buy("i-ghost"), VenueOrderStatus.NEW, at_ms=tape.wall))
    assert tape.state.count("events_for_unknown_orders") == 1
    assert tape.state.count("observed_foreign_orders") == 1
    tape.assert_replays()


def test_inconsistent_venue_record_is_a_contradiction_not_a_crash():
    # A venue report that cannot be true (status NEW with an executed quantity, or
    # PARTIALLY_FILLED with none) must not stop the fold: it is recorded and reconciled.
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(observed(it, VenueOrderStatus.NEW, lots(3), at_ms=tape.wall))
    tape.apply(observed(it, VenueOrderStatus.PARTIALLY_FILLED, ZERO, at_ms=tape.wall))
    assert tape.state.count("contradictions") == 2
    assert order(tape, it).ledger_state is LedgerState.ACKED
    tape.assert_replays()


# --------------------------------------------------------------------------- (j) old news


def market_buy(intent_id: str = "i-mkt", qty: Decimal = TEN_LOTS) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.BUY,
        quantity=qty,
        correlation_id=f"c-{intent_id}",
    )


def test_market_fill_acked_before_the_stream_news_is_not_a_contradiction():
    # Binance answers a market order with FILLED; the stream's NEW (and a PARTIALLY_FILLED
    # update) for it arrive afterwards, then the trades. Old steps, not contradictions.
    tape = Tape()
    it = market_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    ack = OrderAcked(
        it.intent_id, it.correlation_id, coid(it), venue(it, VenueOrderStatus.FILLED, TEN_LOTS)
    )
    assert only_row(tape.apply(ack)).state is LedgerState.FILLED
    tape.apply(observed(it, VenueOrderStatus.NEW, source="stream", at_ms=tape.wall + 50))
    tape.apply(
        observed(it, VenueOrderStatus.PARTIALLY_FILLED, lots(4), source="stream", at_ms=tape.wall)
    )
    tape.apply(trade(it, "301", lots(4)))
    tape.apply(trade(it, "302", lots(6)))
    tape.apply(observed(it, VenueOrderStatus.FILLED, TEN_LOTS, source="stream", at_ms=tape.wall))
    with pytest.raises(DuplicateFill):  # the backfill re-reads a trade: applied once (I10)
        tape.apply(trade(it, "302", lots(6), source="backfill"))
    assert tape.state.contradictions == []
    assert tape.state.count("contradictions") == 0
    assert tape.state.count("stale_observations") == 2
    assert tape.state.count("fills") == 2
    assert order(tape, it).filled_qty == TEN_LOTS
    assert order(tape, it).ledger_state is LedgerState.FILLED
    assert tape.state.position(BTC) == TEN_LOTS
    assert status(tape, it.intent_id) is IntentStatus.DONE
    tape.assert_replays()


def test_stream_new_before_the_ack_is_the_create_step():
    tape = Tape()
    it = market_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    tape.apply(observed(it, VenueOrderStatus.NEW, source="stream", at_ms=tape.wall))
    assert order(tape, it).order_state is OrderState.LIVE
    tape.apply(trade(it, "311", TEN_LOTS))
    tape.apply(
        OrderAcked(
            it.intent_id, it.correlation_id, coid(it), venue(it, VenueOrderStatus.FILLED, TEN_LOTS)
        )
    )
    assert order(tape, it).ledger_state is LedgerState.FILLED
    assert tape.state.contradictions == []
    assert tape.state.count("fills") == 1
    tape.assert_replays()


@pytest.mark.parametrize(
    ("late", "what"),
    [
        # A different terminal status after FILLED.
        (
            lambda it, at: observed(
                it, VenueOrderStatus.CANCELED, lots(3), source="stream", at_ms=at
            ),
            "CANCELED",
        ),
        # A query (not a pushed step) taken after the close says the order is open.
        (
            lambda it, at: observed(it, VenueOrderStatus.NEW, source="query", at_ms=at),
            "QUERY_FOUND_OPEN",
        ),
        # A report that cannot be true: status NEW with an executed quantity.
        (
            lambda it, at: observed(it, VenueOrderStatus.NEW, lots(2), source="stream", at_ms=at),
            "cum_qty",
        ),
    ],
)
def test_real_contradictions_after_a_fill_are_still_recorded(late, what):
    tape = Tape()
    it = market_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    tape.apply(
        OrderAcked(
            it.intent_id, it.correlation_id, coid(it), venue(it, VenueOrderStatus.FILLED, TEN_LOTS)
        )
    )
    tape.apply(late(it, tape.wall + 10))
    assert tape.state.count("contradictions") == 1
    assert what in tape.state.contradictions[0]
    assert tape.state.count("stale_observations") == 0
    assert order(tape, it).ledger_state is LedgerState.FILLED  # the verdict stands
    tape.assert_replays()


def test_after_a_cancel_more_executed_than_the_close_counted_is_a_contradiction():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(CancelRequested("i-entry", "c-i-entry", coid(it), "operator"))
    final = venue(it, VenueOrderStatus.CANCELED, lots(3))
    tape.apply(CancelResolved("i-entry", "c-i-entry", coid(it), "cancel_ack", final))
    # An earlier step within the close's count: old news.
    tape.apply(
        observed(it, VenueOrderStatus.PARTIALLY_FILLED, lots(2), source="stream", at_ms=tape.wall)
    )
    assert tape.state.count("stale_observations") == 1
    assert tape.state.contradictions == []
    # Beyond it: the close said 3 lots executed, the stream now says 5.
    tape.apply(
        observed(it, VenueOrderStatus.PARTIALLY_FILLED, lots(5), source="stream", at_ms=tape.wall)
    )
    assert tape.state.count("contradictions") == 1
    # A close report with less executed than the journal's trades is one too.
    tape.apply(trade(it, "321", lots(3), source="backfill"))
    tape.apply(observed(it, VenueOrderStatus.CANCELED, lots(1), source="stream", at_ms=tape.wall))
    assert tape.state.count("contradictions") == 2
    assert order(tape, it).ledger_state is LedgerState.CANCELED
    tape.assert_replays()


def test_a_late_create_step_for_an_absent_order_is_a_contradiction():
    tape = Tape()
    it = limit_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    tape.apply(OrderOutcomeUnknown("i-entry", "c-i-entry", coid(it), "AMBIGUOUS", None, "timeout"))
    tape.apply(
        OrderResolved(
            "i-entry", "c-i-entry", coid(it), Resolution.ABSENT, "not_found_after_recv_window"
        )
    )
    tape.apply(observed(it, VenueOrderStatus.NEW, source="stream", at_ms=tape.wall))
    assert tape.state.count("contradictions") == 1
    assert tape.state.count("stale_observations") == 0
    tape.assert_replays()


def test_a_late_stream_new_does_not_reopen_an_order_whose_status_is_unknown():
    # The snapshot no longer lists it; the stream's NEW that arrives now is the create step,
    # not news that it is open: only a query (or a fill, a close) settles it.
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(OrderMissing("i-entry", "c-i-entry", coid(it), tape.wall))
    tape.apply(observed(it, VenueOrderStatus.NEW, source="stream", at_ms=tape.wall))
    assert order(tape, it).order_state is OrderState.STATUS_UNKNOWN
    assert tape.state.backfills_since_missing(order(tape, it)) == 0
    tape.apply(observed(it, VenueOrderStatus.NEW, source="query", at_ms=tape.wall))
    assert order(tape, it).order_state is OrderState.LIVE
    assert tape.state.backfills_since_missing(order(tape, it)) is None
    assert tape.state.contradictions == []
    tape.assert_replays()


def test_close_position_stop_late_steps_and_contradictions():
    tape = Tape()
    stop = close_stop()
    placed(tape, stop)
    tape.apply(observed(stop, VenueOrderStatus.FILLED, source="stream", at_ms=tape.wall))
    tape.apply(observed(stop, VenueOrderStatus.NEW, source="stream", at_ms=tape.wall))
    assert order(tape, stop).ledger_state is LedgerState.FILLED
    assert tape.state.count("stale_observations") == 1
    assert tape.state.contradictions == []
    # A query that finds a filled stop open, or canceled, contradicts it; it stays FILLED.
    tape.apply(observed(stop, VenueOrderStatus.NEW, source="query", at_ms=tape.wall))
    tape.apply(observed(stop, VenueOrderStatus.CANCELED, source="stream", at_ms=tape.wall))
    assert tape.state.count("contradictions") == 2
    assert order(tape, stop).ledger_state is LedgerState.FILLED
    assert tape.state.live_orders() == []
    tape.assert_replays()


# --------------------------------------------------------------------------- (k) vanished orders


def closed_proof(it: Intent, gen: int = 0) -> OrderResolved:
    return OrderResolved(
        it.intent_id, it.correlation_id, coid(it, gen), Resolution.CLOSED, "vanished_after_existing"
    )


def backfill_done() -> BackfillCompleted:
    return BackfillCompleted(BTC, "5", 0, 0, "routine", cursor="5")


def test_vanish_evidence_is_kept_per_order_and_reset_by_open_news():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(backfill_done())
    assert tape.state.backfills == {BTC: 1}
    assert tape.state.backfills_since_missing(order(tape, it)) is None
    tape.apply(OrderMissing("i-entry", "c-i-entry", coid(it), tape.wall))
    tape.apply(OrderMissing("i-entry", "c-i-entry", coid(it), tape.wall))  # the first one counts
    tape.apply(backfill_done())
    tape.apply(BackfillCompleted(ETH, "9", 0, 0, "routine", cursor="9"))  # another symbol
    assert tape.state.backfills_since_missing(order(tape, it)) == 1
    tape.apply(trade(it, "331", lots(2), source="backfill"))  # a fill: count again from here
    assert tape.state.backfills_since_missing(order(tape, it)) == 0
    tape.apply(backfill_done())
    assert tape.state.backfills_since_missing(order(tape, it)) == 1
    found = venue(it, VenueOrderStatus.PARTIALLY_FILLED, lots(2))
    tape.apply(OrderResolved("i-entry", "c-i-entry", coid(it), Resolution.PRESENT, "query", found))
    assert order(tape, it).ledger_state is LedgerState.PARTIALLY_FILLED
    assert tape.state.backfills_since_missing(order(tape, it)) is None
    tape.assert_replays()


def test_an_order_that_existed_is_closed_with_the_fills_it_had():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "341", lots(3)))
    tape.apply(OrderMissing("i-entry", "c-i-entry", coid(it), tape.wall))
    assert order(tape, it).is_unresolved
    row = only_row(tape.apply(closed_proof(it)))
    assert row.state is LedgerState.CANCELED
    assert order(tape, it).order_state is OrderState.CANCELED
    assert order(tape, it).filled_qty == lots(3)
    assert tape.state.unresolved_orders() == []
    assert status(tape, "i-entry") is IntentStatus.DONE  # closed, not absent: no next generation
    assert tape.state.position(BTC) == lots(3)
    assert tape.state.count("resolved_closed.vanished_after_existing") == 1
    # A trade found later beyond what it had executed is a late fill: real, counted, flagged.
    tape.apply(trade(it, "342", lots(1), source="backfill"))
    assert tape.state.count("contradictions") == 1
    assert tape.state.position(BTC) == lots(4)
    assert order(tape, it).ledger_state is LedgerState.CANCELED
    tape.assert_replays()


def test_closing_is_refused_for_an_order_never_shown_to_exist_or_still_open():
    tape = Tape()
    ghost, live = limit_buy("i-ghost"), limit_buy("i-live")
    tape.apply(accepted(ghost))
    tape.apply(sending(ghost))
    tape.apply(OrderOutcomeUnknown("i-ghost", "c-i-ghost", coid(ghost), "AMBIGUOUS", None, "t/o"))
    assert not order(tape, ghost).existence_proven
    tape.apply(closed_proof(ghost))
    assert order(tape, ghost).ledger_state is LedgerState.UNKNOWN  # ABSENT's case, not ours
    placed(tape, live)
    assert order(tape, live).existence_proven
    tape.apply(closed_proof(live))
    assert order(tape, live).order_state is OrderState.LIVE
    assert tape.state.count("contradictions") == 2
    assert tape.state.count("resolved_closed.vanished_after_existing") == 0
    tape.assert_replays()


def test_close_position_stop_answered_4116_exists_and_can_be_closed_not_proven_absent():
    tape = Tape()
    stop = close_stop()
    tape.apply(accepted(stop))
    tape.apply(sending(stop))
    tape.apply(
        OrderResolved("i-stop", "c-i-stop", coid(stop), Resolution.PRESENT, "duplicate_client_id")
    )
    assert order(tape, stop).ledger_state is LedgerState.UNKNOWN
    assert order(tape, stop).venue_order_id is None
    assert order(tape, stop).existence_proven
    # I7: existence is proven, so an ABSENT verdict is a contradiction and changes nothing.
    tape.apply(
        OrderResolved(
            "i-stop", "c-i-stop", coid(stop), Resolution.ABSENT, "not_found_after_recv_window"
        )
    )
    assert order(tape, stop).ledger_state is LedgerState.UNKNOWN
    assert tape.state.count("contradictions") == 1
    tape.apply(closed_proof(stop))
    assert order(tape, stop).ledger_state is LedgerState.CANCELED
    assert status(tape, "i-stop") is IntentStatus.DONE
    tape.assert_replays()


# --------------------------------------------------------------------------- property: I5, I10

# A small universe of intents, so random steps hit the same orders, legs and trade ids.
UNIVERSE: tuple[Intent, ...] = (
    limit_buy("p-entry", lots(6)),
    market_exit("p-exit", lots(4)),
    close_stop("p-stop", ETH),
    Intent(
        intent_id="p-short",
        symbol=ETH,
        side=Side.SELL,
        quantity=lots(3),
        order_type=OrderType.LIMIT,
        price=Decimal("3100"),
        time_in_force=TimeInForce.GTX,
        position_side=PositionSide.SHORT,
    ),
)
# Open statuses twice: most reports about a working order say it is still working.
STATUSES = (*VenueOrderStatus, VenueOrderStatus.NEW, VenueOrderStatus.PARTIALLY_FILLED)
OPS = (
    "accept",
    "send",
    "ack",
    "unknown",
    "resolve_present",
    "resolve_absent",
    "resolve_closed",
    "duplicate_id",
    *("fill",) * 7,  # trades dominate a real journal
    *("observe",) * 3,
    "reject",
    "cancel_request",
    "cancel_resolved",
    "cancel_failed",
    "missing",
    "adopt",
    "halt",
    "freeze",
    "sync",
    "backfill",
    "foreign_fill",
    "retry",
)

# One step as plain data: (op, intent, generation, n, status, dt_ms).
steps = st.tuples(
    st.sampled_from(OPS),
    st.integers(0, len(UNIVERSE) - 1),
    st.sampled_from((0, 0, 0, 1)),  # mostly the first generation, sometimes the next
    st.integers(0, 12),
    st.integers(0, len(STATUSES) - 1),
    # Time mostly moves on; now and then the wall clock steps back (a restart, NTP).
    st.one_of(*[st.integers(0, 2_000)] * 4, st.integers(-3_000, -1)),
)


def consistent_venue(it: Intent, gen: int, n: int, status: VenueOrderStatus) -> VenueOrder:
    """A venue report whose executed quantity fits its status (the adapter's contract)."""
    qty = it.quantity
    if qty is None:
        filled = ZERO
    elif status is VenueOrderStatus.FILLED:
        filled = qty
    elif status is VenueOrderStatus.PARTIALLY_FILLED:
        steps_in = int(qty / LOT)
        if steps_in < 2:
            status, filled = VenueOrderStatus.NEW, ZERO
        else:
            filled = lots(1 + n % (steps_in - 1))
    elif status in (VenueOrderStatus.NEW, VenueOrderStatus.REJECTED):
        filled = ZERO
    else:
        filled = lots(n) if lots(n) <= qty else qty
    return venue(it, status, filled, gen=gen, order_id=f"{7000 + gen}")


def make_event(step: tuple[str, int, int, int, int, int], wall: int) -> Event:
    op, idx, gen, n, st_idx, _ = step
    it = UNIVERSE[idx]
    c = coid(it, gen)
    iid, cid = it.intent_id, it.correlation_id
    status = STATUSES[st_idx]
    if op == "accept":
        return accepted(it)
    if op == "send":
        return sending(it, gen, sent_wall_ms=wall)
    if op == "ack":
        return OrderAcked(iid, cid, c, consistent_venue(it, gen, 0, VenueOrderStatus.NEW))
    if op == "unknown":
        return OrderOutcomeUnknown(iid, cid, c, "AMBIGUOUS", None, "timeout")
    if op == "resolve_present":
        return OrderResolved(
            iid, cid, c, Resolution.PRESENT, "query", consistent_venue(it, gen, n, status)
        )
    if op == "resolve_absent":
        return OrderResolved(iid, cid, c, Resolution.ABSENT, "not_found_after_recv_window")
    if op == "resolve_closed":
        return OrderResolved(iid, cid, c, Resolution.CLOSED, "vanished_after_existing")
    if op == "duplicate_id":
        return OrderResolved(iid, cid, c, Resolution.PRESENT, "duplicate_client_id")
    if op == "fill":
        return trade(
            it, f"t{n}", lots(1 + n % 4), gen=gen, source="stream" if n % 2 else "backfill"
        )
    if op == "observe":
        source = ("stream", "query", "snapshot")[n % 3]
        # Observation stamps may run a little ahead of the journal's clock (another host).
        return OrderObserved(
            iid, cid, c, consistent_venue(it, gen, n, status), source, wall + 200 - 50 * (n % 8)
        )
    if op == "reject":
        return OrderRejected(iid, cid, c, "FATAL", -2019, "margin")
    if op == "cancel_request":
        return CancelRequested(iid, cid, c, "operator")
    if op == "cancel_resolved":
        final = (
            None
            if n % 3 == 0
            else consistent_venue(
                it, gen, n, (VenueOrderStatus.CANCELED, VenueOrderStatus.EXPIRED)[n % 2]
            )
        )
        return CancelResolved(iid, cid, c, "cancel_ack", final)
    if op == "cancel_failed":
        return CancelFailed(iid, cid, c, "timeout", n % 2 == 0)
    if op == "missing":
        return OrderMissing(iid, cid, c, wall - 100 * n)
    if op == "adopt":
        return OrderAdopted(iid, cid, c, consistent_venue(it, gen, n, VenueOrderStatus.NEW), "ours")
    if op == "halt":
        return HaltChanged(n % 2 == 0, "test", ("operator", "kill_switch")[gen])
    if op == "freeze":
        return SymbolFrozen(it.symbol, n % 2 == 0, "test")
    if op == "sync":
        return PositionSynced(it.symbol, it.position_side, lots(n - 6), ZERO, "drift", "c-sync")
    if op == "backfill":
        return BackfillCompleted(it.symbol, None, n, 0, "c-bf", cursor=None if n % 2 else f"t{n}")
    if op == "foreign_fill":
        fill = Fill(
            it.symbol,
            f"t{n}",
            "1",
            "web_foreign",
            (Side.BUY, Side.SELL)[gen],
            lots(1 + n % 3),
            Decimal(100),
        )
        return FillApplied("", "", fill, "stream")
    assert op == "retry"
    return RetryScheduled(iid, cid, c, "create", n + 1, 0.1 * n, "RETRYABLE", "503")


@settings(max_examples=100, deadline=None)
@given(
    st.sets(st.integers(0, len(UNIVERSE) - 1), min_size=1),
    st.lists(steps, min_size=8, max_size=50),
)
def test_random_journals_replay_to_the_same_state_and_fills_count_once(
    opened: set[int], script: list[tuple[str, int, int, int, int, int]]
) -> None:
    # Some intents start accepted and sent, and most steps concern one of them, so the random
    # evidence mostly hits working orders; the rest may concern intents never sent.
    targets = sorted(opened)
    preamble = [(op, i, 0, 0, 0, 100) for i in targets for op in ("accept", "send")]
    script = preamble + [
        (op, targets[i % len(targets)] if n % 4 else i, g, n, s, dt)
        for op, i, g, n, s, dt in script
    ]
    tape = Tape()
    seen_keys: set[tuple[str, str]] = set()
    inserted: list[tuple[str, str]] = []
    expected_leg: dict[tuple[str, PositionSide], Decimal] = {}
    filled_by_order: dict[str, Decimal] = {}
    for step in script:
        event = make_event(step, max(tape.high, tape.wall + step[5]))
        if (
            isinstance(event, (OrderSending, OrderAdopted))
            and event.client_order_id in tape.state.orders
        ):
            continue  # the Router sends each client order id once; adoption is for unknown ids
        if isinstance(event, FillApplied):
            key = event.fill.key
            if key in seen_keys:
                before = tape.state.fingerprint()
                with pytest.raises(DuplicateFill):
                    tape.apply(event, dt=step[5])
                assert tape.state.fingerprint() == before
                continue
            seen_keys.add(key)
            leg = (event.fill.symbol, event.fill.position_side)
            signed = event.fill.quantity if event.fill.side is Side.BUY else -event.fill.quantity
            expected_leg[leg] = expected_leg.get(leg, ZERO) + signed
            c = event.fill.client_order_id
            if c in tape.state.orders:  # before its OrderSending a trade is foreign
                filled_by_order[c] = filled_by_order.get(c, ZERO) + event.fill.quantity
        elif isinstance(event, PositionSynced):
            expected_leg[(event.symbol, event.position_side)] = event.quantity
        # Anything but DuplicateFill escaping apply fails the test here.
        ops = tape.apply(event, dt=step[5])
        inserted.extend(op.key for op in ops if isinstance(op, InsertFill))
        assert all(isinstance(op, (UpsertLedger, InsertFill, SetCursor)) for op in ops)
        # The live-order index agrees with a scan of every order after every event.
        assert tape.state.live_orders() == [
            o for _, o in sorted(tape.state.orders.items()) if not o.is_terminal
        ]
        for o in tape.state.orders.values():
            if o.venue_order_id is not None:
                # (The generator numbers every order alike, so the first holder keeps it.)
                found = tape.state.order_by_venue_id(o.request.symbol, o.venue_order_id)
                assert found is not None
                assert found.venue_order_id == o.venue_order_id

    state = tape.state
    # I5: the journal as written replays to the same state, row for row.
    tape.assert_replays()
    # I10: every fill key applied exactly once, and only those.
    assert sorted(inserted) == sorted(seen_keys)
    assert len(inserted) == len(set(inserted))
    assert state.fill_keys == seen_keys
    assert state.count("fills") == len(seen_keys)
    # Each leg is the signed sum of its distinct fills (from its last venue sync on).
    for leg, qty in expected_leg.items():
        assert state.position(*leg) == qty, leg
    assert {k for k, v in state.legs.items() if v.quantity != ZERO} == {
        k for k, v in expected_leg.items() if v != ZERO
    }
    for c, rec in state.orders.items():
        assert rec.filled_qty == filled_by_order.get(c, ZERO), c
    # The Reconciler's view can always be built, and holds exactly the possibly-live orders.
    view = state.local_view()
    assert {o.client_order_id for o in view.orders} == {
        o.client_order_id for o in state.live_orders()
    }
    assert all(o.is_unresolved and not o.is_terminal for o in state.unresolved_orders())


def test_local_view_lists_fills_in_flight_from_the_first_report_until_journaled():
    # A market buy acked FILLED with the stream down: the ledger knows the execution, its
    # trades are not journaled. The Reconciler's grace runs from the ack, and a repeated
    # report (a query answering FILLED again) must not restart it.
    tape = Tape()
    it = market_buy()
    tape.apply(accepted(it))
    tape.apply(sending(it))
    assert tape.state.local_view().fills_in_flight == ()  # sent, nothing executed yet
    full = venue(it, VenueOrderStatus.FILLED, TEN_LOTS)
    tape.apply(OrderAcked(it.intent_id, it.correlation_id, coid(it), full))
    ack_ms = tape.wall
    tape.apply(observed(it, VenueOrderStatus.FILLED, TEN_LOTS, at_ms=tape.wall), dt=5_000)
    (flight,) = tape.state.local_view().fills_in_flight
    assert (flight.client_order_id, flight.symbol, flight.side) == (coid(it), BTC, Side.BUY)
    assert (flight.quantity, flight.since) == (TEN_LOTS, ack_ms / 1000.0)
    assert tape.state.local_view(lambda ms: ms / 1000.0 - 1_000.0).fills_in_flight[0].since == (
        ack_ms / 1000.0 - 1_000.0
    )
    tape.apply(trade(it, "401", lots(4), source="backfill"))
    (flight,) = tape.state.local_view().fills_in_flight
    assert (flight.quantity, flight.since) == (lots(6), ack_ms / 1000.0)
    tape.apply(trade(it, "402", lots(6), source="backfill"))
    assert tape.state.local_view().fills_in_flight == ()
    assert tape.state.position(BTC) == TEN_LOTS
    tape.assert_replays()


def test_fill_in_flight_of_a_resting_order_dates_from_the_report_that_showed_it():
    tape = Tape()
    it = limit_buy()
    placed(tape, it)
    tape.apply(trade(it, "501", lots(2)))
    # The stream is down; a query finds the order partially filled beyond the journaled 2.
    tape.apply(observed(it, VenueOrderStatus.PARTIALLY_FILLED, lots(2), at_ms=tape.wall))
    assert tape.state.local_view().fills_in_flight == ()  # the count is all journaled
    tape.apply(observed(it, VenueOrderStatus.PARTIALLY_FILLED, lots(5), at_ms=tape.wall))
    seen_ms = tape.wall
    tape.apply(observed(it, VenueOrderStatus.PARTIALLY_FILLED, lots(5), at_ms=tape.wall))
    (flight,) = tape.state.local_view().fills_in_flight
    assert (flight.quantity, flight.since) == (lots(3), seen_ms / 1000.0)
    (local,) = tape.state.local_view().orders
    assert local.filled_qty == lots(2)  # the order still counts only journaled fills
    tape.assert_replays()
