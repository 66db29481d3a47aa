"""Tests for scalper.chaos.checks: every safety check fires on a violating history and stays
silent on its legal twin.

The checker is driven exactly as the runner drives it (``step`` with the journal rows and
engine history records that appeared since the previous step), but with synthetic records,
so each rule is exercised on the smallest history that breaks it. A check that cannot fire
proves nothing, and a check that fires on legal trading would stop the gate for nothing;
both directions are asserted for every rule. The quiescence checks (``final``) run against
a real :class:`~scalper.venues.sim.engine.SimEngine` and a real
:class:`~scalper.state.AccountState` folded from the same journal events.
"""

import random
from collections.abc import Callable
from decimal import Decimal

import attrs
import pytest

from scalper.chaos.checks import CheckLimits, InvariantChecker, Violation
from scalper.chaos.runner import SYMBOL, chaos_sim_config
from scalper.core.ids import Role, client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.posture import GuardKnobs, PostureConfig, PostureMode, knobs_for
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.messages import (
    Event,
    FillApplied,
    HaltChanged,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    PostureChanged,
    PressureRaised,
    ReplaceAdmitted,
    Resolution,
)
from scalper.state import AccountState
from scalper.venues.sim.engine import SimEngine
from scalper.venues.sim.records import (
    AlgoTriggered,
    CloseReason,
    FillRecorded,
    HistoryRecord,
    OrderAccepted,
    OrderClosed,
)

#: 2026-01-01T00:00:00Z: the run's epoch (journal wall_ms = EPOCH + run seconds * 1000).
EPOCH = 1_767_225_600_000
BTC = "BTCUSDT"
ETH = "ETHUSDT"
QTY = Decimal("0.002")
PRICE = Decimal(60000)


def coid(intent: str, generation: int = 0, role: Role = Role.ENTRY) -> str:
    return client_order_id("sc", intent, role, generation)


def market(
    client_id: str, side: Side = Side.BUY, qty: Decimal = QTY, *, reduce_only: bool = False
) -> OrderRequest:
    return OrderRequest(BTC, side, OrderType.MARKET, client_id, qty, reduce_only=reduce_only)


def limit(client_id: str, price: Decimal = Decimal(59900), qty: Decimal = QTY) -> OrderRequest:
    return OrderRequest(
        BTC, Side.BUY, OrderType.LIMIT, client_id, qty, price=price, time_in_force=TimeInForce.GTC
    )


def stop(
    client_id: str,
    side: Side = Side.SELL,
    qty: Decimal | None = QTY,
    *,
    reduce_only: bool = True,
    close_position: bool = False,
) -> OrderRequest:
    return OrderRequest(
        BTC,
        side,
        OrderType.STOP_MARKET,
        client_id,
        None if close_position else qty,
        stop_price=Decimal(57000) if side is Side.SELL else Decimal(63000),
        reduce_only=reduce_only,
        close_position=close_position,
    )


def sending(
    intent: str, req: OrderRequest, generation: int = 0, *, risk_increasing: bool = True
) -> OrderSending:
    return OrderSending(
        intent_id=intent,
        correlation_id=f"corr-{intent}",
        client_order_id=req.client_order_id,
        generation=generation,
        request=req,
        risk_increasing=risk_increasing,
        recv_window_ms=5000,
        sent_wall_ms=EPOCH,
    )


def resolved(intent: str, client_id: str, resolution: Resolution) -> OrderResolved:
    return OrderResolved(intent, f"corr-{intent}", client_id, resolution, "query")


def unknown(intent: str, client_id: str) -> OrderOutcomeUnknown:
    return OrderOutcomeUnknown(intent, f"corr-{intent}", client_id, "timeout", None, "lost")


def green_knobs(score: float = 0.0) -> GuardKnobs:
    return knobs_for(score, PostureMode.GREEN, PostureConfig())


def posture(mode: PostureMode, knobs: GuardKnobs, previous: str = "ORANGE") -> PostureChanged:
    return PostureChanged(mode.value, previous, 0.0, (), (), knobs)


