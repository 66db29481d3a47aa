"""The ReplaceManager end to end: a real System on the in-process exchange, simulated time.

Each test builds the System like ``tests/test_system.py`` (MockClock with autojump, an
in-memory store, the simulated exchange with a fault schedule), waits for the posture to
allow entries, then runs a ReplaceManager over ``system.journal`` and ``system.router``.
What the exchange really did is read from the engine's history (the system never sees
it), and the journal is replayed event by event to check that the old and the new order
were never both possibly live (I7, I8).
"""

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import cast

import attrs
import pytest
import trio
import trio.testing

from scalper.actors.belief import BeliefConfig
from scalper.actors.journal import Journal
from scalper.actors.replace import (
    ReplaceManager,
    ReplaceManagerConfig,
    ReplaceOutcome,
    ReplaceResult,
)
from scalper.clock import simulated_clock
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import VenueOrderStatus
from scalper.core.replace import ReplaceConfig
from scalper.core.types import OrderType, Side
from scalper.messages import (
    CancelFailed,
    CancelRequested,
    CancelResolved,
    Event,
    OrderSending,
    PressureRaised,
    ReconcileCompleted,
    ReplaceAdmitted,
    ReplaceFinished,
    ReplaceOrder,
    ReplaceStepped,
    decode_event,
)
from scalper.state import AccountState
from scalper.store.store import Store
from scalper.system import System, SystemConfig, open_system
from scalper.venues.sim.engine import SimEngine
from scalper.venues.sim.faults import FaultInjector, FaultKind, FaultSpec
from scalper.venues.sim.inproc import InProcessVenue
from scalper.venues.sim.market import BookConfig
from scalper.venues.sim.records import FillRecorded, OrderAccepted, OrderClosed
from tests.venues.sim.simkit import BTC, make_engine, still_symbol

D = Decimal
REF = D("60000")
#: Past the posture's entry cooldown (16 s in the YELLOW posture the system reaches).
COOLDOWN = 20.0


@attrs.frozen
class Harness:
    venue: InProcessVenue
    system: System
    manager: ReplaceManager
    pressures: list[PressureRaised]


@asynccontextmanager
async def harness(
    *faults: FaultSpec,
    config: ReplaceManagerConfig | None = None,
    engine: SimEngine | None = None,
    system_config: SystemConfig | None = None,
) -> AsyncIterator[Harness]:
    engine = engine or make_engine(seed=3)
    injector = FaultInjector(faults, random.Random(3)) if faults else None
    venue = InProcessVenue(engine, injector, clock=trio.current_time)
    async with open_system(
        system_config or SystemConfig(symbols=(BTC,), seed=1),
        venue,
        Store.open(":memory:"),
        clock=simulated_clock(),
    ) as system:
        pressures: list[PressureRaised] = []

        async def on_pressure(event: PressureRaised) -> None:
            pressures.append(event)

        manager = ReplaceManager(
            system.journal,
            system.router,
            clock=system.clock,
            config=config,
            on_pressure=on_pressure,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.run)
            await until(lambda: system.knobs.allow_entries)  # boots ORANGE
            yield Harness(venue, system, manager, pressures)
            nursery.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], *, limit_s: float = 600.0) -> None:
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling virtual time is the point
            await trio.sleep(0.5)


def limit(
    intent_id: str,
    price: str,
    qty: str = "0.002",
    side: Side = Side.BUY,
    *,
    exit_: bool = False,
) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=side,
        quantity=D(qty),
        order_type=OrderType.LIMIT,
        price=D(price),
        kind=IntentKind.EXIT if exit_ else IntentKind.ENTRY,
        reduce_only=exit_,
    )


def coid_of(system: System, intent_id: str) -> str:
    (order,) = system.journal.state.orders_for_intent(intent_id)
    return order.client_order_id


