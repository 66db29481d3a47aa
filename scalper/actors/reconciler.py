"""The Reconciler actor: core.reconcile on every snapshot, bounded repairs, BeliefState out.

Theory of operation
-------------------

Reconciliation is the authority (I4). For every :class:`~scalper.actors.evidence.SnapshotReady`
the actor builds the :class:`~scalper.core.reconcile.LocalView` from the journal's state,
runs :meth:`scalper.core.reconcile.Reconciler.reconcile`, journals the result
(:class:`~scalper.messages.ReconcileCompleted`, with the one-line summary) and carries out
the repairs core planned. Core already bounds them (one per kind and symbol per cooldown,
a maximum per pass); the actor adds nothing but the routing:

* belief repairs are journaled directly: ``SYNC_POSITION`` (the venue's size is adopted,
  :class:`~scalper.messages.PositionSynced`), ``MARK_ORDER_GONE``
  (:class:`~scalper.messages.OrderMissing`: status unknown, resolved by query, never a
  resend licence), ``ADOPT_ORDER`` and ``FREEZE_SYMBOL``;
* evidence repairs (``QUERY_ORDER``) go to the EvidenceCollector, which queries the orders
  and backfills their fills (I10);
* exchange repairs (``CANCEL_ORDER``) go through the Router's idempotent cancel (I3);
* protection repairs (``PLACE_PROTECTION``, ``RESIZE_PROTECTION``) go to the protection
  channel when one is wired (the ProtectionManager); without one they are journaled as
  :class:`~scalper.messages.RepairDeferred` so the gap is visible, and the protection gap
  keeps pressing the posture (I9).

Every pass ends with a :class:`BeliefState` for the BeliefController: the result, the
evidence health and the balances, from which it computes belief debt, posture and the
kill-switch inputs (the mismatch streak).
"""

from decimal import Decimal

import attrs
import trio

from scalper.actors.evidence import QueryOrders, SnapshotReady
from scalper.actors.journal import Journal
from scalper.actors.router import LookupOutcome, Router
from scalper.clock import Clock
from scalper.core.evidence import EvidenceSnapshot
from scalper.core.ids import parse_client_order_id
from scalper.core.model import Balance
from scalper.core.reconcile import Reconciler, ReconcileResult, RepairAction, RepairKind
from scalper.crashpoints import CrashPoint, CrashPoints
from scalper.messages import (
    OrderAdopted,
    OrderMissing,
    PositionSynced,
    ReconcileCompleted,
    RepairDeferred,
    RepairRequest,
    SymbolFrozen,
)

__all__ = ["BeliefState", "ReconcilerActor"]


@attrs.frozen
class BeliefState:
    """Reconciler to BeliefController: what the last pass found, with evidence health."""

    result: ReconcileResult
    evidence: EvidenceSnapshot
    balances: tuple[Balance, ...]

    @property
    def equity(self) -> Decimal | None:
        """USDT margin balance (wallet plus unrealized PnL), if the balances were read."""
        for b in self.balances:
            if b.asset == "USDT":
                return (
                    b.margin_balance
                    if b.margin_balance is not None
                    else (b.wallet_balance + b.unrealized_pnl)
                )
        return None