class World:
    """A checker plus the exchange history it reads, fed one record at a time like the runner.

    Journal events get consecutive ``seq`` numbers and a ``wall_ms`` at their run second;
    exchange records get consecutive engine ``seq`` numbers, order ids and trade ids.
    """

    def __init__(self, limits: CheckLimits | None = None, planted: tuple[str, ...] = ()) -> None:
        self.checker = InvariantChecker(limits or CheckLimits(), epoch_ms=EPOCH, planted=planted)
        self.history: list[HistoryRecord] = []
        self._jseq = 0
        self._ids = 0

    def log(self, event: Event, at: float = 0.0) -> list[Violation]:
        self._jseq += 1
        row = (self._jseq, EPOCH + round(at * 1000), event)
        return self.checker.step([row], (), at)

    def _venue(self, make: Callable[[int], HistoryRecord], at: float) -> list[Violation]:
        record = make(len(self.history) + 1)
        self.history.append(record)
        return self.checker.step((), self.history, at)

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def accept(
        self, req: OrderRequest, at: float = 0.0, *, parent: str | None = None
    ) -> tuple[str, list[Violation]]:
        """The exchange accepts ``req``; returns its order id and the step's violations."""
        order_id = self._next_id()
        algo = req.order_type.is_conditional and parent is None
        found = self._venue(
            lambda seq: OrderAccepted(
                seq, at, EPOCH + round(at * 1000), order_id, req.client_order_id, req, algo, parent
            ),
            at,
        )
        return order_id, found

    def fill(
        self, order_id: str, req: OrderRequest, qty: Decimal | None = None, at: float = 0.0
    ) -> tuple[Fill, list[Violation]]:
        """One trade of ``order_id`` (all of ``req``'s quantity unless ``qty``)."""
        quantity = qty if qty is not None else req.quantity
        assert quantity is not None
        fill = Fill(
            symbol=req.symbol,
            trade_id=self._next_id(),
            order_id=order_id,
            client_order_id=req.client_order_id,
            side=req.side,
            quantity=quantity,
            price=PRICE,
        )
        return fill, self._venue(lambda seq: FillRecorded(seq, at, fill), at)

    def close(self, order_id: str, req: OrderRequest, at: float = 0.0) -> list[Violation]:
        return self._venue(
            lambda seq: OrderClosed(
                seq,
                at,
                EPOCH + round(at * 1000),
                order_id,
                req.client_order_id,
                req.symbol,
                VenueOrderStatus.CANCELED,
                CloseReason.USER_CANCEL,
                Decimal(0),
                algo=req.order_type.is_conditional,
            ),
            at,
        )

    def trigger(self, algo_id: str, child_id: str, at: float = 0.0) -> list[Violation]:
        return self._venue(
            lambda seq: AlgoTriggered(
                seq,
                at,
                EPOCH + round(at * 1000),
                algo_id,
                BTC,
                Decimal(57000),
                "triggered",
                child_id,
            ),
            at,
        )

    def tick(self, at: float) -> list[Violation]:
        return self.checker.step((), (), at)

    def entry(self, intent: str, at: float = 0.0, *, fill: bool = True) -> tuple[str, OrderRequest]:
        """A legal risk-increasing entry: journaled, accepted and (by default) filled."""
        req = market(coid(intent))
        assert self.log(sending(intent, req), at) == []
        order_id, found = self.accept(req, at)
        assert found == []
        if fill:
            assert self.fill(order_id, req, at=at)[1] == []
        return order_id, req


def checks(found: list[Violation]) -> list[str]:
    return [v.check for v in found]


# --------------------------------------------------------------------------- stepping


def test_step_folds_each_record_once_even_when_fed_again():
    # The runner passes only new rows, but a re-fed row must never be judged twice: a fill
    # seen twice would look like a double journal, an acceptance twice like a second order.
    w = World()
    req = market(coid("e-1"))
    rows = [(1, EPOCH, sending("e-1", req))]
    accepted = OrderAccepted(1, 0.0, EPOCH, "1", req.client_order_id, req, False)
    fill = Fill(BTC, "t-1", "1", req.client_order_id, Side.BUY, QTY, PRICE)
    applied = (2, EPOCH, FillApplied("e-1", "corr-e-1", fill, "stream"))
    records: list[HistoryRecord] = [accepted, FillRecorded(2, 0.0, fill)]
    assert w.checker.step(rows, records, 0.0) == []
    assert w.checker.step([*rows, applied], records, 1.0) == []
    assert w.checker.step([*rows, applied], records, 2.0) == []
    assert (w.checker.journal_seq, w.checker.venue_seq) == (2, 2)
    assert w.checker.violations == []


def test_a_violation_names_its_invariant_and_describes_itself():
    v = Violation("I7.one_order_per_intent", 12.34, "2 orders", "e-1", "corr-e-1")
    assert v.invariant == "I7"
    assert v.describe() == "I7.one_order_per_intent at t=12.3s: 2 orders [intent e-1]"
    assert Violation("posture.degrades", 1.0, "never").describe().endswith("never")


# --------------------------------------------------------------------------- I7


def test_one_order_per_intent_fires_on_a_second_accepted_entry():
    # The duplicate-entry disaster: generation 0's answer was lost, a resend went out as
    # generation 1, and both rested at the exchange.
    w = World()
    first, second = market(coid("e-1", 0)), market(coid("e-1", 1))
    w.log(sending("e-1", first, 0), 1.0)
    w.log(resolved("e-1", first.client_order_id, Resolution.ABSENT), 2.0)  # a wrong proof
    w.log(sending("e-1", second, 1), 3.0)
    assert w.accept(first, 1.0)[1] == []
    _, found = w.accept(second, 3.0)
    assert checks(found) == ["I7.one_order_per_intent"]
    assert found[0].intent_id == "e-1"
    assert found[0].correlation_id == "corr-e-1"
    assert found[0].at == 3.0
    assert second.client_order_id in found[0].detail