async def place(h: Harness, intent: Intent) -> str:
    """Submit ``intent`` and wait until its order is acknowledged; return its client id."""
    receipt = await h.system.submit(intent, reference_price=REF)
    assert receipt.accepted, receipt
    state = h.system.journal.state
    await until(
        lambda: any(
            o.ledger_state.value in ("ACKED", "FILLED")
            for o in state.orders_for_intent(intent.intent_id)
        )
    )
    return coid_of(h.system, intent.intent_id)


def events(system: System, *types: type) -> list[Event]:
    out = []
    for entry in system.journal.store.entries():
        event = decode_event(entry.type, entry.payload)
        if isinstance(event, types):
            out.append(event)
    return out


def steps(system: System, replace_id: str) -> list[str]:
    return [
        e.state
        for e in events(system, ReplaceStepped)
        if isinstance(e, ReplaceStepped) and e.replace_id == replace_id
    ]


def finished(system: System, replace_id: str) -> ReplaceFinished:
    (event,) = [
        e
        for e in events(system, ReplaceFinished)
        if isinstance(e, ReplaceFinished) and e.replace_id == replace_id
    ]
    assert isinstance(event, ReplaceFinished)
    return event


def max_live_in_journal(system: System, intent_ids: set[str]) -> int:
    """Replay the journal; the most orders of ``intent_ids`` possibly live after any event."""
    state = AccountState(prefix=system.config.prefix)
    worst = 0
    for entry in system.journal.store.entries():
        state.apply(decode_event(entry.type, entry.payload), entry.wall_ms)
        live = sum(1 for i in intent_ids for o in state.orders_for_intent(i) if not o.is_terminal)
        worst = max(worst, live)
    return worst


def max_open_at_venue(venue: InProcessVenue, coids: set[str]) -> int:
    """Walk the exchange's history; the most of ``coids`` open at once (the ground truth)."""
    open_qty: dict[str, Decimal] = {}
    worst = 0
    for record in venue.engine.history.records:
        if isinstance(record, OrderAccepted) and record.client_order_id in coids:
            assert record.request.quantity is not None
            open_qty[record.client_order_id] = record.request.quantity
        elif isinstance(record, OrderClosed):
            open_qty.pop(record.client_order_id, None)
        elif isinstance(record, FillRecorded) and record.fill.client_order_id in open_qty:
            left = open_qty[record.fill.client_order_id] - record.fill.quantity
            if left <= 0:
                del open_qty[record.fill.client_order_id]
            else:
                open_qty[record.fill.client_order_id] = left
        worst = max(worst, len(open_qty))
    return worst


def clean_evidence(system: System, *coids: str) -> bool:
    """True if the journal's fold refused no evidence about these orders."""
    return not [c for c in system.journal.state.contradictions if c.split(":")[0] in coids]


def venue_status(venue: InProcessVenue, coid: str) -> VenueOrderStatus:
    return venue.engine.order_detail(BTC, client_order_id=coid).status


def ever_sent(venue: InProcessVenue, intent: Intent) -> bool:
    """True if the exchange ever accepted an order of ``intent`` (any generation)."""
    coids = {client_order_id("sc", intent.intent_id, intent.role, g) for g in range(3)}
    return any(r.client_order_id in coids for r in venue.engine.history.accepted())


def venue_position(venue: InProcessVenue) -> Decimal:
    return sum((p.quantity for p in venue.engine.positions() if p.symbol == BTC), D(0))


# ------------------------------------------------------------------------------ replace


