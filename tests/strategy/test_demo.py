"""The demo strategy against a fake host that journals like the Router, on virtual time.

The fake host keeps a real :class:`~scalper.state.AccountState` and applies to it the
events the Router and the EvidenceCollector would journal (accepted, sent, acked, filled,
cancelled), so the strategy reads exactly the ledger it reads in production. Marks are
scripted; every call is recorded. Tests drive :meth:`DemoStrategy.tick` by hand and move
virtual time with ``trio.sleep`` (MockClock autojump).

Book arithmetic: BTCUSDT tick 0.1, step 0.001, minimum notional 100 USDT, buffer 1.05:
an entry at ~60000 is 0.002 BTC (~120 USDT).
"""

import itertools
import random
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.actors.router import IntentReceipt
from scalper.clock import Clock, simulated_clock
from scalper.core.errors import Operation
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.posture import GuardKnobs, PostureMode
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.messages import (
    CancelRequested,
    CancelResolved,
    Event,
    FillApplied,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderSending,
    ReplaceOrder,
)
from scalper.state import AccountState, IntentStatus
from scalper.strategy import StrategyHost
from scalper.strategy.demo import (
    SOURCE,
    DemoConfig,
    DemoStrategy,
    SymbolSpec,
    entry_price,
    entry_quantity,
)
from scalper.venues.base import VenueError

D = Decimal
BTC = "BTCUSDT"
ETH = "ETHUSDT"
PREFIX = "sc"


def knobs(*, allow: bool = True, max_notional: str = "1000", cooldown_s: float = 0.0) -> GuardKnobs:
    return GuardKnobs(
        allow_entries=allow,
        max_notional=D(max_notional),
        max_leverage=20,
        min_entry_conf=0.5,
        entry_cooldown_s=cooldown_s,
        max_open_orders_per_symbol=2,
        mode=PostureMode.GREEN if allow else PostureMode.ORANGE,
        kill_switch_trip=False,
    )


@attrs.frozen
class Outcome:
    outcome: str
    reason: str = ""