def test_one_order_per_intent_is_silent_when_only_the_second_generation_reached_the_book():
    w = World()
    first, second = market(coid("e-1", 0)), market(coid("e-1", 1))
    w.log(sending("e-1", first, 0), 1.0)
    w.log(resolved("e-1", first.client_order_id, Resolution.ABSENT), 2.0)
    w.log(sending("e-1", second, 1), 3.0)
    assert w.accept(second, 3.0)[1] == []
    assert w.checker.violations == []


def test_one_order_per_intent_does_not_count_exits_or_other_intents():
    w = World()
    w.entry("e-1")
    w.entry("e-2")
    # An exit intent may place several reduce-only orders (a partial exit, then the rest).
    for n in range(3):
        req = market(coid("x-1", n, Role.EXIT), Side.SELL, reduce_only=True)
        w.log(sending("x-1", req, n, risk_increasing=False), 5.0 + n)
        w.log(resolved("x-1", req.client_order_id, Resolution.PRESENT), 5.5 + n)
        assert w.accept(req, 5.0 + n)[1] == []
    assert w.checker.violations == []


def test_resolve_before_resend_fires_when_a_new_generation_follows_an_unknown_one():
    w = World()
    first, second = market(coid("e-1", 0)), market(coid("e-1", 1))
    assert w.log(sending("e-1", first, 0), 1.0) == []
    assert w.log(unknown("e-1", first.client_order_id), 2.0) == []
    found = w.log(sending("e-1", second, 1), 3.0)
    assert checks(found) == ["I7.resolve_before_resend"]
    assert found[0].intent_id == "e-1"
    assert found[0].at == 3.0
    assert first.client_order_id in found[0].detail


def test_resolve_before_resend_fires_on_a_resend_before_any_answer():
    # Never answered at all (no ack, no reject): still unresolved.
    w = World()
    w.log(sending("e-1", market(coid("e-1", 0)), 0), 1.0)
    assert checks(w.log(sending("e-1", market(coid("e-1", 1)), 1), 1.5)) == [
        "I7.resolve_before_resend"
    ]


@pytest.mark.parametrize(
    "answer",
    [
        lambda c: resolved("e-1", c, Resolution.ABSENT),
        lambda c: OrderRejected("e-1", "corr-e-1", c, "rejected", -2019, "margin insufficient"),
    ],
    ids=["resolved_absent", "rejected"],
)
def test_resolve_before_resend_is_silent_once_the_earlier_generation_is_resolved(answer):
    w = World()
    first, second = market(coid("e-1", 0)), market(coid("e-1", 1))
    w.log(sending("e-1", first, 0), 1.0)
    w.log(unknown("e-1", first.client_order_id), 2.0)
    assert w.log(answer(first.client_order_id), 10.0) == []
    assert w.log(sending("e-1", second, 1), 11.0) == []


def test_resending_the_same_generation_is_not_a_new_generation():
    # A retry of the same client order id is safe (the exchange dedupes it, -4116).
    w = World()
    req = market(coid("e-1", 0))
    w.log(sending("e-1", req, 0), 1.0)
    w.log(unknown("e-1", req.client_order_id), 2.0)
    assert w.log(sending("e-1", req, 0), 3.0) == []


# --------------------------------------------------------------------------- I5


def test_journal_before_send_fires_on_an_accepted_order_the_journal_never_saw():
    w = World()
    ghost = market(coid("e-1"))
    _, found = w.accept(ghost, 7.0)
    assert checks(found) == ["I5.journal_before_send"]
    assert ghost.client_order_id in found[0].detail
    assert found[0].at == 7.0


def test_journal_before_send_is_silent_for_journaled_planted_and_foreign_orders():
    planted = coid("zombie")
    w = World(planted=(planted,))
    w.entry("e-1")  # journaled first: fine
    assert w.accept(limit(planted), 2.0)[1] == []  # the scenario planted it
    assert w.accept(limit("manual-order-7"), 3.0)[1] == []  # not our prefix: someone else's
    assert w.checker.violations == []


def test_journal_before_send_is_judged_after_the_same_steps_journal_rows():
    # Within one step the journal is folded first: an order sent and accepted between two
    # checker steps is not mistaken for an unjournaled one.
    w = World()
    req = market(coid("e-1"))
    accepted = OrderAccepted(1, 1.0, EPOCH + 1000, "1", req.client_order_id, req, False)
    found = w.checker.step([(1, EPOCH + 1000, sending("e-1", req))], [accepted], 1.0)
    assert found == []


# --------------------------------------------------------------------------- E: halt


def test_no_entry_while_halted_fires_on_a_risk_increasing_send_during_a_halt():
    w = World()
    w.log(HaltChanged(True, "operator says stop", "operator"), 1.0)
    found = w.log(sending("e-1", market(coid("e-1"))), 2.0)
    assert checks(found) == ["E.no_entry_while_halted"]
    assert "operator" in found[0].detail
    assert found[0].intent_id == "e-1"