async def test_resting_limit_entry_is_repriced(autojump_clock) -> None:
    async with harness() as h:
        old = await place(h, limit("e1", "59000"))
        await trio.sleep(COOLDOWN)
        result = await h.manager.replace(
            ReplaceOrder("e1", limit("e1b", "59100"), reason="chase_bid")
        )
        new = coid_of(h.system, "e1b")
        system, venue = h.system, h.venue
    assert result.outcome is ReplaceOutcome.REPLACED, result
    assert result.reason == "replaced"
    assert result.new_intent_id == "e1b"
    # The exchange: old canceled, new resting at the new price, never both open.
    assert venue_status(venue, old) is VenueOrderStatus.CANCELED
    assert venue_status(venue, new) is VenueOrderStatus.NEW
    assert venue.engine.order_detail(BTC, client_order_id=new).price == D("59100")
    assert max_open_at_venue(venue, {old, new}) == 1
    assert max_live_in_journal(system, {"e1", "e1b"}) == 1
    assert clean_evidence(system, old, new)
    # The journal tells the story under the old intent's ids.
    (admitted,) = events(system, ReplaceAdmitted)
    assert isinstance(admitted, ReplaceAdmitted)
    assert admitted.decision == "replace"
    assert (admitted.intent_id, admitted.correlation_id) == ("e1", "e1")
    # Worst case: both 0.002 buys fill from flat, valued at the higher price.
    assert admitted.worst_case_notional == D("0.004") * D("59100")
    assert steps(system, result.replace_id) == ["CANCEL_SENT", "NEW_SENT", "DONE"]
    done = finished(system, result.replace_id)
    assert (done.intent_id, done.correlation_id, done.outcome) == ("e1", "e1", "replaced")
    assert done.new_intent_id == "e1b"
    assert all(
        (e.intent_id, e.correlation_id) == ("e1", "e1")
        for e in events(system, ReplaceStepped)
        if isinstance(e, ReplaceStepped)
    )
    cancels = [e for e in events(system, CancelRequested) if isinstance(e, CancelRequested)]
    assert [c.client_order_id for c in cancels] == [old]
    # Journal before send, old settled before the new order is written ahead (I7).
    kinds = [type(e) for e in events(system, CancelResolved, OrderSending)]
    assert kinds[-2:] == [CancelResolved, OrderSending]
    assert h.pressures == []


async def test_envelope_refusal_degrades_to_cancel_reconcile_create(autojump_clock) -> None:
    async with harness() as h:
        # Long 0.002 already; the resting 0.002 buy is to become 0.013: worst case
        # 0.002 + 0.002 + 0.013 = 0.017 BTC * 59000 = 1003 USDT > the 1000 budget.
        await place(h, Intent(intent_id="m1", symbol=BTC, side=Side.BUY, quantity=D("0.002")))
        await until(lambda: h.system.journal.state.position(BTC) == D("0.002"))
        await trio.sleep(COOLDOWN)
        old = await place(h, limit("e2", "59000"))
        await trio.sleep(COOLDOWN)
        result = await h.manager.replace(ReplaceOrder("e2", limit("e2b", "59000", qty="0.013")))
        new = coid_of(h.system, "e2b")
        system, venue, pressures = h.system, h.venue, list(h.pressures)
    assert result.outcome is ReplaceOutcome.DEGRADED, result
    assert result.new_intent_id == "e2b"
    (admitted,) = events(system, ReplaceAdmitted)
    assert isinstance(admitted, ReplaceAdmitted)
    assert admitted.decision == "degrade_cancel_reconcile_create"
    assert admitted.worst_case_notional == D("0.017") * D("59000")
    assert steps(system, result.replace_id) == [
        "DEGRADE_CANCEL",
        "DEGRADE_RECONCILE",
        "DEGRADE_CREATE",
    ]
    assert [p.cause for p in pressures] == ["replace_envelope_block"]
    assert events(system, PressureRaised) == pressures
    # Never both live: the old one is canceled, reconciled, and only then the new one sent.
    assert venue_status(venue, old) is VenueOrderStatus.CANCELED
    assert venue_status(venue, new) is VenueOrderStatus.NEW
    assert max_open_at_venue(venue, {old, new}) == 1
    assert max_live_in_journal(system, {"e2", "e2b"}) == 1
    assert clean_evidence(system, old, new)
    cancel_seq = sending_seq = 0
    reconciles: list[tuple[int, bool]] = []
    for entry in system.journal.store.entries():
        event = decode_event(entry.type, entry.payload)
        if isinstance(event, CancelResolved) and event.client_order_id == old:
            cancel_seq = entry.seq
        elif isinstance(event, ReconcileCompleted) and cancel_seq and not sending_seq:
            reconciles.append((entry.seq, event.clean))
        elif isinstance(event, OrderSending) and event.client_order_id == new:
            sending_seq = entry.seq
    assert 0 < cancel_seq < sending_seq
    # Two passes after the cancel (the first may have used an older snapshot), the last clean.
    assert len(reconciles) >= 2
    assert reconciles[-1][1] is True


