"""The Router: turns intents into exchange orders, at most one risk-increasing order each.

Theory of operation
-------------------

Two lanes, decided once by :attr:`scalper.core.intents.Intent.is_exit`:

* the **entry lane** checks, in order: the durable halt flag (operator or kill switch), the
  posture's :class:`~scalper.core.posture.GuardKnobs` (entries allowed, confidence, notional,
  cooldown, resting entries per symbol), frozen symbols, and the last-hop caps of
  :class:`RouterConfig` (order rate, open orders per symbol, notional). A refusal is
  journaled as :class:`~scalper.messages.IntentRejected` with a reason tag;
* the **exit lane** (reduce-only, close-position, protective stops) consults none of that
  (I1). It shares only the ledger discipline below, which can never block an exit: an exit
  that is refused for a duplicate intent id is already being worked.

Then for both lanes, per intent, in its own task:

1. **Ledger check (I7).** An intent id the journal already knows is refused
   (``duplicate_intent``), and a new generation is sent only when every earlier generation
   of the intent is proven ABSENT.
2. **Journal before send.** :class:`~scalper.messages.OrderSending` (the full request, the
   generation, the recvWindow and the wall time) is durable before the request leaves.
3. **Send, bounded.** Each request runs in a cancel scope (``request_timeout_s``). A
   RETRYABLE error (the venue says the request was not executed) is retried with the same
   client order id, with seeded backoff bounded by core's :class:`~scalper.core.retry.RetryConfig`
   and one :class:`~scalper.messages.RetryScheduled` per attempt (I2).
4. **Ambiguity is resolved by evidence, never by a resend.** A timeout, 5xx, -1006 or
   -1007 journals :class:`~scalper.messages.OrderOutcomeUnknown`; the Router then queries
   by client order id (and watches the journal for stream evidence). Found: PRESENT. Not
   found counts only after ``sent + recvWindow + absent_margin_ms`` has passed on the
   clock, and ``absent_confirmations`` such answers at least ``absent_query_gap_s`` apart
   prove ABSENT; only then may the next generation (a new client order id) be sent, and at
   most ``max_generations`` in all. -4116 on create proves the order exists.
5. **Cancel is idempotent with a status cross-check (I3).** A -2011, "unknown order" or
   ambiguous cancel is followed by a query: closed or gone is success, still open is a
   failure that is retried (bounded).

Unresolved orders left by a crash or a restart (SENDING or UNKNOWN in the journal) are
picked up by the Router's resolver loop when it starts and every ``resolve_interval_s``:
a restarted Router rebuilds its work from the journal; it does not remember.

An order *proven to exist* (acked, seen, -4116, a cancel answered "not open") can never be
proven ABSENT, yet the venue may forget it: Binance answers -2013 for a canceled or expired
order without fills about three days on. Such an order is resolved as **closed**
(:attr:`~scalper.messages.Resolution.CLOSED`, evidence ``vanished_after_existing``) only on
evidence that it is gone and took no fill the journal lacks: ``absent_confirmations``
"not found" answers, a snapshot that stopped listing it
(:class:`~scalper.messages.OrderMissing`), at least ``vanish_backfills`` trade backfills of
its symbol completed since then and since its last fill, and no executed quantity the venue
reported that the journal's trades do not explain. It ends CANCELED with the executed
quantity the journal holds; it never licenses another generation (I7).

A query answer that arrives after other evidence (the stream) settled the order is older
news than that evidence: it is journaled only if it reports a closed status (a fact), never
as a claim that the order is open.
"""

import contextlib
import enum
import random
from collections import deque
from decimal import Decimal

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.validators import count, positive
from scalper.clock import Clock
from scalper.core.errors import ErrorClass, Operation
from scalper.core.ids import ClientIdSequence, GenerationProof, ProofKind
from scalper.core.intents import Intent
from scalper.core.model import OrderRequest, VenueOrder
from scalper.core.orders import OrderState
from scalper.core.posture import GuardKnobs
from scalper.core.retry import RetryBudget, RetryConfig
from scalper.core.types import PositionMode
from scalper.crashpoints import CrashPoint, CrashPoints
from scalper.messages import (
    CancelFailed,
    CancelIntent,
    CancelRequested,
    CancelResolved,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    Resolution,
    RetryScheduled,
    SubmitIntent,
)
from scalper.state import IntentStatus, OrderRecord
from scalper.store.records import LedgerState
from scalper.venues.base import Venue, VenueError, call_within

__all__ = ["CancelAttempt", "CancelOutcome", "IntentReceipt", "Router", "RouterConfig"]


def _settled(order: OrderRecord) -> str:
    """The resolution outcome of an order that evidence has already settled."""
    return "absent" if order.ledger_state is LedgerState.ABSENT else "placed"