def test_an_exit_while_halted_is_fine_and_entries_resume_after_the_halt_lifts():
    w = World()
    w.log(HaltChanged(True, "operator says stop", "operator"), 1.0)
    exit_req = market(coid("x-1", 0, Role.EXIT), Side.SELL, reduce_only=True)
    assert w.log(sending("x-1", exit_req, risk_increasing=False), 2.0) == []
    w.log(HaltChanged(False, "resumed", "operator"), 3.0)
    assert w.log(sending("e-1", market(coid("e-1"))), 4.0) == []


def test_lifting_one_halt_leaves_the_other_in_force():
    # Operator and kill switch halt independently; the operator's resume does not lift the
    # kill switch's halt.
    w = World()
    w.log(HaltChanged(True, "manual", "operator"), 1.0)
    w.log(HaltChanged(True, "posture RED", "kill_switch"), 2.0)
    w.log(HaltChanged(False, "resumed", "operator"), 3.0)
    found = w.log(sending("e-1", market(coid("e-1"))), 4.0)
    assert checks(found) == ["E.no_entry_while_halted"]
    assert "kill_switch" in found[0].detail
    assert w.checker.halt_trace[-1] == (3.0, False, "operator", "resumed")


# --------------------------------------------------------------------------- E: reduce-only


def test_reduce_only_never_increases_fires_when_a_reduce_only_fill_opens_a_position():
    w = World()
    req = market(coid("x-1", 0, Role.EXIT), Side.SELL, reduce_only=True)
    w.log(sending("x-1", req, risk_increasing=False), 1.0)
    order_id, _ = w.accept(req, 1.0)
    _, found = w.fill(order_id, req, at=1.0)
    assert checks(found) == ["E.reduce_only_never_increases"]
    assert found[0].intent_id == "x-1"
    assert "from 0 to -0.002" in found[0].detail


def test_reduce_only_never_increases_fires_when_a_fill_flips_the_position():
    w = World()
    w.entry("e-1")  # long 0.002
    req = market(coid("x-1", 0, Role.EXIT), Side.SELL, Decimal("0.005"), reduce_only=True)
    w.log(sending("x-1", req, risk_increasing=False), 1.0)
    order_id, _ = w.accept(req, 1.0)
    _, found = w.fill(order_id, req, at=1.0)  # long 0.002 -> short 0.003: |0.003| > |0.002|
    assert checks(found) == ["E.reduce_only_never_increases"]


def test_reduce_only_fills_that_reduce_are_fine():
    w = World()
    w.entry("e-1")
    w.entry("e-2")  # long 0.004
    req = market(coid("x-1", 0, Role.EXIT), Side.SELL, Decimal("0.004"), reduce_only=True)
    w.log(sending("x-1", req, risk_increasing=False), 1.0)
    order_id, _ = w.accept(req, 1.0)
    assert w.fill(order_id, req, Decimal("0.001"), 1.0)[1] == []
    assert w.fill(order_id, req, Decimal("0.003"), 1.5)[1] == []
    assert w.checker.violations == []


def test_the_order_a_close_position_stop_triggered_inherits_reduce_only():
    # The triggered child is a plain MARKET order without the flag; it still must not grow
    # the position (a stop that fires after the position was closed by hand).
    w = World()
    stop_req = stop(coid("pm-1", 0, Role.SL), close_position=True, reduce_only=False)
    w.log(sending("pm-1", stop_req, risk_increasing=False), 1.0)
    algo_id, found = w.accept(stop_req, 1.0)
    assert found == []
    child_req = market(stop_req.client_order_id, Side.SELL)
    child_id, found = w.accept(child_req, 5.0, parent=algo_id)
    assert found == []  # the child is judged through its parent, not as an unjournaled order
    w.trigger(algo_id, child_id, 5.0)
    _, found = w.fill(child_id, child_req, at=5.0)
    assert checks(found) == ["E.reduce_only_never_increases"]


# --------------------------------------------------------------------------- I10


def test_fill_journaled_once_fires_on_the_second_journal_of_a_trade():
    w = World()
    fill = Fill(BTC, "t-9", "1", coid("e-1"), Side.BUY, QTY, PRICE)
    assert w.log(FillApplied("e-1", "corr-e-1", fill, "stream"), 1.0) == []
    found = w.log(FillApplied("e-1", "corr-e-1", fill, "backfill"), 2.0)
    assert checks(found) == ["I10.fill_journaled_once"]
    assert "t-9" in found[0].detail
    assert found[0].intent_id == "e-1"


def test_fills_with_distinct_keys_are_each_journaled_once():
    # The key is (symbol, trade id): the same trade id on another symbol is another trade.
    w = World()
    for symbol, trade in ((BTC, "t-1"), (ETH, "t-1"), (BTC, "t-2")):
        fill = Fill(symbol, trade, "1", coid("e-1"), Side.BUY, QTY, PRICE)
        assert w.log(FillApplied("e-1", "corr-e-1", fill, "stream"), 1.0) == []


# --------------------------------------------------------------------------- I2