@pytest.mark.parametrize(
    ("mode", "expected_steps"),
    [
        # The spike fills it all: the cancel gets -2011, the status query says FILLED.
        ("full", ["CANCEL_SENT", "CANCEL_SENT_UNKNOWN", "FILLED_AFTER_CANCEL", "DONE"]),
        # One maker step fills part: the cancel is acked with executedQty > 0.
        ("partial", ["CANCEL_SENT", "FILLED_AFTER_CANCEL", "DONE"]),
    ],
)
async def test_fill_after_cancel_sends_no_new_order(
    autojump_clock, mode: str, expected_steps: list[str]
) -> None:
    fault = FaultSpec(
        start=0.0, end=100_000.0, kind=FaultKind.FILL_AFTER_CANCEL, params={"mode": mode}
    )
    # Thin maker liquidity so that one price step fills 0.001 of a 0.002 order.
    engine = make_engine(seed=3, symbol=still_symbol(book=BookConfig(resting_fill_qty=D("0.001"))))
    async with harness(fault, engine=engine) as h:
        old = await place(h, limit("e3", "59000"))
        await trio.sleep(COOLDOWN)
        replacement = limit("e3b", "59100")
        result = await h.manager.replace(ReplaceOrder("e3", replacement))
        await trio.sleep(5)
        system, venue = h.system, h.venue
        journal_position = system.journal.state.position(BTC)
        old_filled = system.journal.state.orders[old].filled_qty
    filled = D("0.002") if mode == "full" else D("0.001")
    assert result.outcome is ReplaceOutcome.FILLED_AFTER_CANCEL, result
    assert result.reason == "filled_after_cancel_no_new_order"
    assert result.new_intent_id == ""
    assert steps(system, result.replace_id) == expected_steps
    fill_steps = [
        e.fill_qty
        for e in events(system, ReplaceStepped)
        if isinstance(e, ReplaceStepped) and e.state == "FILLED_AFTER_CANCEL"
    ]
    assert fill_steps == [filled]
    # No new order anywhere: not at the exchange, not in the ledger.
    assert "e3b" not in system.journal.state.intents
    assert not ever_sent(venue, replacement)
    # The fill was journaled by the collector (never by the manager) and matches the venue.
    assert old_filled == filled
    assert journal_position == venue_position(venue) == filled
    assert clean_evidence(system, old)


async def test_cancel_answered_2011_while_live_is_a_race_not_a_success(autojump_clock) -> None:
    # Cancels are answered -2011 "Unknown order sent." while the order stays live, until
    # t=600: the first cancel of the replace falls in that window, the retry after it.
    lie_until = 600.0
    fault = FaultSpec(start=0.0, end=lie_until, kind=FaultKind.CANCEL_UNKNOWN_BUT_LIVE)
    async with harness(fault) as h:
        old = await place(h, limit("e4", "59000"))
        await trio.sleep(COOLDOWN)
        start = lie_until - 0.25
        assert trio.current_time() < start
        await trio.sleep_until(start)
        result = await h.manager.replace(ReplaceOrder("e4", limit("e4b", "59100")))
        new = coid_of(h.system, "e4b")
        system, venue, manager = h.system, h.venue, h.manager
        ambiguity = manager.budget.usage(BTC, trio.current_time())[2]
    assert result.outcome is ReplaceOutcome.REPLACED, result
    assert steps(system, result.replace_id) == [
        "CANCEL_SENT",
        "CANCEL_SENT_UNKNOWN",  # -2011: query, never assume
        "REPLACE_RACE",  # the query said open: cancel again
        "NEW_SENT",
        "DONE",
    ]
    failures = [e for e in events(system, CancelFailed) if isinstance(e, CancelFailed)]
    assert [(f.client_order_id, f.still_open) for f in failures] == [(old, True)]
    assert ambiguity == 1  # the unknown outcome counts against the symbol's budget
    assert max_open_at_venue(venue, {old, new}) == 1
    assert max_live_in_journal(system, {"e4", "e4b"}) == 1
    assert clean_evidence(system, old, new)
    assert venue_status(venue, old) is VenueOrderStatus.CANCELED
    assert venue_status(venue, new) is VenueOrderStatus.NEW