class FakeHost:
    """Records every call; journals into a real AccountState the way the Router would."""

    def __init__(self, clock: Clock, *, guard: GuardKnobs | None = None) -> None:
        self.clock = clock
        self.knobs = guard or knobs()
        self.state = AccountState(prefix=PREFIX)
        self.marks: dict[str, Decimal] = {BTC: D(60000), ETH: D(3000)}
        self.calls: list[tuple[Any, ...]] = []
        self.refuse_entries: str | None = None
        self.mark_errors: set[str] = set()
        self.submit_error: Exception | None = None
        self.replace_outcome = "replaced"
        self.journal_replacements = True
        self.replace_delay_s = 0.0
        self._ids = itertools.count(1)

    # --- the StrategyHost surface

    async def submit(
        self, intent: Intent, *, confidence: float, reference_price: Decimal | None, source: str
    ) -> IntentReceipt:
        await trio.lowlevel.checkpoint()
        self.calls.append(("submit", intent, confidence, reference_price, source))
        if self.submit_error is not None:
            raise self.submit_error
        if self.refuse_entries is not None and not intent.is_exit:
            self.apply(
                IntentRejected(intent.intent_id, intent.correlation_id, self.refuse_entries, "")
            )
            return IntentReceipt(intent.intent_id, False, self.refuse_entries)
        self.accept(intent, source, reference_price)
        return IntentReceipt(intent.intent_id, True)

    async def cancel(self, intent_id: str, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        self.calls.append(("cancel", intent_id, reason))
        self.cancelled(intent_id)

    async def replace(self, command: ReplaceOrder) -> Outcome:
        await trio.lowlevel.checkpoint()
        self.calls.append(("replace", command))
        await trio.sleep(self.replace_delay_s)  # a ReplaceManager proving the old one terminal
        if self.replace_outcome in ("refused", "gave_up"):
            return Outcome(self.replace_outcome, "test")
        self.cancelled(command.intent_id)
        if self.journal_replacements:
            self.accept(command.new_intent, "replace", command.reference_price)
        return Outcome(self.replace_outcome)

    async def mark_price(self, symbol: str) -> Decimal:
        await trio.lowlevel.checkpoint()
        self.calls.append(("mark", symbol))
        if symbol in self.mark_errors:
            raise VenueError.transport(
                request_written=True, operation=Operation.QUERY, detail="no answer within 10s"
            )
        return self.marks[symbol]

    # --- what the Router and the EvidenceCollector would journal

    def apply(self, event: Event) -> None:
        self.state.apply(event, self.clock.wall_ms())

    def coid(self, intent_id: str) -> str:
        rec = self.state.intents[intent_id]
        assert rec.intent is not None
        return client_order_id(PREFIX, intent_id, rec.intent.role)

    def venue_order(self, intent: Intent, coid: str, status: VenueOrderStatus) -> VenueOrder:
        return VenueOrder(
            symbol=intent.symbol,
            order_id=str(next(self._ids)),
            client_order_id=coid,
            side=intent.side,
            order_type=intent.order_type,
            status=status,
            quantity=intent.quantity or D(0),
            price=intent.price,
            stop_price=intent.stop_price,
            time_in_force=intent.time_in_force,
            reduce_only=intent.reduce_only,
        )

    def accept(self, intent: Intent, source: str, reference_price: Decimal | None) -> None:
        lane = Lane.EXIT if intent.is_exit else Lane.ENTRY
        self.apply(
            IntentAccepted(
                intent=intent,
                lane=lane,
                source=source,
                intent_id=intent.intent_id,
                correlation_id=intent.correlation_id,
                reference_price=reference_price,
            )
        )
        coid = client_order_id(PREFIX, intent.intent_id, intent.role)
        self.apply(
            OrderSending(
                intent_id=intent.intent_id,
                correlation_id=intent.correlation_id,
                client_order_id=coid,
                generation=0,
                request=intent.to_order_request(coid),
                risk_increasing=intent.is_risk_increasing,
                recv_window_ms=5000,
                sent_wall_ms=self.clock.wall_ms(),
            )
        )
        self.apply(
            OrderAcked(
                intent.intent_id,
                intent.correlation_id,
                coid,
                self.venue_order(intent, coid, VenueOrderStatus.NEW),
            )
        )

    def cancelled(self, intent_id: str) -> None:
        rec = self.state.intents[intent_id]
        assert rec.intent is not None
        if rec.status is not IntentStatus.OPEN:
            return
        coid = self.coid(intent_id)
        self.apply(CancelRequested(intent_id, rec.correlation_id, coid, "test"))
        order = self.venue_order(rec.intent, coid, VenueOrderStatus.CANCELED)
        filled = self.state.orders[coid].filled_qty
        self.apply(
            CancelResolved(
                intent_id,
                rec.correlation_id,
                coid,
                "status_canceled",
                attrs.evolve(order, filled_qty=filled),
            )
        )

    def fill(self, intent_id: str, qty: str | None = None, price: str | None = None) -> None:
        rec = self.state.intents[intent_id]
        intent = rec.intent
        assert intent is not None
        assert intent.quantity is not None
        coid = self.coid(intent_id)
        self.apply(
            FillApplied(
                intent_id,
                rec.correlation_id,
                Fill(
                    symbol=intent.symbol,
                    trade_id=str(next(self._ids)),
                    order_id="1",
                    client_order_id=coid,
                    side=intent.side,
                    quantity=D(qty) if qty else intent.quantity,
                    price=D(price) if price else (intent.price or self.marks[intent.symbol]),
                ),
                "stream",
            )
        )

    # --- what tests read

    def submitted(self, kind: IntentKind | None = None) -> list[Intent]:
        return [
            c[1] for c in self.calls if c[0] == "submit" and (kind is None or c[1].kind is kind)
        ]

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


def make(
    host: FakeHost, *, seed: int = 7, symbols: tuple[str, ...] = (BTC,), **config: Any
) -> DemoStrategy:
    return DemoStrategy(
        host,
        symbols=symbols,
        rng=random.Random(seed),
        clock=host.clock,
        config=DemoConfig(**config),
    )


def host_now() -> FakeHost:
    return FakeHost(simulated_clock())


def test_the_fake_host_is_a_strategy_host() -> None:
    # mypy checks the structural match; this keeps the test file honest at run time too.
    def typed(host: StrategyHost) -> StrategyHost:
        return host

    async def main() -> None:
        assert typed(host_now()).knobs.allow_entries

    trio.run(main)


# ------------------------------------------------------------------------------ entries


async def test_entries_only_when_allowed_flat_and_nothing_rests(autojump_clock) -> None:
    host = host_now()
    host.knobs = knobs(allow=False)
    strategy = make(host)
    await strategy.tick()
    assert host.submitted() == []  # ORANGE: nothing proposed, nothing journaled
    assert host.of("mark") == [("mark", BTC)]
    assert strategy.decisions[-1].reason == "entries_not_allowed"
    assert host.state.intents == {}

    host.knobs = knobs()
    await strategy.tick()
    [entry] = host.submitted()
    _, _, confidence, reference, source = host.of("submit")[0]
    assert (confidence, reference, source) == (0.9, D(60000), SOURCE)
    assert (entry.kind, entry.order_type, entry.time_in_force) == (
        IntentKind.ENTRY,
        OrderType.LIMIT,
        TimeInForce.GTC,
    )
    assert not entry.reduce_only
    assert entry.intent_id.startswith("demo-e-btcusdt-")
    # Passive, a few ticks from the mark: BUY below it, SELL above it.
    assert entry.price == (D("59999.5") if entry.side is Side.BUY else D("60000.5"))

    for _ in range(3):  # the entry rests: no second one, however often we step
        await trio.sleep(2)
        await strategy.tick()
    assert len(host.submitted()) == 1

    host.fill(entry.intent_id)  # now a position: not flat, still no new entry
    await strategy.tick()
    assert host.submitted(IntentKind.ENTRY) == [entry]


async def test_another_sources_open_entry_blocks_ours_but_is_never_touched(autojump_clock) -> None:
    host = host_now()
    operator = Intent(
        intent_id="op-1",
        symbol=BTC,
        side=Side.BUY,
        quantity=D("0.01"),
        order_type=OrderType.LIMIT,
        price=D(55000),
    )
    host.accept(operator, "operator", None)
    strategy = make(host, p_replace=1.0)
    for _ in range(30):  # far past reprice_after_s and cancel_after_s
        await strategy.tick()
        await trio.sleep(2)
    assert host.submitted() == []
    assert host.of("cancel") == []
    assert host.of("replace") == []


async def test_refusals_are_answers_and_the_gates_knobs_are_respected(autojump_clock) -> None:
    host = host_now()
    host.refuse_entries = "notional_above_posture"
    strategy = make(host)
    await strategy.tick()
    [refused] = host.submitted()
    assert strategy.decisions[-1].outcome == "rejected:notional_above_posture"
    assert host.state.intents[refused.intent_id].status is IntentStatus.REJECTED
    await strategy.tick()  # a refused entry rests nowhere: the next step tries again
    assert len(host.submitted()) == 2
    assert strategy.counters["enter.rejected"] == 2

    host.refuse_entries = None
    host.knobs = knobs(max_notional="100")  # below the smallest valid entry (~120 USDT)
    await strategy.tick()
    assert len(host.submitted()) == 2
    assert strategy.decisions[-1].reason == "notional_above_knobs"

    host.knobs = knobs(cooldown_s=60)
    await strategy.tick()
    [first] = host.submitted()[2:]
    host.cancelled(first.intent_id)
    await strategy.tick()  # flat and nothing rests, but the posture's cooldown holds
    assert len(host.submitted()) == 3
    assert strategy.decisions[-1].reason == "entry_cooldown"
    await trio.sleep(61)
    await strategy.tick()
    assert len(host.submitted()) == 4


@pytest.mark.parametrize(
    ("mark", "spec", "expected_qty"),
    [
        ("60000", SymbolSpec(), "0.002"),  # 119.99 USDT >= 105
        ("30000", SymbolSpec(), "0.004"),
        ("110000", SymbolSpec(), "0.001"),  # one step is already above the minimum
        (
            "2500",
            SymbolSpec(tick_size=D("0.01"), step_size=D("0.001"), min_notional=D(20)),
            "0.009",
        ),
        ("100", SymbolSpec(tick_size=D("0.01"), step_size=D("0.01"), min_notional=D(5)), "0.06"),
    ],
)
async def test_entry_size_is_just_above_the_venue_minimum(
    autojump_clock, mark, spec, expected_qty
) -> None:
    host = host_now()
    host.marks[BTC] = D(mark)
    strategy = make(host, specs={BTC: spec})
    await strategy.tick()
    [entry] = host.submitted()
    assert entry.quantity == D(expected_qty)
    assert entry.price is not None
    notional = entry.quantity * entry.price
    assert notional >= spec.min_notional
    assert (entry.quantity - spec.step_size) * entry.price < spec.min_notional * D("1.05")
    assert notional <= host.knobs.max_notional
    assert entry.quantity % spec.step_size == 0
    assert entry.price % spec.tick_size == 0


@settings(max_examples=60, deadline=None)
@given(
    price=st.decimals(min_value=D("0.01"), max_value=D(200000), places=2),
    step=st.sampled_from([D("0.001"), D("0.01"), D("0.1"), D(1)]),
    minimum=st.decimals(min_value=D(0), max_value=D(500), places=1),
    buffer=st.decimals(min_value=D(1), max_value=D(2), places=2),
)
def test_entry_quantity_is_the_smallest_valid_step_multiple(price, step, minimum, buffer) -> None:
    spec = SymbolSpec(step_size=step, min_notional=minimum)
    qty = entry_quantity(price, spec, buffer)
    assert qty >= step
    assert qty % step == 0
    assert qty * price >= minimum * buffer
    if qty > step:  # one step less would fall short
        assert (qty - step) * price < minimum * buffer


@settings(max_examples=60, deadline=None)
@given(
    mark=st.decimals(min_value=D(1), max_value=D(200000), places=8),
    ticks=st.integers(min_value=0, max_value=50),
    tick=st.sampled_from([D("0.01"), D("0.1"), D(1)]),
)
def test_entry_price_is_passive_and_on_the_tick(mark, ticks, tick) -> None:
    buy = entry_price(mark, Side.BUY, ticks, tick)
    sell = entry_price(mark, Side.SELL, ticks, tick)
    assert buy % tick == 0
    assert sell % tick == 0
    assert buy <= mark - ticks * tick < buy + tick
    assert sell >= mark + ticks * tick > sell - tick


# ------------------------------------------------------------------------------ take-profit


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
async def test_take_profit_covers_the_position_reduce_only_on_the_closing_side(
    autojump_clock, side
) -> None:
    host = host_now()
    strategy = make(host, seed=_seed_for(side))
    await strategy.tick()
    [entry] = host.submitted()
    assert entry.side is side
    host.fill(entry.intent_id)
    await strategy.tick()
    [tp] = host.submitted(IntentKind.TAKE_PROFIT)
    assert tp.is_exit
    assert tp.reduce_only
    assert tp.order_type is OrderType.TAKE_PROFIT_MARKET
    assert tp.side is side.opposite
    assert tp.quantity == abs(host.state.position(BTC)) == D("0.002")
    assert tp.stop_price is not None
    assert tp.stop_price % D("0.1") == 0
    entry_px = host.state.legs[(BTC, entry.position_side)].entry_price
    assert entry_px is not None
    assert entry_px == entry.price
    if side is Side.BUY:  # a long takes profit above both its entry and the mark
        assert tp.stop_price >= entry_px * D("1.0008")
        assert tp.stop_price > host.marks[BTC]
    else:
        assert tp.stop_price <= entry_px * D("0.9992")
        assert tp.stop_price < host.marks[BTC]
    assert host.of("submit")[-1][3] == host.marks[BTC]  # valued at the mark

    for _ in range(3):  # it rests: never a second one
        await strategy.tick()
    assert len(host.submitted(IntentKind.TAKE_PROFIT)) == 1
    assert not any(i.kind is IntentKind.PROTECT for i in host.submitted())  # stops are I9's job


async def test_take_profit_never_triggers_at_once_when_the_mark_ran_ahead(autojump_clock) -> None:
    host = host_now()
    strategy = make(host, seed=_seed_for(Side.BUY))
    await strategy.tick()
    [entry] = host.submitted()
    host.fill(entry.intent_id)
    host.marks[BTC] = D(60500)  # already 0.8% above the entry
    await strategy.tick()
    [tp] = host.submitted(IntentKind.TAKE_PROFIT)
    assert tp.stop_price is not None
    assert tp.stop_price >= D(60500) * D("1.0008")  # from the mark, not the stale entry


async def test_take_profit_is_resized_when_the_position_grows(autojump_clock) -> None:
    host = host_now()
    strategy = make(host, seed=_seed_for(Side.BUY))
    await strategy.tick()
    [entry] = host.submitted()
    host.fill(entry.intent_id, qty="0.001")  # partial: the entry still rests
    await strategy.tick()
    [small] = host.submitted(IntentKind.TAKE_PROFIT)
    assert small.quantity == D("0.001")
    host.fill(entry.intent_id, qty="0.001")
    await strategy.tick()
    assert ("cancel", small.intent_id, "take_profit_mismatch") in host.calls
    await strategy.tick()
    resized = host.submitted(IntentKind.TAKE_PROFIT)[-1]
    assert resized.quantity == D("0.002")
    assert resized.intent_id != small.intent_id


async def test_a_take_profit_left_on_a_flat_symbol_is_cancelled(autojump_clock) -> None:
    host = host_now()
    strategy = make(host, seed=_seed_for(Side.BUY))
    await strategy.tick()
    [entry] = host.submitted()
    host.fill(entry.intent_id)
    await strategy.tick()
    [tp] = host.submitted(IntentKind.TAKE_PROFIT)
    # The ProtectionManager's stop closed the position; our take-profit is left behind.
    stop = Intent(
        intent_id="protect-1",
        symbol=BTC,
        side=Side.SELL,
        quantity=D("0.002"),
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=D(59000),
        reduce_only=True,
    )
    host.accept(stop, "protection", None)
    host.fill("protect-1", price="59000")
    await strategy.tick()
    assert ("cancel", tp.intent_id, "flat") in host.calls
    assert ("cancel", "protect-1", "flat") not in host.calls  # not ours


# ------------------------------------------------------------------------------ stale entries


async def test_a_stale_entry_is_replaced_nearer_the_mark(autojump_clock) -> None:
    host = host_now()
    strategy = make(host, p_replace=1.0, reprice_after_s=10.0, cancel_after_s=30.0)
    await strategy.tick()
    [old] = host.submitted()
    await trio.sleep(8)
    await strategy.tick()
    assert host.of("replace") == []  # not stale yet
    host.marks[BTC] = D(60100)  # the market walked away from the resting entry
    await trio.sleep(4)
    await strategy.tick()
    [(_, command)] = host.of("replace")
    new = command.new_intent
    assert command.intent_id == old.intent_id
    assert command.reference_price == D(60100)
    assert new.intent_id != old.intent_id
    assert new.correlation_id == old.correlation_id  # one decision, one story
    assert (new.side, new.kind, new.order_type, new.symbol) == (
        old.side,
        IntentKind.ENTRY,
        OrderType.LIMIT,
        BTC,
    )
    assert new.price is not None
    assert old.price is not None
    assert abs(new.price - D(60100)) < abs(old.price - D(60100))
    assert abs(new.price - D(60100)) == D("0.2")
    assert host.submitted() == [old]  # the replacement is not a second entry


async def test_a_replacement_in_flight_counts_as_a_resting_entry(autojump_clock) -> None:
    host = host_now()
    host.journal_replacements = False  # the host's ReplaceManager is slow to journal it
    strategy = make(host, p_replace=1.0, replace_grace_s=10.0)
    await strategy.tick()
    await trio.sleep(11)
    await strategy.tick()
    assert len(host.of("replace")) == 1
    for _ in range(4):  # old entry cancelled, new one not journaled: still no second entry
        await trio.sleep(2)
        await strategy.tick()
    assert len(host.submitted()) == 1
    await trio.sleep(4)
    await strategy.tick()  # grace over: the replacement never came, trade on
    assert len(host.submitted()) == 2


@pytest.mark.parametrize("journaled", [True, False])
async def test_a_slow_replace_runs_in_the_background_under_run(autojump_clock, journaled) -> None:
    host = host_now()
    host.replace_delay_s = 30.0
    host.journal_replacements = journaled
    strategy = make(
        host,
        symbols=(BTC, ETH),
        p_replace=1.0,
        reprice_after_s=10.0,
        cancel_after_s=30.0,
        replace_grace_s=5.0,
    )
    with trio.move_on_after(49):  # steps at 0, 2, ..., 48 s
        await strategy.run()
    # Both entries went stale at 10 s; both replaces were in flight from 10 s to 40 s...
    assert [c[1].new_intent.symbol for c in host.of("replace")] == [BTC, ETH]
    # ...while both symbols kept being stepped, every 2 s,
    assert len(host.of("mark")) == 2 * 25
    # and nobody cancelled the old entries behind the replace's back (they passed
    # cancel_after_s at 30 s) or placed a second entry next to a replacement.
    assert host.of("cancel") == []
    entries = host.submitted(IntentKind.ENTRY)
    if journaled:
        assert len(entries) == 2
    else:  # the replacements never reached the journal: 5 s after the answer, trade on
        assert [i.symbol for i in entries] == [BTC, ETH, BTC, ETH]
        assert [d.at for d in strategy.decisions if d.action == "enter"] == [0.0, 0.0, 46.0, 46.0]


async def test_without_a_replace_a_stale_entry_is_cancelled_then_re_entered(autojump_clock) -> None:
    host = host_now()
    strategy = make(host, p_replace=0.0, reprice_after_s=10.0, cancel_after_s=30.0)
    await strategy.tick()
    [old] = host.submitted()
    await trio.sleep(20)
    await strategy.tick()
    assert host.of("replace") == []
    assert host.of("cancel") == []
    await trio.sleep(11)
    await strategy.tick()
    assert host.of("cancel") == [("cancel", old.intent_id, "stale_entry")]
    await strategy.tick()
    assert len(host.submitted(IntentKind.ENTRY)) == 2  # flat, nothing rests: enter again


async def test_a_refused_replace_leaves_the_entry_to_age_out(autojump_clock) -> None:
    host = host_now()
    host.replace_outcome = "refused"
    strategy = make(host, p_replace=1.0, reprice_after_s=10.0, cancel_after_s=30.0)
    await strategy.tick()
    [old] = host.submitted()
    await trio.sleep(11)
    await strategy.tick()
    assert len(host.of("replace")) == 1
    assert strategy.decisions[-1].outcome.startswith("refused:")
    await trio.sleep(2)
    await strategy.tick()
    assert len(host.of("replace")) == 1  # one draw per entry
    await trio.sleep(20)
    await strategy.tick()
    assert ("cancel", old.intent_id, "stale_entry") in host.calls


async def test_a_partially_filled_entry_is_never_replaced(autojump_clock) -> None:
    host = host_now()
    strategy = make(host, p_replace=1.0, reprice_after_s=10.0, cancel_after_s=30.0)
    await strategy.tick()
    [old] = host.submitted()
    host.fill(old.intent_id, qty="0.001")
    await trio.sleep(11)
    await strategy.tick()
    assert host.of("replace") == []
    assert any(d.reason == "partially_filled_entry" for d in strategy.decisions)


# ------------------------------------------------------------------------------ max hold


async def test_max_hold_exits_with_a_reduce_only_market_order(autojump_clock) -> None:
    host = host_now()
    strategy = make(
        host,
        seed=_seed_for(Side.SELL),
        max_hold_s=60.0,
        reprice_after_s=100.0,
        cancel_after_s=200.0,
    )
    await strategy.tick()
    [entry] = host.submitted()
    host.fill(entry.intent_id, qty="0.001")  # partial: the rest still rests
    await strategy.tick()
    [tp] = host.submitted(IntentKind.TAKE_PROFIT)
    await trio.sleep(59)
    await strategy.tick()
    assert host.submitted(IntentKind.EXIT) == []
    await trio.sleep(2)
    await strategy.tick()
    [exit_] = host.submitted(IntentKind.EXIT)
    assert (exit_.order_type, exit_.side, exit_.quantity) == (
        OrderType.MARKET,
        Side.BUY,
        D("0.001"),
    )
    assert exit_.reduce_only
    assert exit_.is_exit
    assert ("cancel", entry.intent_id, "max_hold") in host.calls  # stop adding first
    await strategy.tick()
    assert len(host.submitted(IntentKind.EXIT)) == 1  # it is working: not sent twice
    host.fill(exit_.intent_id, price="60000")
    assert host.state.position(BTC) == 0
    await strategy.tick()
    assert ("cancel", tp.intent_id, "flat") in host.calls


# ------------------------------------------------------------------------------ robustness


async def test_a_failing_symbol_does_not_stop_the_others_or_the_loop(autojump_clock) -> None:
    host = host_now()
    host.mark_errors.add(BTC)
    strategy = make(host, symbols=(BTC, ETH))
    with trio.move_on_after(9):  # steps at 0, 2, 4, 6 and 8 s
        await strategy.run()
    assert [i.symbol for i in host.submitted()] == [ETH]  # ETH entered, BTC skipped
    assert len(host.of("mark")) == 2 * 5  # five steps of two symbols each
    assert strategy.counters["skip.no_mark_price"] == 5

    host.mark_errors.clear()
    host.submit_error = ValueError("intent refused by a researcher's host")
    await strategy.tick()
    assert (
        strategy.decisions[-1].outcome == "error:ValueError:intent refused by a researcher's host"
    )
    assert strategy.counters["enter.error"] == 1


async def test_a_bug_in_the_host_is_not_swallowed(autojump_clock) -> None:
    host = host_now()
    host.submit_error = RuntimeError("host bug")
    strategy = make(host)
    with pytest.raises(RuntimeError, match="host bug"):
        await strategy.tick()


async def test_a_restarted_strategy_never_reuses_a_journaled_intent_id(autojump_clock) -> None:
    host = host_now()
    first = make(host, seed=11)
    await first.tick()
    [before] = host.submitted()
    host.cancelled(before.intent_id)
    again = make(host, seed=11)  # a restart with the same seed over the same journal
    await again.tick()
    [_, after] = host.submitted()
    assert after.intent_id != before.intent_id
    assert after.intent_id.startswith("demo-e-btcusdt-")


# ------------------------------------------------------------------------------ determinism


async def _script(seed: int) -> list[tuple[Any, ...]]:
    """Sixty steps with fills, a walking mark and aging entries; the intents it caused."""
    host = FakeHost(simulated_clock())
    strategy = make(host, seed=seed, symbols=(BTC, ETH), p_replace=0.7, max_hold_s=40.0)
    marks = random.Random(99)
    for step in range(60):
        await strategy.tick()
        for rec in list(host.state.intents.values()):
            intent = rec.intent
            if rec.status is not IntentStatus.OPEN or intent is None:
                continue
            # The market comes to BTC entries within three steps and never to ETH ones (so
            # they go stale: replaced or cancelled); market exits fill at once; take-profits
            # never trigger here.
            entry_fills = intent.symbol == BTC and step % 3 == 2
            if (intent.kind is IntentKind.ENTRY and entry_fills) or intent.kind is IntentKind.EXIT:
                host.fill(rec.intent_id)
        for symbol in (BTC, ETH):
            host.marks[symbol] += D(marks.randint(-20, 20)) / 10
        await trio.sleep(2)
    return [
        (c[0], *(_intent_key(c[1]) if c[0] == "submit" else _call_key(c)))
        for c in host.calls
        if c[0] != "mark"
    ]


def _intent_key(intent: Intent) -> tuple[Any, ...]:
    return (
        intent.intent_id,
        intent.kind,
        intent.side,
        intent.order_type,
        intent.price,
        intent.stop_price,
        intent.quantity,
    )


def _call_key(call: tuple[Any, ...]) -> tuple[Any, ...]:
    if call[0] == "replace":
        return (call[1].intent_id, _intent_key(call[1].new_intent))
    return call[1:]


async def test_same_seed_same_intents(autojump_clock) -> None:
    first = await _script(5)
    second = await _script(5)
    other = await _script(6)
    assert first == second
    kinds = {c[2] for c in first if c[0] == "submit"}
    assert {IntentKind.ENTRY, IntentKind.TAKE_PROFIT, IntentKind.EXIT} <= kinds  # a real session
    assert any(c[0] == "replace" for c in first)
    assert any(c[0] == "cancel" and c[2] == "stale_entry" for c in first)
    assert first != other


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reprice_offset_ticks": 5}, "reprice_offset_ticks"),  # not nearer than the entry
        ({"cancel_after_s": 10.0}, "cancel_after_s"),  # cancelled before it could be repriced
        ({"p_replace": 1.5}, "p_replace"),
        ({"interval_s": 0.0}, "interval_s"),
        ({"interval_s": float("nan")}, "interval_s"),
        ({"notional_buffer": D("0.99")}, "notional_buffer"),  # would size under the minimum
        ({"take_profit_bps": D(0)}, "take_profit_bps"),
        ({"intent_prefix": "de-mo"}, "intent_prefix"),
        ({"entry_offset_ticks": -1}, "entry_offset_ticks"),
        ({"specs": {BTC: "tick 0.1"}}, "specs.BTCUSDT"),
    ],
)
def test_bad_config_names_the_field(changes, field) -> None:
    with pytest.raises(CoreValueError) as exc:
        DemoConfig(**changes)
    assert exc.value.field == field


@pytest.mark.parametrize("symbols", [(), (BTC, BTC), ("btcusdt",), ("BTC-USDT",)])
def test_bad_symbols_are_refused(symbols) -> None:
    async def main() -> None:
        with pytest.raises(CoreValueError) as exc:
            make(host_now(), symbols=symbols)
        assert exc.value.field == "symbols"

    trio.run(main)


def _seed_for(side: Side) -> int:
    """A seed whose first entry draw is ``side`` (the draw is the RNG's first random())."""
    for seed in itertools.count():
        if (random.Random(seed).random() < 0.5) == (side is Side.BUY):
            return seed
    raise AssertionError("unreachable")