def test_bounded_generations_fires_at_the_limit_and_not_below():
    w = World(CheckLimits(max_generations=3))
    for generation in range(3):
        req = market(coid("e-1", generation))
        assert w.log(sending("e-1", req, generation), float(generation)) == []
        w.log(resolved("e-1", req.client_order_id, Resolution.ABSENT), generation + 0.5)
    found = w.log(sending("e-1", market(coid("e-1", 3)), 3), 3.0)
    assert checks(found) == ["I2.bounded_generations"]
    assert "generation 3 >= max_generations 3" in found[0].detail


def test_order_rate_cap_fires_on_one_entry_too_many_in_the_window():
    w = World(CheckLimits(max_orders_per_window=3, rate_window_s=10.0))
    for n in range(3):
        assert w.log(sending(f"e-{n}", market(coid(f"e-{n}"))), 1.0 + n) == []
    found = w.log(sending("e-3", market(coid("e-3"))), 9.0)
    assert checks(found) == ["I2.order_rate_cap"]
    assert "4 entry orders within 10.0s (cap 3)" in found[0].detail


def test_order_rate_cap_window_slides_and_ignores_exits():
    w = World(CheckLimits(max_orders_per_window=3, rate_window_s=10.0))
    for n in range(3):
        w.log(sending(f"e-{n}", market(coid(f"e-{n}"))), 1.0 + n)
    # Exits never count: a burst of them while the entry window is full is fine.
    for n in range(5):
        req = market(coid(f"x-{n}", 0, Role.EXIT), Side.SELL, reduce_only=True)
        assert w.log(sending(f"x-{n}", req, risk_increasing=False), 5.0) == []
    # At t=11 the entry at t=1 has left the (t - 10, t] window: three in the window again.
    assert w.log(sending("e-3", market(coid("e-3"))), 11.0) == []
    assert w.checker.violations == []


# --------------------------------------------------------------------------- I8


def _replace_setup(w: World) -> tuple[str, OrderRequest, OrderRequest]:
    old = limit(coid("old"))
    new = limit(coid("new"), Decimal(59950))
    w.log(sending("old", old), 1.0)
    old_id, _ = w.accept(old, 1.0)
    admitted = ReplaceAdmitted(
        "old", "corr-old", "r-1", BTC, "new", "replace", "price_moved", Decimal(120)
    )
    w.log(admitted, 5.0)
    w.log(sending("new", new), 6.0)
    return old_id, old, new


def test_cancel_before_create_fires_when_the_replacement_rests_beside_the_old_order():
    w = World()
    _, old, new = _replace_setup(w)
    _, found = w.accept(new, 6.0)
    assert checks(found) == ["I8.cancel_before_create"]
    assert found[0].intent_id == "new"
    assert old.client_order_id in found[0].detail


def test_cancel_before_create_is_silent_once_the_old_order_is_closed():
    w = World()
    old_id, old, new = _replace_setup(w)
    w.close(old_id, old, 5.5)
    assert w.accept(new, 6.0)[1] == []
    assert w.checker.violations == []


def test_cancel_before_create_is_silent_once_the_old_order_filled_completely():
    w = World()
    old_id, old, new = _replace_setup(w)
    w.fill(old_id, old, at=5.5)
    assert w.accept(new, 6.0)[1] == []


def test_cancel_before_create_still_fires_after_a_partial_fill_of_the_old_order():
    w = World()
    old_id, old, new = _replace_setup(w)
    w.fill(old_id, old, Decimal("0.001"), 5.5)  # half filled: still live
    _, found = w.accept(new, 6.0)
    assert checks(found) == ["I8.cancel_before_create"]


# --------------------------------------------------------------------------- I6


def test_monotone_clamps_fires_when_red_is_looser_than_green():
    w = World()
    green = green_knobs()
    assert w.log(posture(PostureMode.GREEN, green), 100.0) == []
    loose_red = attrs.evolve(
        green,
        allow_entries=False,
        max_notional=green.max_notional * 2,
        entry_cooldown_s=green.entry_cooldown_s / 2,
        mode=PostureMode.RED,
        kill_switch_trip=True,
    )
    found = w.log(posture(PostureMode.RED, loose_red, "GREEN"), 200.0)
    assert checks(found) == ["I6.monotone_clamps"]
    assert "RED is looser than GREEN" in found[0].detail
    assert "max_notional" in found[0].detail
    assert "entry_cooldown_s" in found[0].detail
    assert "max_leverage" not in found[0].detail  # equal is not looser
    assert "allow_entries" not in found[0].detail  # RED blocks entries: not looser there


def test_monotone_clamps_is_silent_for_the_real_knob_ladder():
    w = World()
    config = PostureConfig()
    ladder = [
        (PostureMode.GREEN, 0.0),
        (PostureMode.YELLOW, 0.3),
        (PostureMode.ORANGE, 0.55),
        (PostureMode.RED, 0.9),
        (PostureMode.ORANGE, 0.5),
        (PostureMode.YELLOW, 0.3),
    ]
    for n, (mode, score) in enumerate(ladder):
        assert w.log(posture(mode, knobs_for(score, mode, config)), 100.0 + n) == []
    assert [mode for _, mode, _ in w.checker.posture_trace] == [m.value for m, _ in ladder]