async def test_cancel_that_never_takes_gives_up_bounded_with_old_order_working(
    autojump_clock,
) -> None:
    fault = FaultSpec(start=0.0, end=100_000.0, kind=FaultKind.CANCEL_UNKNOWN_BUT_LIVE)
    async with harness(fault) as h:
        old = await place(h, limit("e5", "59000"))
        await trio.sleep(COOLDOWN)
        replacement = limit("e5b", "59100")
        result = await h.manager.replace(ReplaceOrder("e5", replacement))
        system, venue, pressures = h.system, h.venue, list(h.pressures)
        attempts = h.manager.config.core.max_cancel_attempts
        assert h.venue.injector is not None
        lies = [f for f in h.venue.injector.injected if f.kind is FaultKind.CANCEL_UNKNOWN_BUT_LIVE]
    assert result.outcome is ReplaceOutcome.GAVE_UP, result
    assert result.reason == "cancel_attempts_exhausted"
    assert len(lies) == attempts  # bounded (I2)
    assert venue_status(venue, old) is VenueOrderStatus.NEW
    assert "e5b" not in system.journal.state.intents
    assert not ever_sent(venue, replacement)
    assert [p.cause for p in pressures] == ["replace_race"]
    assert pressures[0].severity > h.manager.config.core.race_severity  # ambiguity raises it


async def test_replace_storm_gives_up_and_raises_pressure(autojump_clock) -> None:
    config = ReplaceManagerConfig(core=ReplaceConfig(max_global=2, max_per_symbol=2))
    async with harness(config=config) as h:
        await place(h, limit("s0", "59000"))
        results: list[ReplaceResult] = []
        for i in range(1, 4):
            await trio.sleep(COOLDOWN)
            results.append(
                await h.manager.replace(ReplaceOrder(f"s{i - 1}", limit(f"s{i}", f"{59000 + i}")))
            )
        survivor = coid_of(h.system, "s2")
        system, venue, pressures = h.system, h.venue, list(h.pressures)
    assert [r.outcome for r in results] == [
        ReplaceOutcome.REPLACED,
        ReplaceOutcome.REPLACED,
        ReplaceOutcome.GAVE_UP,
    ]
    assert results[2].reason == "replace_budget_symbol_exhausted"
    assert steps(system, results[2].replace_id) == []  # nothing was driven
    storm = [e for e in events(system, PressureRaised) if isinstance(e, PressureRaised)]
    assert [(p.source, p.cause, p.symbol) for p in storm] == [("replace", "replace_storm", BTC)]
    assert storm[0].correlation_id == "s2"
    assert storm[0].hold_s == config.pressure_hold_s
    assert pressures == storm
    # The refused replace cost nothing: the last good order still rests, uncancelled.
    assert venue_status(venue, survivor) is VenueOrderStatus.NEW
    cancelled = {
        e.client_order_id for e in events(system, CancelRequested) if isinstance(e, CancelRequested)
    }
    assert survivor not in cancelled
    assert "s3" not in system.journal.state.intents