@attrs.frozen
class RouterConfig:
    """Router settings: timeouts, the ABSENT rule and the last-hop caps (entries only).

    Attributes:
        recv_window_ms: recvWindow sent with orders; the ABSENT rule waits it out.
        request_timeout_s: cancel scope around every venue request.
        absent_margin_ms: extra wait after ``sent + recv_window`` before "not found" counts.
        absent_confirmations: "not found" answers needed to prove ABSENT.
        absent_query_gap_s: minimum spacing of those answers.
        resolve_max_s: how long one resolution task keeps querying before it leaves the
            order UNKNOWN for the next resolver pass (I2).
        resolve_interval_s: how often the resolver looks for unresolved orders.
        max_generations: client-id generations per intent (the first included).
        vanish_backfills: trade backfills of the symbol that must complete after a snapshot
            stopped listing an order proven to exist (and after its last fill) before "not
            found" closes it (``vanished_after_existing``).
        cancel_max_attempts: cancel attempts per cancel request.
        max_orders_per_window: last-hop cap on entry orders sent per ``rate_window_s``.
        rate_window_s: the rate cap's window.
        max_open_orders_per_symbol: last-hop cap on possibly-live entry orders per symbol.
        max_notional: last-hop cap on one entry's notional (quote currency).
        position_mode: the account's position mode; intents are checked against it.
    """

    recv_window_ms: int = attrs.field(default=5000, validator=count)
    request_timeout_s: float = attrs.field(default=10.0, validator=positive)
    absent_margin_ms: int = attrs.field(default=1000, validator=count)
    absent_confirmations: int = attrs.field(default=2, validator=count)
    absent_query_gap_s: float = attrs.field(default=1.0, validator=positive)
    resolve_max_s: float = attrs.field(default=60.0, validator=positive)
    resolve_interval_s: float = attrs.field(default=5.0, validator=positive)
    max_generations: int = attrs.field(default=3, validator=count)
    vanish_backfills: int = attrs.field(default=2, validator=count)
    cancel_max_attempts: int = attrs.field(default=5, validator=count)
    max_orders_per_window: int = attrs.field(default=20, validator=count)
    rate_window_s: float = attrs.field(default=10.0, validator=positive)
    max_open_orders_per_symbol: int = attrs.field(default=10, validator=count)
    max_notional: Decimal = attrs.field(default=Decimal("100000"), converter=Decimal)
    position_mode: PositionMode = attrs.field(default=PositionMode.ONE_WAY, converter=PositionMode)
    retry: RetryConfig = attrs.field(factory=RetryConfig)


@attrs.frozen
class IntentReceipt:
    """The Router's answer to a submission: accepted (work started) or rejected, and why."""

    intent_id: str
    accepted: bool
    reason: str = ""
    detail: str = ""


class CancelOutcome(enum.StrEnum):
    """What one cancel request, or one status check after it, established (I3)."""

    #: Not sent: the order is not in the ledger, already terminal there, or its create is
    #: still unresolved (a cancel racing an unresolved create proves nothing).
    NOT_SENT = "not_sent"
    #: The venue confirmed the cancel; ``order`` carries the executed quantity at close.
    CANCELED = "canceled"
    #: -2011 / "unknown order", a timeout, a 5xx: open, closed or filled is unknown.
    UNCLEAR = "unclear"
    #: The venue definitely did not execute the cancel (429, a 100%-failure 503...).
    NOT_DONE = "not_done"
    #: The venue refused the request for good (retrying it cannot help).
    FATAL = "fatal"
    #: Status check: the order is still open (``order`` has its executed quantity).
    OPEN = "open"
    #: Status check: the order is closed (filled, canceled, expired); ``order`` says how.
    CLOSED = "closed"
    #: Status check: the venue does not know the order (-2013).
    NOT_FOUND = "not_found"
    #: Status check: the query itself failed.
    QUERY_FAILED = "query_failed"


@attrs.frozen
class CancelAttempt:
    """The answer of :meth:`Router.cancel_once` or :meth:`Router.check_cancel`.

    Attributes:
        outcome: what the request established.
        reason: the venue's reason tag (or why nothing was sent).
        order: the venue's view of the order, when the answer carried one.
        retry_after_s: the wait the venue asked for before another attempt, if any.
    """

    outcome: CancelOutcome
    reason: str = ""
    order: VenueOrder | None = None
    retry_after_s: float | None = None


_Command = SubmitIntent | CancelIntent