class ReconcilerActor:
    """Runs core.reconcile on each snapshot and routes the repairs (module docstring).

    Args:
        journal: the single writer (and the state the view is built from).
        clock: the injected clock.
        reconciler: core's reconciler (soft state: a restart starts it empty, which only
            makes it more cautious).
        snapshots: snapshots from the EvidenceCollector.
        queries: the EvidenceCollector's query channel.
        router: for cancels.
        beliefs: where :class:`BeliefState` goes (the BeliefController).
        protection: where protection repairs go, if a ProtectionManager runs.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        clock: Clock,
        reconciler: Reconciler,
        snapshots: trio.MemoryReceiveChannel[SnapshotReady],
        queries: trio.MemorySendChannel[QueryOrders],
        router: Router,
        beliefs: trio.MemorySendChannel[BeliefState],
        protection: trio.MemorySendChannel[RepairRequest] | None = None,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._reconciler = reconciler
        self._snapshots = snapshots
        self._queries = queries
        self._router = router
        self._beliefs = beliefs
        self._protection = protection
        self._sync_wait_s = 10.0
        self._crash = crash_points or CrashPoints()
        self.passes = 0
        self.last: ReconcileResult | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile every snapshot until cancelled; a restart starts core's soft state afresh."""
        core = self._reconciler
        self._reconciler = Reconciler(core.config, core.orphans, core.prefix)
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for ready in self._snapshots:
                result = await self.reconcile_once(ready, nursery)
                belief = BeliefState(result, ready.evidence, ready.balances)
                if belief.equity is not None:
                    # The Router's leverage check divides by the freshest equity.
                    self._router.note_equity(belief.equity)
                await self._beliefs.send(belief)

    async def reconcile_once(self, ready: SnapshotReady, nursery: trio.Nursery) -> ReconcileResult:
        """One pass: reconcile, journal the result, start the repairs."""
        now = self._clock.now()
        view = self._journal.state.local_view(self._clock.from_wall_ms)
        result = self._reconciler.reconcile(
            view,
            ready.snapshot,
            now,
            error=(ready.error or "snapshot_unavailable") if ready.snapshot is None else None,
        )
        self._crash.check(CrashPoint.DURING_RECONCILE)
        self.passes += 1
        self.last = result
        correlation_id = f"reconcile:{self.passes}"
        await self._journal.append(
            ReconcileCompleted(
                summary=result.summary.line(),
                clean=result.clean,
                streak=result.streak,
                mismatches=tuple(
                    f"{m.kind}:{m.symbol}:{m.client_order_id or m.position_side}"
                    for m in result.mismatches
                ),
                repairs=tuple(f"{r.kind}:{r.symbol}" for r in result.repairs),
                skipped=tuple(
                    f"{s.action.kind}:{s.action.symbol}:{s.cause}" for s in result.skipped
                ),
                correlation_id=correlation_id,
                deferred=tuple(
                    f"{d.reason}:{d.symbol}:{d.client_order_id or d.position_side}"
                    for d in result.deferred
                ),
            )
        )
        for action in result.repairs:
            await self._repair(action, correlation_id, nursery)
        return result

    async def _repair(
        self, action: RepairAction, correlation_id: str, nursery: trio.Nursery
    ) -> None:
        state = self._journal.state
        kind = action.kind
        if kind is RepairKind.QUERY_ORDER:
            coids = tuple(t.client_order_id for t in action.targets if t.client_order_id)
            await self._queries.send(QueryOrders(action.symbol, coids, correlation_id))
        elif kind is RepairKind.MARK_ORDER_GONE:
            for t in action.targets:
                order = state.orders.get(t.client_order_id or "")
                if order is not None:
                    await self._journal.append(
                        OrderMissing(
                            order.intent_id,
                            order.correlation_id,
                            order.client_order_id,
                            self._clock.wall_ms(),
                        )
                    )
        elif kind is RepairKind.SYNC_POSITION:
            # Evidence first: a position difference is usually fills we have not journaled
            # yet. Backfill, then adopt the venue's size only for what fills do not explain;
            # syncing first would count those fills twice when they arrive.
            done = trio.Event()
            query = QueryOrders(action.symbol, (), correlation_id, done)
            await self._queries.send(query)
            with trio.move_on_after(self._sync_wait_s):
                await done.wait()
            if not query.backfilled:
                # The trades were not all read (the read failed or timed out, or a trade
                # could not be attributed yet): fills may still be missing from the
                # journal, and syncing now would count them twice when they arrive.
                await self._journal.append(
                    RepairDeferred(kind.value, action.symbol, "backfill_incomplete", correlation_id)
                )
                return
            state = self._journal.state
            taken_at = self.last.taken_at if self.last is not None else None
            for t in action.targets:
                if (
                    t.quantity is None
                    or state.position(action.symbol, t.position_side) == t.quantity
                ):
                    continue
                leg = state.legs.get((action.symbol, t.position_side))
                if (
                    leg is not None
                    and leg.updated_wall_ms is not None
                    and taken_at is not None
                    and self._clock.from_wall_ms(leg.updated_wall_ms) >= taken_at
                ):
                    # A fill changed the leg after the snapshot was taken: the snapshot is
                    # older news than the journal for this leg; the next one decides.
                    await self._journal.append(
                        RepairDeferred(
                            kind.value, action.symbol, "leg_changed_since_snapshot", correlation_id
                        )
                    )
                    continue
                await self._journal.append(
                    PositionSynced(
                        symbol=action.symbol,
                        position_side=t.position_side,
                        quantity=t.quantity,
                        previous=state.position(action.symbol, t.position_side),
                        reason=",".join(action.reasons),
                        correlation_id=correlation_id,
                    )
                )
        elif kind is RepairKind.CANCEL_ORDER:
            for t in action.targets:
                if t.client_order_id and t.client_order_id in state.orders:
                    nursery.start_soon(self._router.cancel_order, t.client_order_id, "reconcile")
                elif t.order_id:
                    nursery.start_soon(
                        self._router.cancel_foreign, action.symbol, t.order_id, "orphan"
                    )
        elif kind is RepairKind.FREEZE_SYMBOL:
            if action.symbol not in state.frozen_symbols:
                await self._journal.append(
                    SymbolFrozen(action.symbol, True, ",".join(action.reasons))
                )
        elif kind is RepairKind.ADOPT_ORDER:
            await self._adopt(action, correlation_id)
        elif self._protection is not None:
            await self._protection.send(RepairRequest(action, correlation_id))
        else:
            await self._journal.append(
                RepairDeferred(kind.value, action.symbol, "no_protection_manager", correlation_id)
            )

    async def _adopt(self, action: RepairAction, correlation_id: str) -> None:
        state = self._journal.state
        for t in action.targets:
            coid = t.client_order_id
            if not coid or coid in state.orders:
                continue
            # Adoption needs the venue's full record of the order: look it up first.
            found = await self._router.lookup(action.symbol, coid)
            order = found.order
            if order is None:
                if found.outcome is LookupOutcome.UNKNOWN:
                    # Not "gone": the look-up failed. A later pass plans the adoption again.
                    await self._journal.append(
                        RepairDeferred(
                            action.kind.value,
                            action.symbol,
                            f"lookup_unknown:{found.reason}",
                            correlation_id,
                        )
                    )
                continue
            info = parse_client_order_id(coid, state.prefix)
            intent_id = f"adopted:{info.intent_digest or coid}"
            await self._journal.append(
                OrderAdopted(intent_id, correlation_id, coid, order, ",".join(action.reasons))
            )