async def test_a_new_manager_inherits_the_storm_budget_from_the_journal(autojump_clock) -> None:
    # Two replaces spend the symbol's budget; then the process "restarts": the journal is
    # replayed into a fresh state and a fresh manager is built on it. Its windows must
    # hold the two replaces, so the third is still refused (a crash is no budget reset).
    config = ReplaceManagerConfig(core=ReplaceConfig(max_global=2, max_per_symbol=2))
    async with harness(config=config) as h:
        await place(h, limit("r0", "59000"))
        for i in (1, 2):
            await trio.sleep(COOLDOWN)
            done = await h.manager.replace(
                ReplaceOrder(f"r{i - 1}", limit(f"r{i}", f"{59000 + i}"))
            )
            assert done.outcome is ReplaceOutcome.REPLACED, done
        rows = [(e.type, e.payload, e.wall_ms) for e in h.system.journal.store.entries()]
        replayed = AccountState.replay(rows)
        assert [(symbol, ambiguous) for _, symbol, ambiguous in replayed.replace_spent] == [
            (BTC, False),
            (BTC, False),
        ]
        reborn = ReplaceManager(
            cast(Journal, _ReplayedJournal(replayed)),
            h.system.router,
            clock=h.system.clock,
            config=config,
        )
        assert reborn.budget.usage(BTC, h.system.clock.now()) == (2, 2, 0)
        fresh = ReplaceManager(
            cast(Journal, _ReplayedJournal(AccountState())),
            h.system.router,
            clock=h.system.clock,
            config=config,
        )
        assert fresh.budget.usage(BTC, h.system.clock.now()) == (0, 0, 0)
        # Past the window the inherited spending is gone, as it would have been live.
        later = h.system.clock.now() + config.core.window_seconds + 1
        assert reborn.budget.usage(BTC, later) == (0, 0, 0)


@attrs.frozen
class _ReplayedJournal:
    """The one thing a ReplaceManager reads from its journal when it is built: the state."""

    state: AccountState


async def test_exit_replace_refused_by_budget_leaves_the_exit_working(autojump_clock) -> None:
    config = ReplaceManagerConfig(core=ReplaceConfig(max_global=1, max_per_symbol=1))
    async with harness(config=config) as h:
        await place(h, Intent(intent_id="m6", symbol=BTC, side=Side.BUY, quantity=D("0.002")))
        await until(lambda: h.system.journal.state.position(BTC) == D("0.002"))
        await place(h, limit("x1", "61000", side=Side.SELL, exit_=True))
        # Exits are not gated: no cooldown needed (I1).
        first = await h.manager.replace(
            ReplaceOrder("x1", limit("x2", "60900", side=Side.SELL, exit_=True))
        )
        second = await h.manager.replace(
            ReplaceOrder("x2", limit("x3", "60800", side=Side.SELL, exit_=True))
        )
        exit_coid = coid_of(h.system, "x2")
        system, venue = h.system, h.venue
    assert first.outcome is ReplaceOutcome.REPLACED, first
    assert second.outcome is ReplaceOutcome.GAVE_UP, second
    assert second.reason == "replace_budget_symbol_exhausted"
    # The exit still works: live at the exchange, not even asked to cancel.
    assert venue_status(venue, exit_coid) is VenueOrderStatus.NEW
    order = venue.engine.order_detail(BTC, client_order_id=exit_coid)
    assert order.reduce_only
    assert order.price == D("60900")
    cancelled = {
        e.client_order_id for e in events(system, CancelRequested) if isinstance(e, CancelRequested)
    }
    assert exit_coid not in cancelled
    assert venue_position(venue) == D("0.002")


# ------------------------------------------------------------------------------ refusals