def test_monotone_clamps_refuses_an_unknown_mode():
    w = World()
    event = PostureChanged("PURPLE", "GREEN", 0.0, (), (), green_knobs())
    found = w.log(event, 1.0)
    assert checks(found) == ["I6.monotone_clamps"]
    assert "PURPLE" in found[0].detail


def test_monotone_clamps_fires_whichever_mode_was_journaled_first():
    w = World()
    loose_yellow = attrs.evolve(green_knobs(), mode=PostureMode.YELLOW)
    tight_green = attrs.evolve(green_knobs(), max_notional=Decimal(1), mode=PostureMode.GREEN)
    w.log(posture(PostureMode.YELLOW, loose_yellow), 90.0)
    found = w.log(posture(PostureMode.GREEN, tight_green, "YELLOW"), 180.0)
    assert checks(found) == ["I6.monotone_clamps"]


# --------------------------------------------------------------------------- I1


@pytest.mark.parametrize("reason", ["halted", "posture_blocks_entries", "symbol_frozen"])
def test_exit_never_gated_fires_for_an_exit_refused_by_a_gate(reason):
    w = World()
    exit_intent = Intent("x-1", BTC, Side.SELL, QTY, kind=IntentKind.EXIT, reduce_only=True)
    w.log(IntentAccepted(exit_intent, Lane.EXIT, "strategy", "x-1", "corr-x-1"), 1.0)
    found = w.log(IntentRejected("x-1", "corr-x-1", reason), 2.0)
    assert checks(found) == ["I1.exit_never_gated"]
    assert found[0].intent_id == "x-1"
    assert reason in found[0].detail


def test_exits_are_recognised_by_the_script_and_the_protection_manager_prefix():
    # The Router refuses before journaling IntentAccepted, so a gated exit usually has no
    # lane on record: the script's exits and the ProtectionManager's ``pm-`` intents count.
    w = World()
    w.checker.exits.add("script-exit")
    assert checks(w.log(IntentRejected("script-exit", "c", "halted"), 1.0)) == [
        "I1.exit_never_gated"
    ]
    assert checks(w.log(IntentRejected("pm-BTCUSDT-3", "c", "entry_cooldown"), 2.0)) == [
        "I1.exit_never_gated"
    ]


def test_exit_never_gated_is_silent_for_gated_entries_and_ungated_exit_refusals():
    w = World()
    assert w.log(IntentRejected("e-1", "corr-e-1", "halted"), 1.0) == []  # an entry: fine
    w.checker.exits.add("x-1")
    # Refused for a reason that is not a gate (the Router ran out of generations).
    assert w.log(IntentRejected("x-1", "corr-x-1", "generations_exhausted"), 2.0) == []


# --------------------------------------------------------------------------- I9


def _venue_in_trouble(w: World) -> None:
    """A fault window over the whole test: gaps are judged by escalation only."""
    w.checker.disturbed(0.0, 10_000.0)


def _green_at(w: World, at: float) -> None:
    w.log(posture(PostureMode.GREEN, green_knobs(), "YELLOW"), at)


def test_gap_within_ttl_fires_when_a_healthy_exchange_leaves_a_gap_open():
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0, calm_gap_allowance_s=5.0))
    _green_at(w, 0.0)
    w.entry("e-1", 10.0)  # long 0.002, no stop, nothing wrong with the exchange
    assert w.tick(25.0) == []  # 15 s: exactly the TTL plus the calm allowance
    found = w.tick(25.5)
    assert checks(found) == ["I9.gap_within_ttl"]
    assert "uncovered for 16s with a healthy exchange" in found[0].detail
    assert w.tick(30.0) == []  # once per window
    assert checks(w.tick(41.0)) == ["I9.gap_within_ttl"]


def test_gap_within_ttl_is_silent_when_a_fault_or_restart_overlaps_the_gap():
    for start, end in ((0.0, 12.0), (20.0, 22.0), (24.0, 500.0)):
        w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0, calm_gap_allowance_s=5.0))
        _green_at(w, 0.0)
        w.checker.disturbed(start, end)
        w.entry("e-1", 10.0)
        assert "I9.gap_within_ttl" not in checks(w.tick(30.0)), (start, end)
    # A disturbance that ended before the gap opened excuses nothing.
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0, calm_gap_allowance_s=5.0))
    _green_at(w, 0.0)
    w.checker.disturbed(0.0, 5.0)
    w.entry("e-1", 10.0)
    assert checks(w.tick(30.0)) == ["I9.gap_within_ttl"]


def test_gap_escalates_fires_when_an_unprotected_position_goes_unnoticed():
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0))
    _venue_in_trouble(w)
    _green_at(w, 0.0)
    w.entry("e-1", 10.0)  # long 0.002, no stop: the gap clock starts at 10
    assert w.tick(50.0) == []  # 40 s: exactly the TTL plus the allowance
    found = w.tick(50.5)
    assert checks(found) == ["I9.gap_escalates"]
    assert found[0].at == 50.5
    assert "BTCUSDT position 0.002 uncovered" in found[0].detail
    # Reported once per window, not at every step.
    assert w.tick(60.0) == []
    assert checks(w.tick(91.0)) == ["I9.gap_escalates"]