class Router:
    """The actor between intents and the venue (see the module docstring).

    Args:
        venue: the exchange.
        journal: the single writer; its state is the ledger the Router checks.
        clock: the injected clock.
        rng: seeded randomness for backoff jitter.
        prefix: our client-order-id prefix.
        config: timeouts, ABSENT rule, caps.
        initial_knobs: entry limits until the BeliefController speaks (boot posture).
        crash_points: named crash points (tests and chaos scenarios arm them).
    """

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        clock: Clock,
        rng: random.Random,
        prefix: str,
        config: RouterConfig,
        initial_knobs: GuardKnobs,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self._venue = venue
        self._journal = journal
        self._clock = clock
        self._rng = rng
        self._prefix = prefix
        self._config = config
        self._crash = crash_points or CrashPoints()
        self.knobs = initial_knobs
        self._sent_times: deque[float] = deque()
        self._last_entry_at: dict[str, float] = {}
        self._active: set[str] = set()  # client order ids with a task working on them
        self._in_flight: set[str] = set()  # intent ids being placed
        self._cancel_wanted: set[str] = set()
        self._nursery: trio.Nursery | None = None
        send, receive = trio.open_memory_channel[
            tuple[_Command, trio.MemorySendChannel[IntentReceipt] | None]
        ](256)
        self._commands_send = send
        self._commands = receive
        knobs_send, knobs_receive = trio.open_memory_channel[GuardKnobs](16)
        #: The BeliefController sends new knobs here.
        self.knobs_inbox = knobs_send
        self._knobs_in = knobs_receive

    # ----------------------------------------------------------------- public

    async def submit(self, command: SubmitIntent) -> IntentReceipt:
        """Submit an intent and wait for the Router's accept/reject decision."""
        send, receive = trio.open_memory_channel[IntentReceipt](1)
        await self._commands_send.send((command, send))
        async with receive:
            return await receive.receive()

    async def cancel(self, command: CancelIntent) -> None:
        """Ask the Router to cancel an intent's live orders (fire and forget)."""
        await self._commands_send.send((command, None))

    def set_knobs(self, knobs: GuardKnobs) -> None:
        """New entry limits from the BeliefController (applied to the next decision)."""
        self.knobs = knobs

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve commands and resolve unresolved orders until cancelled."""
        self._active.clear()
        self._in_flight.clear()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._resolver_loop)
            nursery.start_soon(self._knobs_loop)
            task_status.started()
            async for command, reply in self._commands:
                if isinstance(command, SubmitIntent):
                    receipt = await self._accept(command)
                    if reply is not None:
                        # A submitter cancelled meanwhile has left: the decision is journaled
                        # either way, and a missing listener must not crash the Router.
                        with contextlib.suppress(trio.BrokenResourceError, trio.WouldBlock):
                            reply.send_nowait(receipt)
                        reply.close()
                else:
                    await self._cancel_intent(command)

    async def _knobs_loop(self) -> None:
        async for knobs in self._knobs_in:
            self.knobs = knobs

    # ----------------------------------------------------------------- gates

    async def _accept(self, cmd: SubmitIntent) -> IntentReceipt:
        intent = cmd.intent
        reject = self._ledger_gate(intent)
        lane = Lane.EXIT if intent.is_exit else Lane.ENTRY
        if reject is None and lane is Lane.ENTRY:
            reject = self._entry_gate(cmd)
        if reject is not None:
            reason, detail = reject
            if reason != "duplicate_intent":
                await self._journal.append(
                    IntentRejected(intent.intent_id, intent.correlation_id, reason, detail)
                )
            return IntentReceipt(intent.intent_id, False, reason, detail)
        await self._journal.append(
            IntentAccepted(
                intent=intent,
                lane=lane,
                source=cmd.source,
                intent_id=intent.intent_id,
                correlation_id=intent.correlation_id,
                reference_price=cmd.reference_price,
            )
        )
        if lane is Lane.ENTRY:
            now = self._clock.now()
            self._sent_times.append(now)
            self._last_entry_at[intent.symbol] = now
        self._in_flight.add(intent.intent_id)
        assert self._nursery is not None
        self._nursery.start_soon(self._work_intent, intent)
        return IntentReceipt(intent.intent_id, True)

    def _ledger_gate(self, intent: Intent) -> tuple[str, str] | None:
        state = self._journal.state
        if intent.intent_id in state.intents or intent.intent_id in self._in_flight:
            # I7: the ledger already has this intent; a resubmission has no second effect.
            return ("duplicate_intent", "intent id already in the ledger")
        try:
            intent.check_position_mode(self._config.position_mode)
        except ValueError as exc:
            return ("invalid_intent", str(exc))
        return None

    def entry_refusal(self, cmd: SubmitIntent, *, freed_orders: int = 0) -> tuple[str, str] | None:
        """The entry gates' verdict on ``cmd`` right now, without submitting it.

        For callers that must not take a step that only makes sense if the entry would pass
        (the ReplaceManager cancels an entry's order only if its replacement would be let
        through). ``freed_orders`` resting entry orders of the symbol are about to go (the
        order being replaced) and are not counted against the open-order caps. The gates may
        still refuse later: the posture can tighten in between.

        Returns:
            ``(reason, detail)`` of the first gate that refuses, or ``None``.
        """
        return self._entry_gate(cmd, freed_orders=freed_orders)

    def _entry_gate(self, cmd: SubmitIntent, *, freed_orders: int = 0) -> tuple[str, str] | None:
        intent = cmd.intent
        state = self._journal.state
        knobs = self.knobs
        now = self._clock.now()
        cfg = self._config
        if state.halted:
            return ("halted", state.halt_reason)
        if not knobs.allow_entries:
            return ("posture_blocks_entries", f"posture {knobs.mode}")
        if intent.symbol in self._journal.state.frozen_symbols:
            return ("symbol_frozen", intent.symbol)
        if cmd.confidence < knobs.min_entry_conf:
            return ("confidence_below_posture", f"{cmd.confidence} < {knobs.min_entry_conf}")
        reference = intent.price if intent.price is not None else cmd.reference_price
        if reference is None:
            return ("no_reference_price", "a market entry needs reference_price for its caps")
        notional = intent.notional(reference)
        if notional > knobs.max_notional:
            return ("notional_above_posture", f"{notional} > {knobs.max_notional}")
        if notional > cfg.max_notional:
            return ("notional_cap", f"{notional} > {cfg.max_notional}")
        last = self._last_entry_at.get(intent.symbol)
        if last is not None and now - last < knobs.entry_cooldown_s:
            return ("entry_cooldown", f"{now - last:.3f}s < {knobs.entry_cooldown_s}s")
        resting = state.open_entry_orders(intent.symbol) - freed_orders
        if resting >= knobs.max_open_orders_per_symbol:
            return ("open_orders_posture", f"{resting} >= {knobs.max_open_orders_per_symbol}")
        if resting >= cfg.max_open_orders_per_symbol:
            return ("open_orders_cap", f"{resting} >= {cfg.max_open_orders_per_symbol}")
        while self._sent_times and now - self._sent_times[0] >= cfg.rate_window_s:
            self._sent_times.popleft()
        if len(self._sent_times) >= cfg.max_orders_per_window:
            return ("order_rate_cap", f"{len(self._sent_times)} in {cfg.rate_window_s}s")
        return None

    def _entry_still_allowed(self, intent: Intent) -> tuple[str, str] | None:
        # Before a new generation: the world may have changed while we resolved.
        state = self._journal.state
        if state.halted:
            return ("halted", state.halt_reason)
        if not self.knobs.allow_entries:
            return ("posture_blocks_entries", f"posture {self.knobs.mode}")
        if intent.symbol in self._journal.state.frozen_symbols:
            return ("symbol_frozen", intent.symbol)
        return None

    # ----------------------------------------------------------------- one intent

    async def _work_intent(self, intent: Intent) -> None:
        try:
            ids = ClientIdSequence(self._prefix, intent.intent_id, intent.role)
            while True:
                outcome = await self._place(intent, ids.current, ids.generation)
                if outcome != "absent":
                    break
                # The journal's OrderResolved(ABSENT) is the durable proof; core refuses to
                # advance on a proof about any other id.
                ids = ids.advance(
                    GenerationProof(ids.current, ProofKind.ABSENT, "not_found_after_recv_window")
                )
                stop: tuple[str, str] | None = None
                if ids.generation >= self._config.max_generations:
                    stop = ("generations_exhausted", f"{ids.generation} generations absent")
                elif intent.is_risk_increasing:
                    stop = self._entry_still_allowed(intent)
                if stop is not None:
                    await self._journal.append(
                        IntentRejected(intent.intent_id, intent.correlation_id, *stop)
                    )
                    return
            if intent.intent_id in self._cancel_wanted:
                await self._cancel_intent(CancelIntent(intent.intent_id, "requested"))
        finally:
            self._in_flight.discard(intent.intent_id)

    def _may_send(self, intent: Intent, generation: int) -> bool:
        """I7 at the last moment: every earlier generation of the intent is proven ABSENT."""
        for order in self._journal.state.orders_for_intent(intent.intent_id):
            if order.generation >= generation:
                return False
            if order.ledger_state is not LedgerState.ABSENT:
                return False
        return True

    async def _place(self, intent: Intent, coid: str, generation: int) -> str:
        """Send one generation; return ``placed``, ``rejected``, ``absent``, ``closed`` or ``unknown``."""
        if not self._may_send(intent, generation):
            await self._journal.append(
                IntentRejected(
                    intent.intent_id,
                    intent.correlation_id,
                    "ledger_conflict",
                    f"generation {generation} would be a second live order",
                )
            )
            return "rejected"
        request = intent.to_order_request(coid)
        await self._journal.append(
            OrderSending(
                intent_id=intent.intent_id,
                correlation_id=intent.correlation_id,
                client_order_id=coid,
                generation=generation,
                request=request,
                risk_increasing=intent.is_risk_increasing,
                recv_window_ms=self._config.recv_window_ms,
                sent_wall_ms=self._clock.wall_ms(),
            )
        )
        self._active.add(coid)
        try:
            self._crash.check(CrashPoint.AFTER_INTENT_DURABLE)
            return await self._send_create(intent, request)
        finally:
            self._active.discard(coid)

    async def _send_create(self, intent: Intent, request: OrderRequest) -> str:
        coid = request.client_order_id
        budget: RetryBudget | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                order = await call_within(
                    self._config.request_timeout_s,
                    Operation.CREATE,
                    self._venue.create_order,
                    request,
                )
            except VenueError as exc:
                error = exc
            else:
                self._crash.check(CrashPoint.AFTER_SEND_BEFORE_OUTCOME)
                await self._journal.append(
                    OrderAcked(intent.intent_id, intent.correlation_id, coid, order)
                )
                return "placed"
            verdict = error.verdict
            if verdict.order_exists:
                await self._journal.append(
                    OrderResolved(
                        intent.intent_id,
                        intent.correlation_id,
                        coid,
                        Resolution.PRESENT,
                        "duplicate_client_id",
                    )
                )
                return await self._resolve(self._order(coid))
            if error.is_ambiguous:
                await self._journal.append(
                    OrderOutcomeUnknown(
                        intent.intent_id,
                        intent.correlation_id,
                        coid,
                        verdict.error_class.value,
                        verdict.code,
                        verdict.reason,
                    )
                )
                return await self._resolve(self._order(coid))
            if verdict.error_class is ErrorClass.RETRYABLE:
                if budget is None:
                    policy = self._config.retry.policy_for(verdict.error_class, verdict.reason)
                    assert policy is not None
                    budget = RetryBudget(policy, started_at=self._clock.now())
                budget.attempts = attempt
                decision = budget.next(
                    self._clock.now(), self._rng, backoff_hint_s=verdict.backoff_hint_s
                )
                if decision.retry and decision.delay_s is not None:
                    await self._journal.append(
                        RetryScheduled(
                            intent.intent_id,
                            intent.correlation_id,
                            coid,
                            Operation.CREATE.value,
                            attempt,
                            decision.delay_s,
                            verdict.error_class.value,
                            verdict.reason,
                        )
                    )
                    await trio.sleep(decision.delay_s)
                    continue
                reason = f"retries_exhausted:{verdict.reason}"
            else:
                reason = verdict.reason
            await self._journal.append(
                OrderRejected(
                    intent.intent_id,
                    intent.correlation_id,
                    coid,
                    verdict.error_class.value,
                    verdict.code,
                    reason,
                )
            )
            return "rejected"

    def _order(self, coid: str) -> OrderRecord:
        return self._journal.state.orders[coid]

    # ----------------------------------------------------------------- resolution

    async def _resolve(self, order: OrderRecord) -> str:
        """Resolve an order whose existence or openness is unknown, by query and evidence.

        Returns ``placed`` (present, or settled by other evidence), ``absent`` (proven never
        placed), ``closed`` (existed, vanished with nothing more executed) or ``unknown``.
        """
        cfg = self._config
        coid = order.client_order_id
        started = self._clock.now()
        not_found: list[float] = []
        attempt = 0
        policy = cfg.retry.resolve
        while True:
            current = self._journal.state.orders.get(coid)
            if current is None:
                return "unknown"
            if not current.is_unresolved:
                # Stream evidence (or another task) settled it while we waited.
                return _settled(current)
            attempt += 1
            found: VenueOrder | None = None
            failure = ""
            try:
                found = await call_within(
                    cfg.request_timeout_s,
                    Operation.QUERY,
                    self._venue.query_order,
                    current.request.symbol,
                    client_order_id=coid,
                    conditional=current.conditional,
                )
            except VenueError as exc:
                failure = exc.verdict.reason
            current = self._journal.state.orders.get(coid)
            if current is None:
                return "unknown"
            if not current.is_unresolved:
                # Settled while the query was out: its answer is older than that evidence.
                # A closed status for an order still believed open is a fact worth keeping;
                # "open" or "not found" is not.
                if found is not None and not found.status.is_open and not current.is_terminal:
                    await self._journal.append(
                        OrderResolved(
                            current.intent_id,
                            current.correlation_id,
                            coid,
                            Resolution.PRESENT,
                            "query",
                            found,
                        )
                    )
                return _settled(self._journal.state.orders[coid])
            if failure == "order_not_found" and self._past_recv_window(current):
                now = self._clock.now()
                if not not_found or now - not_found[-1] >= cfg.absent_query_gap_s:
                    not_found.append(now)
                if len(not_found) >= cfg.absent_confirmations:
                    settled = await self._settle_not_found(current)
                    if settled is not None:
                        return settled
            if found is not None:
                await self._journal.append(
                    OrderResolved(
                        current.intent_id,
                        current.correlation_id,
                        coid,
                        Resolution.PRESENT,
                        "query",
                        found,
                    )
                )
                return "placed"
            elapsed = self._clock.now() - started
            if elapsed >= cfg.resolve_max_s:
                return "unknown"  # left UNKNOWN: the resolver loop tries again later (I2)
            delay = min(policy.backoff(min(attempt, 30), self._rng), cfg.absent_query_gap_s * 2)
            if not self._past_recv_window(current):
                # Not found means nothing before the window closes: wait it out.
                remaining = (self._window_end_ms(current) - self._clock.wall_ms()) / 1000.0
                delay = max(delay, min(remaining, cfg.absent_query_gap_s * 2))
            await self._journal.append(
                RetryScheduled(
                    current.intent_id,
                    current.correlation_id,
                    coid,
                    Operation.QUERY.value,
                    attempt,
                    delay,
                    ErrorClass.AMBIGUOUS.value,
                    failure or "resolve",
                )
            )
            await trio.sleep(delay)

    async def _settle_not_found(self, order: OrderRecord) -> str | None:
        """Enough "not found" answers: decide ABSENT, CLOSED, or not yet (``None``).

        ABSENT only for an order never shown to exist (I7); an order proven to exist is
        closed only once :meth:`_vanished` holds, and otherwise stays unresolved.
        """
        if not order.existence_proven:
            await self._journal.append(
                OrderResolved(
                    order.intent_id,
                    order.correlation_id,
                    order.client_order_id,
                    Resolution.ABSENT,
                    "not_found_after_recv_window",
                )
            )
            return "absent"
        if not self._vanished(order):
            return None
        await self._journal.append(
            OrderResolved(
                order.intent_id,
                order.correlation_id,
                order.client_order_id,
                Resolution.CLOSED,
                "vanished_after_existing",
            )
        )
        return "closed"

    def _vanished(self, order: OrderRecord) -> bool:
        """True if the journal shows the order gone with no fill it lacks (see module doc).

        The caller has its "not found" answers; this adds what only the journal knows: a
        snapshot stopped listing the order, ``vanish_backfills`` backfills of its symbol read
        the trades since then (and since its last fill), and the venue never reported more
        executed than the journal's trades explain.
        """
        backfills = self._journal.state.backfills_since_missing(order)
        if backfills is None or backfills < self._config.vanish_backfills:
            return False
        return order.tracker is None or order.tracker.missing_fill_qty == 0

    def _window_end_ms(self, order: OrderRecord) -> int:
        return order.sent_wall_ms + order.recv_window_ms + self._config.absent_margin_ms

    def _past_recv_window(self, order: OrderRecord) -> bool:
        return self._clock.wall_ms() >= self._window_end_ms(order)

    async def _resolver_loop(self) -> None:
        """Pick up unresolved orders (after a crash, a restart, or a timed-out resolution)."""
        while True:
            for order in self._journal.state.unresolved_orders():
                if order.client_order_id in self._active:
                    continue
                self._active.add(order.client_order_id)
                assert self._nursery is not None
                self._nursery.start_soon(self._resolve_orphaned, order)
            await trio.sleep(self._config.resolve_interval_s)

    async def _resolve_orphaned(self, order: OrderRecord) -> None:
        try:
            outcome = await self._resolve(order)
            rec = self._journal.state.intents.get(order.intent_id)
            if outcome == "absent" and rec is not None and rec.status is IntentStatus.OPEN:
                # The task that sent it is gone (restart): do not resend on its behalf. The
                # intent ends here; a strategy that still wants it submits a new intent.
                await self._journal.append(
                    IntentRejected(
                        order.intent_id,
                        order.correlation_id,
                        "absent_after_restart",
                        f"{order.client_order_id} proven absent",
                    )
                )
        finally:
            self._active.discard(order.client_order_id)

    # ----------------------------------------------------------------- cancel

    async def _cancel_intent(self, cmd: CancelIntent) -> None:
        orders = self._journal.state.orders_for_intent(cmd.intent_id)
        if cmd.intent_id in self._in_flight:
            # The create is still being placed or resolved: cancel once it settles, never
            # race it (a cancel before the order lands answers -2011 and it lands anyway).
            self._cancel_wanted.add(cmd.intent_id)
            return
        self._cancel_wanted.discard(cmd.intent_id)
        for order in orders:
            if not order.is_terminal and not order.is_unresolved:
                assert self._nursery is not None
                self._nursery.start_soon(self.cancel_order, order.client_order_id, cmd.reason)

    async def cancel_order(self, coid: str, reason: str) -> bool:
        """Cancel one of our orders, idempotently, with a status cross-check (I3).

        Returns True when the order is known not to be open any more.
        """
        order = self._journal.state.orders.get(coid)
        if order is None:
            return False
        if order.is_terminal:
            return True
        await self._journal.append(
            CancelRequested(order.intent_id, order.correlation_id, coid, reason)
        )
        cfg = self._config
        for attempt in range(1, cfg.cancel_max_attempts + 1):
            try:
                result = await call_within(
                    cfg.request_timeout_s,
                    Operation.CANCEL,
                    self._venue.cancel_order,
                    order.request.symbol,
                    client_order_id=coid,
                    conditional=order.conditional,
                )
            except VenueError as exc:
                error = exc
            else:
                await self._journal.append(
                    CancelResolved(
                        order.intent_id, order.correlation_id, coid, "cancel_ack", result
                    )
                )
                return True
            verdict = error.verdict
            if verdict.error_class is ErrorClass.FATAL:
                await self._journal.append(
                    CancelFailed(order.intent_id, order.correlation_id, coid, verdict.reason, False)
                )
                return False
            if verdict.error_class in (ErrorClass.IDEMPOTENT_SAFE, ErrorClass.AMBIGUOUS):
                settled = await self._cross_check(order, verdict.reason)
                if settled:
                    return True
            delay = self._config.retry.retryable.backoff(attempt, self._rng)
            if verdict.backoff_hint_s is not None:
                delay = max(delay, verdict.backoff_hint_s)
            await self._journal.append(
                RetryScheduled(
                    order.intent_id,
                    order.correlation_id,
                    coid,
                    Operation.CANCEL.value,
                    attempt,
                    delay,
                    verdict.error_class.value,
                    verdict.reason,
                )
            )
            await trio.sleep(delay)
        await self._journal.append(
            CancelFailed(order.intent_id, order.correlation_id, coid, "retries_exhausted", True)
        )
        return False

    async def _cross_check(self, order: OrderRecord, why: str) -> bool:
        """After an unclear cancel answer: the fetched status decides (I3)."""
        check = await self.check_cancel(order.client_order_id, why)
        return check.outcome in (CancelOutcome.CLOSED, CancelOutcome.NOT_FOUND)

    async def cancel_once(self, coid: str, reason: str, *, announce: bool) -> CancelAttempt:
        """Send exactly one cancel of one of our orders and report what it established.

        The single-attempt primitive for callers that run their own bounded lifecycle (the
        ReplaceManager's cancel-then-create machine decides whether to query or retry).
        Journaled like :meth:`cancel_order`: ``CancelRequested`` when ``announce`` (once per
        cancel, before the first request leaves), ``CancelResolved`` on an ack,
        ``CancelFailed`` on a definite refusal (still open) or a fatal one. An unclear answer
        (-2011, unknown order, timeout, 5xx) is journaled by the status check that must
        follow it (:meth:`check_cancel`), never taken as success here (I3).

        Returns:
            A :class:`CancelAttempt`; ``NOT_SENT`` if the ledger does not hold the order, holds
            it as terminal, or its create is still unresolved.
        """
        order = self._journal.state.orders.get(coid)
        if order is None:
            return CancelAttempt(CancelOutcome.NOT_SENT, "not_in_ledger")
        if order.is_terminal:
            return CancelAttempt(CancelOutcome.NOT_SENT, "already_terminal")
        if order.order_state in (OrderState.PENDING, OrderState.SENT, OrderState.UNKNOWN):
            # Whether the create landed is unknown: a cancel now answers -2011 and the
            # order may land afterwards; the resolver settles the create first.
            return CancelAttempt(CancelOutcome.NOT_SENT, "create_unresolved")
        if announce:
            await self._journal.append(
                CancelRequested(order.intent_id, order.correlation_id, coid, reason)
            )
        try:
            result = await call_within(
                self._config.request_timeout_s,
                Operation.CANCEL,
                self._venue.cancel_order,
                order.request.symbol,
                client_order_id=coid,
                conditional=order.conditional,
            )
        except VenueError as exc:
            verdict = exc.verdict
        else:
            await self._journal.append(
                CancelResolved(order.intent_id, order.correlation_id, coid, "cancel_ack", result)
            )
            return CancelAttempt(CancelOutcome.CANCELED, "cancel_ack", result)
        if verdict.error_class is ErrorClass.FATAL:
            await self._journal.append(
                CancelFailed(order.intent_id, order.correlation_id, coid, verdict.reason, False)
            )
            return CancelAttempt(CancelOutcome.FATAL, verdict.reason)
        if verdict.error_class in (ErrorClass.IDEMPOTENT_SAFE, ErrorClass.AMBIGUOUS):
            return CancelAttempt(
                CancelOutcome.UNCLEAR, verdict.reason, retry_after_s=verdict.backoff_hint_s
            )
        await self._journal.append(
            CancelFailed(order.intent_id, order.correlation_id, coid, verdict.reason, True)
        )
        return CancelAttempt(
            CancelOutcome.NOT_DONE, verdict.reason, retry_after_s=verdict.backoff_hint_s
        )

    async def check_cancel(self, coid: str, why: str) -> CancelAttempt:
        """Query one of our orders once after an unclear cancel answer; the status decides (I3).

        Journaled as the cancel's outcome: closed is ``CancelResolved`` (with the fetched
        order), not found is ``CancelResolved`` without one (the order is not open; how it
        closed is unknown), still open or a failed query is ``CancelFailed`` with
        ``still_open=True``. ``why`` (the unclear answer's reason) prefixes the evidence.

        Returns:
            A :class:`CancelAttempt` with ``OPEN``, ``CLOSED``, ``NOT_FOUND`` or
            ``QUERY_FAILED`` (``NOT_SENT`` if the ledger does not hold the order).
        """
        order = self._journal.state.orders.get(coid)
        if order is None:
            return CancelAttempt(CancelOutcome.NOT_SENT, "not_in_ledger")
        try:
            found: VenueOrder | None = await call_within(
                self._config.request_timeout_s,
                Operation.QUERY,
                self._venue.query_order,
                order.request.symbol,
                client_order_id=coid,
                conditional=order.conditional,
            )
        except VenueError as exc:
            found, failure = None, exc.verdict.reason
            if failure == "order_not_found":
                await self._journal.append(
                    CancelResolved(
                        order.intent_id, order.correlation_id, coid, f"{why}+not_found", None
                    )
                )
                return CancelAttempt(CancelOutcome.NOT_FOUND, failure)
        if found is None:
            await self._journal.append(
                CancelFailed(order.intent_id, order.correlation_id, coid, f"{why}+{failure}", True)
            )
            return CancelAttempt(CancelOutcome.QUERY_FAILED, failure)
        if found.status.is_open:
            # -2011 while the order is live: NOT a success (the seed's bug, I3).
            await self._journal.append(
                CancelFailed(order.intent_id, order.correlation_id, coid, f"{why}+still_open", True)
            )
            return CancelAttempt(CancelOutcome.OPEN, "still_open", found)
        await self._journal.append(
            CancelResolved(order.intent_id, order.correlation_id, coid, f"{why}+query", found)
        )
        return CancelAttempt(CancelOutcome.CLOSED, found.status.value, found)

    async def lookup(self, symbol: str, coid: str) -> VenueOrder | None:
        """Query one order by client order id (plain, then conditional); None if not found."""
        for conditional in (False, True):
            try:
                return await call_within(
                    self._config.request_timeout_s,
                    Operation.QUERY,
                    self._venue.query_order,
                    symbol,
                    client_order_id=coid,
                    conditional=conditional,
                )
            except VenueError:
                continue
        return None

    async def cancel_foreign(self, symbol: str, order_id: str, reason: str) -> bool:
        """Cancel a venue order that is not in our ledger (an orphan), by venue order id.

        Idempotent like :meth:`cancel_order`: "not open" is success. Journaled as a cancel
        of the orphan's client-order-less id so the journal shows what was done and why.
        """
        for conditional in (False, True):
            try:
                await call_within(
                    self._config.request_timeout_s,
                    Operation.CANCEL,
                    self._venue.cancel_order,
                    symbol,
                    order_id=order_id,
                    conditional=conditional,
                )
            except VenueError as exc:
                if exc.verdict.error_class is ErrorClass.IDEMPOTENT_SAFE and not conditional:
                    continue  # maybe it lives on the conditional endpoints
                if exc.verdict.error_class is ErrorClass.IDEMPOTENT_SAFE:
                    break
                continue
            await self._journal.append(
                CancelResolved("", f"orphan:{order_id}", f"venue:{order_id}", reason, None)
            )
            return True
        return False