async def test_invalid_requests_are_refused_journaled_and_send_nothing(autojump_clock) -> None:
    async with harness() as h:
        old = await place(h, limit("e7", "59000"))
        await trio.sleep(COOLDOWN)
        before = len(h.venue.engine.history)
        cases = {
            "unknown_intent": ReplaceOrder("nope", limit("n1", "59100")),
            "symbol_mismatch": ReplaceOrder(
                "e7",
                Intent(
                    intent_id="n2",
                    symbol="ETHUSDT",
                    side=Side.BUY,
                    quantity=D("0.1"),
                    order_type=OrderType.LIMIT,
                    price=D("3000"),
                ),
            ),
            "side_mismatch": ReplaceOrder("e7", limit("n3", "61000", side=Side.SELL)),
            "same_intent_id": ReplaceOrder("e7", limit("e7", "59100")),
            "lane_mismatch": ReplaceOrder("e7", limit("n4", "59100", exit_=True)),
        }
        results = {reason: await h.manager.replace(cmd) for reason, cmd in cases.items()}
        after = len(h.venue.engine.history)
        system = h.system
    for reason, result in results.items():
        assert (result.outcome, result.reason) == (ReplaceOutcome.REFUSED, reason)
        done = finished(system, result.replace_id)
        assert (done.outcome, done.reason, done.new_intent_id) == ("refused", reason, "")
    assert finished(system, results["side_mismatch"].replace_id).correlation_id == "e7"
    assert after == before  # nothing reached the exchange
    assert events(system, CancelRequested, ReplaceAdmitted) == []
    assert system.journal.state.orders[old].ledger_state.value == "ACKED"


