"""The demo strategy driving a real System over the in-process simulated exchange.

Everything is real except the host adapter below (the lead's System adapter is not part of
this file's subject): Router gates, journal, evidence, reconcile, posture; the exchange is
the deterministic engine on a moving price path, under MockClock. The engine's history is
the ground truth the test checks: entries reached the book and filled, take-profits rested
at the venue on the closing side, and the account never held more than one entry's size.
"""

import random
from decimal import Decimal

import attrs
import trio

from scalper.actors.router import IntentReceipt
from scalper.clock import simulated_clock
from scalper.core.ids import Role, parse_client_order_id
from scalper.core.intents import Intent
from scalper.core.posture import GuardKnobs
from scalper.core.types import OrderType, Side
from scalper.messages import ReplaceOrder
from scalper.state import AccountState
from scalper.store.store import Store
from scalper.strategy.demo import DemoConfig, DemoStrategy
from scalper.system import System, SystemConfig, open_system
from scalper.venues.sim.inproc import InProcessVenue
from tests.venues.sim.simkit import BTC, make_engine, still_symbol

D = Decimal
PREFIX = "sc"


@attrs.frozen
class Replaced:
    outcome: str
    reason: str = ""


@attrs.define
class SystemHost:
    """System as a StrategyHost; replace is a cancel then a submit (System.replace may lag)."""

    system: System
    venue: InProcessVenue

    @property
    def knobs(self) -> GuardKnobs:
        return self.system.knobs

    @property
    def state(self) -> AccountState:
        return self.system.journal.state

    async def submit(
        self, intent: Intent, *, confidence: float, reference_price: Decimal | None, source: str
    ) -> IntentReceipt:
        return await self.system.submit(
            intent, confidence=confidence, reference_price=reference_price, source=source
        )

    async def cancel(self, intent_id: str, reason: str) -> None:
        await self.system.cancel(intent_id, reason)

    async def replace(self, command: ReplaceOrder) -> Replaced:
        await self.system.cancel(command.intent_id, command.reason)
        receipt = await self.system.submit(
            command.new_intent,
            confidence=0.9,
            reference_price=command.reference_price,
            source="demo",
        )
        return Replaced("replaced" if receipt.accepted else "refused", receipt.reason)

    async def mark_price(self, symbol: str) -> Decimal:
        return await self.venue.mark_price(symbol)


def ours(coid: str, role: Role) -> bool:
    info = parse_client_order_id(coid, PREFIX)
    return info.ours and info.role is role


async def test_demo_strategy_trades_through_a_real_system(autojump_clock) -> None:
    # A walking price (3 bps a second) so passive entries fill and take-profits can rest.
    engine = make_engine(symbol=still_symbol(volatility_bps=3.0), seed=21)
    venue = InProcessVenue(engine, clock=trio.current_time)
    config = DemoConfig(max_hold_s=120.0, take_profit_bps=D(15))
    async with (
        open_system(
            SystemConfig(symbols=(BTC,), seed=4),
            venue,
            Store.open(":memory:"),
            clock=simulated_clock(),
        ) as system,
        trio.open_nursery() as nursery,
    ):
        strategy = DemoStrategy(
            SystemHost(system, venue),
            symbols=(BTC,),
            rng=random.Random(3),
            clock=system.clock,
            config=config,
        )
        nursery.start_soon(strategy.run)

        def venue_has(role: Role, order_type: OrderType) -> bool:
            return any(
                ours(a.client_order_id, role) and a.request.order_type is order_type
                for a in engine.history.accepted()
            )

        def traded() -> bool:
            return venue_has(Role.TP, OrderType.TAKE_PROFIT_MARKET) and bool(
                engine.history.fills(BTC)
            )

        with trio.fail_after(900):
            while not traded():  # noqa: ASYNC110 - polling virtual time is the point
                await trio.sleep(1)
        await trio.sleep(300)  # more trading: take-profits, stale entries, a max-hold exit
        nursery.cancel_scope.cancel()

    accepted = engine.history.accepted()
    entries = [a for a in accepted if ours(a.client_order_id, Role.ENTRY)]
    # (A triggered take-profit's market child reuses its client id; keep the algo orders.)
    take_profits = [a for a in accepted if ours(a.client_order_id, Role.TP) and a.algo]
    assert entries
    assert take_profits
    # Entries are small passive LIMIT orders just above the 100 USDT minimum.
    for entry in entries:
        req = entry.request
        assert (req.order_type, req.reduce_only) == (OrderType.LIMIT, False)
        assert req.quantity == D("0.002")
        assert req.price is not None
        assert D(100) <= req.quantity * req.price <= system.knobs.max_notional
    entry_ids = {e.order_id for e in entries}
    assert any(f.order_id in entry_ids for f in engine.history.fills(BTC))  # entries filled
    # Ground truth: the account never held more than one entry, and every take-profit was
    # reduce-only on the side that closes what was held when it was placed.
    position = D(0)
    positions_at: list[tuple[float, Decimal]] = []
    for fill in engine.history.fills(BTC):
        position += fill.quantity if fill.side is Side.BUY else -fill.quantity
        assert abs(position) <= D("0.002")
        positions_at.append((fill.venue_time_ms, position))
    for tp in take_profits:
        req = tp.request
        assert req.reduce_only
        assert req.order_type is OrderType.TAKE_PROFIT_MARKET
        held = [p for t, p in positions_at if t <= engine.venue_time_ms(tp.ts)]
        assert held
        assert held[-1] != 0
        assert req.side is (Side.SELL if held[-1] > 0 else Side.BUY)
        assert req.quantity == abs(held[-1])
    # The journal agrees about who asked: every risk-increasing order came from a demo
    # intent (anything else, the ProtectionManager's stops, is an exit).
    state = system.journal.state
    for order in state.orders.values():
        assert strategy.owns(order.intent_id) or not order.risk_increasing
    assert state.count("intent_rejected.duplicate_intent") == 0
    assert strategy.counters.get("enter.accepted", 0) >= 1
    assert strategy.counters.get("take_profit.accepted", 0) >= 1