def test_gap_escalates_is_silent_when_pressure_was_raised_during_the_gap():
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0))
    _venue_in_trouble(w)
    _green_at(w, 0.0)
    w.entry("e-1", 10.0)
    w.tick(10.0)
    pressure = PressureRaised(
        "protection", BTC, "protection_gap_ttl_breach", 0.6, "no stop for 10s", 60.0
    )
    w.log(pressure, 21.0)
    assert w.tick(80.0) == []


def test_gap_escalates_is_silent_when_the_posture_left_green_during_the_gap():
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0))
    _venue_in_trouble(w)
    _green_at(w, 0.0)
    w.entry("e-1", 10.0)
    w.tick(10.0)
    yellow = knobs_for(0.3, PostureMode.YELLOW, PostureConfig())
    w.log(posture(PostureMode.YELLOW, yellow, "GREEN"), 30.0)
    assert w.tick(80.0) == []


def test_gap_escalates_is_silent_while_the_posture_is_still_booting():
    # Posture boots ORANGE: a gap before the first GREEN is not an un-escalated one.
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0))
    _venue_in_trouble(w)
    w.entry("e-1", 10.0)
    w.tick(10.0)
    assert w.tick(100.0) == []


def test_gap_escalates_is_silent_when_a_stop_arrives_in_time():
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0))
    _green_at(w, 0.0)
    w.entry("e-1", 10.0)
    w.tick(10.0)
    stop_req = stop(coid("pm-1", 0, Role.SL))
    w.log(sending("pm-1", stop_req, risk_increasing=False), 20.0)
    w.accept(stop_req, 20.0)
    assert w.tick(100.0) == []
    assert w.checker.coverage_gap(BTC) == 0


def test_gap_escalates_counts_a_partial_stop_as_a_gap():
    w = World(CheckLimits(gap_ttl_s=10.0, gap_allowance_s=30.0))
    _venue_in_trouble(w)
    _green_at(w, 0.0)
    w.entry("e-1", 10.0)
    w.tick(10.0)
    stop_req = stop(coid("pm-1", 0, Role.SL), qty=Decimal("0.001"))
    w.log(sending("pm-1", stop_req, risk_increasing=False), 20.0)
    w.accept(stop_req, 20.0)
    assert w.checker.coverage_gap(BTC) == Decimal("0.001")
    assert checks(w.tick(51.0)) == ["I9.gap_escalates"]


# --------------------------------------------------------------------------- coverage_gap


def test_coverage_gap_of_a_close_position_stop_is_zero_whatever_the_size():
    w = World()
    for n in range(3):
        w.entry(f"e-{n}")  # long 0.006
    assert w.checker.coverage_gap(BTC) == Decimal("0.006")
    stop_req = stop(coid("pm-1", 0, Role.SL), close_position=True, reduce_only=False)
    w.log(sending("pm-1", stop_req, risk_increasing=False), 1.0)
    algo_id, _ = w.accept(stop_req, 1.0)
    assert w.checker.coverage_gap(BTC) == 0
    # Once the stop triggers it no longer protects anything.
    w.trigger(algo_id, "999", 2.0)
    assert w.checker.coverage_gap(BTC) == Decimal("0.006")


def test_coverage_gap_ignores_stops_that_could_not_close_the_position():
    w = World()
    w.entry("e-1")  # long 0.002: only a SELL stop closes it
    wrong_side = stop(coid("pm-1", 0, Role.SL), Side.BUY)
    not_reducing = stop(coid("pm-2", 0, Role.SL), reduce_only=False)
    other_symbol = attrs.evolve(stop(coid("pm-3", 0, Role.SL)), symbol=ETH)
    for n, req in enumerate((wrong_side, not_reducing, other_symbol)):
        w.log(sending(f"pm-{n + 1}", req, risk_increasing=False), 1.0)
        w.accept(req, 1.0)
    assert w.checker.coverage_gap(BTC) == QTY
    cancelled = stop(coid("pm-4", 0, Role.SL))
    w.log(sending("pm-4", cancelled, risk_increasing=False), 2.0)
    order_id, _ = w.accept(cancelled, 2.0)
    assert w.checker.coverage_gap(BTC) == 0
    w.close(order_id, cancelled, 3.0)  # cancelled behind our back: the gap is back
    assert w.checker.coverage_gap(BTC) == QTY


def test_coverage_gap_of_a_short_position_needs_a_buy_stop():
    w = World()
    req = market(coid("s-1"), Side.SELL)
    w.log(sending("s-1", req), 1.0)
    order_id, _ = w.accept(req, 1.0)
    w.fill(order_id, req, at=1.0)
    assert w.checker.coverage_gap(BTC) == QTY
    cover = stop(coid("pm-1", 0, Role.SL), Side.BUY)
    w.log(sending("pm-1", cover, risk_increasing=False), 2.0)
    w.accept(cover, 2.0)
    assert w.checker.coverage_gap(BTC) == 0
    assert w.checker.coverage_gap(ETH) == 0  # no position, no gap