async def test_second_replace_of_the_same_intent_is_refused_while_one_runs(
    autojump_clock,
) -> None:
    # Cancels vanish (a timeout after 5 s, nothing executed): the first replace queries,
    # retries, and gives up bounded; meanwhile a second request for the intent is refused.
    fault = FaultSpec(
        start=0.0,
        end=100_000.0,
        kind=FaultKind.DROP_REQUEST,
        params={"timeout_s": 5.0},
        operations=frozenset({"cancel"}),
    )
    async with harness(fault) as h:
        old = await place(h, limit("e8", "59000"))
        await trio.sleep(COOLDOWN)
        outcome: dict[str, ReplaceResult] = {}

        async def first() -> None:
            outcome["first"] = await h.manager.replace(ReplaceOrder("e8", limit("e8b", "59100")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await until(lambda: "e8" in h.manager.in_flight)
            await trio.sleep(1.0)
            second = await h.manager.replace(ReplaceOrder("e8", limit("e8c", "59200")))
            also_new = await h.manager.replace(
                ReplaceOrder("e8", limit("e8b", "59300"), reason="same new id")
            )
        system, venue = h.system, h.venue
    assert (second.outcome, second.reason) == (ReplaceOutcome.REFUSED, "replace_in_progress")
    assert also_new.reason == "replace_in_progress"
    result = outcome["first"]
    assert result.outcome is ReplaceOutcome.GAVE_UP
    assert result.reason == "cancel_attempts_exhausted"
    assert venue_status(venue, old) is VenueOrderStatus.NEW
    assert not ever_sent(venue, limit("e8b", "59100"))
    assert not ever_sent(venue, limit("e8c", "59200"))
    assert "e8c" not in system.journal.state.intents


async def test_entry_replace_the_posture_would_refuse_keeps_the_old_order(autojump_clock) -> None:
    # A halt cancels resting entries by default; keep the old order resting so the replace
    # itself is what the halt refuses.
    keep = SystemConfig(symbols=(BTC,), seed=1, belief=BeliefConfig(cancel_entries_on_halt=False))
    async with harness(system_config=keep) as h:
        first = await place(h, limit("e9", "59000"))
        # Within the entry cooldown: a reprice is not an entry (it adds no risk beyond the
        # order it replaces), so the cooldown does not refuse it; every other gate does.
        result = await h.manager.replace(ReplaceOrder("e9", limit("e9b", "59100")))
        old = coid_of(h.system, "e9b")
        await h.system.halt("operator")
        halted = await h.manager.replace(ReplaceOrder("e9b", limit("e9c", "59200")))
        system, venue = h.system, h.venue
    assert (result.outcome, result.reason) == (ReplaceOutcome.REPLACED, "replaced")
    assert venue_status(venue, first) is VenueOrderStatus.CANCELED
    assert (halted.outcome, halted.reason) == (ReplaceOutcome.REFUSED, "halted")
    assert venue_status(venue, old) is VenueOrderStatus.NEW
    cancels = [c for c in events(system, CancelRequested) if isinstance(c, CancelRequested)]
    assert [c.client_order_id for c in cancels] == [first]


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(CoreValueError) as err:
        ReplaceManagerConfig(max_exposure_notional=D("-1"))
    assert err.value.field == "max_exposure_notional"
    with pytest.raises(CoreValueError) as err:
        ReplaceManagerConfig(max_exposure_notional=1000)  # type: ignore[arg-type]
    assert err.value.field == "max_exposure_notional"
    with pytest.raises(CoreValueError) as err:
        ReplaceManagerConfig(new_order_wait_s=float("nan"))
    assert err.value.field == "new_order_wait_s"
    with pytest.raises(CoreValueError) as err:
        ReplaceManagerConfig(reconcile_passes=0)
    assert err.value.field == "reconcile_passes"
    assert ReplaceManagerConfig().max_exposure_notional == D(1000)


async def test_exit_of_a_position_above_the_budget_is_replaced_not_degraded(
    autojump_clock,
) -> None:
    # Two entries build 0.026 BTC (~1560 USDT), above the 1000 USDT envelope budget. Its
    # exit's replace cannot add exposure: it must not take the slow path (cancel, wait for
    # reconciles, create) that leaves the position without its exit for seconds (I1).
    async with harness() as h:
        for i in range(2):
            await place(
                h, Intent(intent_id=f"m{i}", symbol=BTC, side=Side.BUY, quantity=D("0.013"))
            )
            await trio.sleep(COOLDOWN)
        await until(lambda: h.system.journal.state.position(BTC) == D("0.026"))
        old = await place(h, limit("x1", "61000", qty="0.010", side=Side.SELL, exit_=True))
        result = await h.manager.replace(
            ReplaceOrder("x1", limit("x2", "60900", qty="0.010", side=Side.SELL, exit_=True))
        )
        new = coid_of(h.system, "x2")
        system, venue = h.system, h.venue
    assert result.outcome is ReplaceOutcome.REPLACED, result
    (admitted,) = events(system, ReplaceAdmitted)
    assert isinstance(admitted, ReplaceAdmitted)
    assert admitted.decision == "replace"
    assert admitted.worst_case_notional == D("0.026") * D("61000")  # above 1000, held already
    assert venue_status(venue, old) is VenueOrderStatus.CANCELED
    assert venue_status(venue, new) is VenueOrderStatus.NEW
    assert max_open_at_venue(venue, {old, new}) == 1


async def test_manager_stopped_mid_replace_journals_and_answers_interrupted(
    autojump_clock,
) -> None:
    # The cancel vanishes for 5 s; the manager is stopped (a supervisor restart, a
    # shutdown) meanwhile: the caller still gets an answer and the journal says why.
    fault = FaultSpec(
        start=0.0,
        end=100_000.0,
        kind=FaultKind.DROP_REQUEST,
        params={"timeout_s": 5.0},
        operations=frozenset({"cancel"}),
    )
    async with harness(fault) as h:
        old = await place(h, limit("e10", "59000"))
        await trio.sleep(COOLDOWN)
        manager = ReplaceManager(h.system.journal, h.system.router, clock=h.system.clock)
        answers: list[ReplaceResult] = []
        run_scope = trio.CancelScope()

        async def serve() -> None:
            with run_scope:
                await manager.run()

        async def ask() -> None:
            answers.append(await manager.replace(ReplaceOrder("e10", limit("e10b", "59100"))))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            nursery.start_soon(ask)
            await until(lambda: "e10" in manager.in_flight)
            await trio.sleep(1.0)
            run_scope.cancel()
        system, venue = h.system, h.venue
        in_flight = manager.in_flight
    (result,) = answers
    assert (result.outcome, result.reason) == (ReplaceOutcome.GAVE_UP, "interrupted")
    done = finished(system, result.replace_id)
    assert (done.outcome, done.reason) == ("gave_up", "interrupted")
    assert in_flight == frozenset()
    # The cancel never executed; the old order keeps working and no new order exists.
    assert venue_status(venue, old) is VenueOrderStatus.NEW
    assert not ever_sent(venue, limit("e10b", "59100"))
