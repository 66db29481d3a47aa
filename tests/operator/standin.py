"""A hand-written journal folded into an AccountState, read through a stand-in system.

The stand-in has exactly the members the operator surface uses
(:class:`~scalper.operator.target.OperatedSystem`), over a state whose every order and
fill the test wrote, at explicit wall times: envelope arithmetic and ages can be checked
to the digit.
"""

from typing import Any, cast

import attrs
import trio

from scalper.clock import Clock
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.posture import PostureConfig, PostureController
from scalper.core.types import OrderType, Side
from scalper.messages import (
    FillApplied,
    IntentAccepted,
    Lane,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderSending,
)
from scalper.operator.target import OperatedSystem
from scalper.state import AccountState
from scalper.system import SystemStatus
from tests.operator.kit import BTC, REF, D

EPOCH_MS = 1_767_225_600_000


@attrs.define
class Ledger:
    """Folds hand-written events into an AccountState, at explicit wall times."""

    state: AccountState = attrs.Factory(AccountState)
    wall_ms: int = EPOCH_MS

    def at(self, seconds: float) -> "Ledger":
        self.wall_ms = EPOCH_MS + round(seconds * 1000)
        return self

    def send(self, intent: Intent, *, ack: bool = True) -> str:
        coid = f"sc-{intent.intent_id}-0"
        lane = Lane.EXIT if intent.is_exit else Lane.ENTRY
        self.state.apply(
            IntentAccepted(intent, lane, "test", intent.intent_id, intent.correlation_id, REF),
            self.wall_ms,
        )
        self.state.apply(
            OrderSending(
                intent.intent_id,
                intent.correlation_id,
                coid,
                0,
                intent.to_order_request(coid),
                not intent.is_exit,
                5000,
                self.wall_ms,
            ),
            self.wall_ms,
        )
        if ack:
            order = VenueOrder(
                symbol=intent.symbol,
                order_id=f"v{len(self.state.orders)}",
                client_order_id=coid,
                side=intent.side,
                order_type=intent.order_type,
                status=VenueOrderStatus.NEW,
                quantity=intent.quantity or D(0),
                price=intent.price,
                stop_price=intent.stop_price,
                reduce_only=intent.reduce_only,
                close_position=intent.close_position,
            )
            self.state.apply(
                OrderAcked(intent.intent_id, intent.correlation_id, coid, order), self.wall_ms
            )
        return coid

    def unknown(self, intent: Intent, coid: str) -> None:
        self.state.apply(
            OrderOutcomeUnknown(
                intent.intent_id, intent.correlation_id, coid, "AMBIGUOUS", None, "timeout"
            ),
            self.wall_ms,
        )

    def fill(self, intent: Intent, coid: str, trade_id: str, qty: str, price: str) -> None:
        fill = Fill(
            symbol=intent.symbol,
            trade_id=trade_id,
            order_id="v",
            client_order_id=coid,
            side=intent.side,
            quantity=D(qty),
            price=D(price),
        )
        self.state.apply(
            FillApplied(intent.intent_id, intent.correlation_id, fill, "stream"), self.wall_ms
        )


@attrs.define
class _Journal:
    state: AccountState
    lag: dict[str, int]

    def subscriber_lag(self) -> dict[str, int]:
        return dict(self.lag)


@attrs.define
class _Belief:
    posture: PostureController
    last_decision: None = None


@attrs.define
class _Supervisor:
    restart_counts: dict[str, int]


@attrs.define
class StandIn:
    """Exactly the members the operator surface reads, over a hand-made state."""

    journal: _Journal
    clock: Clock
    belief: _Belief = attrs.Factory(lambda: _Belief(PostureController(PostureConfig())))
    supervisor: _Supervisor = attrs.Factory(lambda: _Supervisor({"router": 2, "evidence": 0}))
    stopped: trio.Event = attrs.Factory(trio.Event)
    stop_reason: str = ""
    unprotected: dict[str, float] = attrs.Factory(dict)

    @property
    def knobs(self) -> Any:
        return self.belief.posture.knobs

    def unprotected_seconds(self) -> dict[str, float]:
        return dict(self.unprotected)

    def status(self) -> SystemStatus:
        state = self.journal.state
        return SystemStatus(
            posture=self.belief.posture.mode.value,
            causes=("unknown_intents",),
            unlock=("mismatch_streak 0 <= 0: met",),
            halted=state.halted,
            halts=dict(state.halts),
            frozen_symbols=dict(state.frozen_symbols),
            positions={},
            open_orders=(),
            unknown_orders=(),
            open_intents=(),
            last_reconcile=None,
            restarts=dict(self.supervisor.restart_counts),
            journal_entries=state.events_applied,
            incarnation=7,
        )


def stand_in(ledger: Ledger, now_s: float, **kwargs: Any) -> OperatedSystem:
    clock = Clock(epoch_ms_at_start=EPOCH_MS, trio_time_at_start=0.0, monotonic=lambda: now_s)
    system = StandIn(_Journal(ledger.state, {"console": 3}), clock, **kwargs)
    return cast(OperatedSystem, system)


def limit(intent_id: str, side: Side, qty: str, price: str, *, reduce_only: bool = False) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=side,
        quantity=D(qty),
        kind=IntentKind.EXIT if reduce_only else IntentKind.ENTRY,
        order_type=OrderType.LIMIT,
        price=D(price),
        reduce_only=reduce_only,
    )


def stop(intent_id: str, qty: str, price: str) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.SELL,
        quantity=D(qty),
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=D(price),
        reduce_only=True,
    )


def busy_long() -> tuple[Ledger, dict[str, str]]:
    """A 0.005 BTC long bought at 60000, then 0.001 sold at 61000 by a resting sell entry.

    Open: a 0.002 stop (acked), a 0.003 stop whose create is unresolved, a 0.004 buy
    entry at 59000, the 0.010 sell entry (0.009 left) and a 0.004 reduce-only exit.
    """
    ledger = Ledger()
    buy = Intent(intent_id="e1", symbol=BTC, side=Side.BUY, quantity=D("0.005"))
    coids = {"e1": ledger.at(10).send(buy)}
    ledger.fill(buy, coids["e1"], "t1", "0.005", "60000")
    coids["s1"] = ledger.at(12).send(stop("s1", "0.002", "59000"))
    s2 = stop("s2", "0.003", "58900")
    coids["s2"] = ledger.at(20).send(s2, ack=False)
    ledger.unknown(s2, coids["s2"])
    coids["l1"] = ledger.at(30).send(limit("l1", Side.BUY, "0.004", "59000"))
    sell = limit("l2", Side.SELL, "0.010", "61000")
    coids["l2"] = ledger.at(31).send(sell)
    ledger.fill(sell, coids["l2"], "t2", "0.001", "61000")
    coids["x1"] = ledger.at(32).send(limit("x1", Side.SELL, "0.004", "62000", reduce_only=True))
    return ledger, coids