# --------------------------------------------------------------------------- final


class Quiescent:
    """A real engine and a real AccountState fed the same story as the checker."""

    def __init__(self) -> None:
        sim = chaos_sim_config()
        self.engine = SimEngine(attrs.evolve(sim, start_time=0.0), random.Random(7))
        self.checker = InvariantChecker(CheckLimits(), epoch_ms=EPOCH)
        self.state = AccountState()
        self._seq = 0

    def journal(self, event: Event, at: float, *, state: bool = True) -> None:
        self._seq += 1
        wall_ms = EPOCH + round(at * 1000)
        if state:
            self.state.apply(event, wall_ms)
        self.checker.step([(self._seq, wall_ms, event)], self.engine.history.records, at)

    def send(self, intent: Intent, generation: int = 0, at: float = 1.0) -> VenueOrder:
        """The Router's path: accept, write ahead, send, journal the ack."""
        role = Role.SL if intent.kind is IntentKind.PROTECT else Role.ENTRY
        req = intent.to_order_request(client_order_id("sc", intent.intent_id, role, generation))
        lane = Lane.ENTRY if intent.kind is IntentKind.ENTRY else Lane.EXIT
        self.journal(
            IntentAccepted(intent, lane, "strategy", intent.intent_id, intent.correlation_id), at
        )
        self.journal(
            sending(intent.intent_id, req, generation, risk_increasing=lane is Lane.ENTRY), at
        )
        order = self.engine.create_order(req, at)
        self.journal(
            OrderAcked(intent.intent_id, intent.correlation_id, req.client_order_id, order), at
        )
        return order

    def fills(self, intent_id: str, at: float, *, state: bool = True) -> None:
        for fill in self.engine.history.fills():
            if fill.key not in self.state.fill_keys:
                self.journal(FillApplied(intent_id, intent_id, fill, "stream"), at, state=state)

    def final(self, fingerprint: str | None = None) -> list[Violation]:
        replayed = self.state.fingerprint() if fingerprint is None else fingerprint
        return self.checker.final(self.state, replayed, self.engine, (SYMBOL,), 500.0)


def _entry(intent_id: str = "e-1") -> Intent:
    return Intent(intent_id, SYMBOL, Side.BUY, QTY)


def _protect() -> Intent:
    return Intent(
        "pm-1",
        SYMBOL,
        Side.SELL,
        None,
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=Decimal(55000),
        close_position=True,
    )


def test_final_is_silent_on_a_quiescent_protected_position():
    q = Quiescent()
    q.send(_entry())
    q.fills("e-1", 1.0)
    q.send(_protect(), at=2.0)
    assert q.state.position(SYMBOL) == QTY == q.engine.position_qty(SYMBOL)
    assert q.final() == []
    assert q.checker.violations == []


def test_final_fires_when_a_fill_never_reached_the_journal():
    # The stream lost the trade and no backfill found it: the ledger believes we are flat.
    q = Quiescent()
    q.send(_entry())
    q.send(_protect(), at=2.0)
    found = q.final()
    assert sorted(checks(found)) == ["I10.every_trade_journaled", "I4.position_agrees"]
    position = next(v for v in found if v.check == "I4.position_agrees")
    assert position.detail == "BTCUSDT: local 0, exchange 0.002"


def test_final_fires_on_an_unprotected_position_and_a_bad_replay():
    q = Quiescent()
    q.send(_entry())
    q.fills("e-1", 1.0)
    found = q.final(fingerprint="not-the-live-state")
    assert sorted(checks(found)) == ["I5.replay_rebuilds", "I9.covered_at_quiescence"]


def test_final_fires_on_an_orphan_and_an_unresolved_order():
    q = Quiescent()
    # An order at the exchange the ledger never tracked (journal and state never saw it).
    q.engine.create_order(
        OrderRequest(
            SYMBOL,
            Side.BUY,
            OrderType.LIMIT,
            coid("lost"),
            QTY,
            price=Decimal(50000),
            time_in_force=TimeInForce.GTC,
        ),
        1.0,
    )
    # And an order journaled as SENDING whose outcome was never learned.
    req = _entry("e-2").to_order_request(coid("e-2"))
    q.journal(IntentAccepted(_entry("e-2"), Lane.ENTRY, "strategy", "e-2", "e-2"), 2.0)
    q.journal(sending("e-2", req), 2.0)
    found = q.final()
    names = checks(found)
    assert "E.no_orphan_order" in names
    assert "I7.all_resolved" in names
    # The lost order was already judged when the exchange accepted it, before quiescence.
    assert "I5.journal_before_send" in checks(q.checker.violations)
    assert "I5.journal_before_send" not in names
    orphan = next(v for v in found if v.check == "E.no_orphan_order")
    assert coid("lost") in orphan.detail
