"""The ReplaceManager: replaces a live order by cancel-then-create, safely and boundedly.

Theory of operation
-------------------

A replace (new price or size for a resting order) is two venue actions, and the venue can
answer either late, wrongly or not at all. The decisions live in :mod:`scalper.core.replace`;
this actor gathers their inputs from the journal, performs the actions through the Router
(the only path that sends orders) and journals every step. It serves I8 (*a replace happens
only when worst-case old+new live exposure stays within budget; otherwise it degrades to
cancel, reconcile, create*), I7 (the new order never races a still-live old one), I2
(every wait and every attempt is bounded) and I1 (a refused replace of an exit leaves the
old exit order working: nothing is cancelled before the replace is admitted).

One request (:class:`~scalper.messages.ReplaceOrder`) goes:

1. **Validate** against the journal's state: the old intent exists and has exactly one
   live order whose create is resolved; the new intent is a different, unknown intent id
   for the same symbol, side, position side and lane, with a quantity. One replace per
   intent at a time. For an entry, the Router's entry gates are consulted *before* anything
   is cancelled (:meth:`~scalper.actors.router.Router.entry_refusal`, the old order not
   counted): a replacement the posture would refuse must not cost the working order.
   Anything wrong ends as ``refused`` with a reason tag, journaled, nothing sent.
2. **Admit** (:func:`~scalper.core.replace.check_envelope`, then
   :func:`~scalper.core.replace.admit_replace` with the manager's
   :class:`~scalper.core.replace.ReplaceBudget`). The envelope uses the journal's position,
   the old order's remaining quantity, the new quantity and the *higher* of the new price
   (its limit, else ``reference_price``) and the old order's price hint, so the worst case
   is valued at the worse of the two prices. For an exit the budget is at least the
   exposure already held (``|position| * price``): an exit cannot add exposure, and a
   position above the budget must not force its exits onto the slow path (I1); an exit
   whose legs could still overshoot past flat in the unclamped model degrades as usual.
   :class:`~scalper.messages.ReplaceAdmitted`
   records the decision; every :class:`~scalper.core.replace.ReplacePressure` becomes a
   journaled :class:`~scalper.messages.PressureRaised` (``source="replace"``) handed to
   ``on_pressure`` (the BeliefController, once wired).
3. **replace**: drive :class:`~scalper.core.replace.ReplaceMachine`, one event per action:

   * ``SEND_CANCEL``: one cancel (:meth:`~scalper.actors.router.Router.cancel_once`,
     ``CancelRequested`` journaled once). An ack is ``CANCEL_ACK`` with the executed
     quantity; -2011, unknown order, a timeout or a 5xx is ``CANCEL_UNKNOWN``; a definite
     refusal (429, a 100%-failure 503) is ``CANCEL_FAILED``; a fatal refusal gives up.
     Repeated cancels wait ``cancel_retry_delay_s`` (or the venue's Retry-After).
   * ``QUERY_STATUS``: one status query (:meth:`~scalper.actors.router.Router.check_cancel`)
     becomes :meth:`ReplaceEvent.from_status <scalper.core.replace.ReplaceEvent.from_status>`;
     not found or a failed query is ``STATUS_UNKNOWN``.
   * ``SEND_NEW``: only if the journal itself shows the old order terminal (belt and
     braces for I7), the new intent is submitted through the Router (``source="replace"``;
     entries pass the normal gates) and the manager waits, at most ``new_order_wait_s``,
     for the journal to show the new order acknowledged (``NEW_ACKED``), refused
     (``NEW_REJECTED``) or still unresolved (``NEW_UNKNOWN``).
   * ``ACCOUNT_FILL``: the old order filled while being cancelled, so the plan is void and
     no new order is sent. The manager never journals fills itself; it waits, at most
     ``fill_wait_s``, for the EvidenceCollector's fills (stream or backfill) to bring the
     journal's ``filled_qty`` up to what the venue reported, then ``FILL_ACCOUNTED``.
   * ``RECONCILE``: the replace gave up with something in doubt; it ends ``gave_up`` and
     the Reconciler's next pass settles the symbol (its pressure asks the posture to wait).

   Each step is a :class:`~scalper.messages.ReplaceStepped`; ambiguous steps feed the
   budget's ambiguity window.
4. **degrade_cancel_reconcile_create** (the envelope refused): cancel through the Router's
   idempotent, cross-checked :meth:`~scalper.actors.router.Router.cancel_order`; then wait,
   at most ``reconcile_wait_s``, until the journal shows the old order terminal and
   ``reconcile_passes`` reconcile passes completed after the cancel, the last one clean
   (the first pass may have used a snapshot taken before the cancel); then, unless the
   old order filled meanwhile, submit the new intent through the normal Router gates. A
   cancel that cannot be proven, or a picture that does not settle, gives up: the new
   order is never created while the old one may be live. Degrade steps are journaled as
   ``ReplaceStepped`` with states ``DEGRADE_CANCEL``, ``DEGRADE_RECONCILE``,
   ``DEGRADE_FILLED`` and ``DEGRADE_CREATE``.
5. **give_up** (over budget): nothing is sent; ``replace_storm`` pressure.

Every request ends with one :class:`~scalper.messages.ReplaceFinished` (``replaced``,
``degraded``, ``filled_after_cancel``, ``gave_up`` or ``refused``) and the same
:class:`ReplaceResult` is returned to the caller. Its ``new_intent_id`` is set only when
the new intent was handed to the Router (so a reader knows whether to look for it). The
events carry the *old* intent's id and correlation id, so the old intent's story shows its
replaces; ``replace_id`` is ``rp:<old intent>:<incarnation>:<n>`` (deterministic, unique
across restarts of the same store).

Hosting. Like the Router, the manager is an actor: :meth:`ReplaceManager.replace` hands the
request to :meth:`ReplaceManager.run`, which validates requests one at a time (so the
per-intent lock needs no further care) and runs each admitted replace as a task in its own
nursery. A supervisor that restarts the manager cancels the replaces in flight; each one
journals ``gave_up``/``interrupted`` (shielded, bounded by ``shutdown_journal_s``) and
answers its caller. That is always safe: every await point of the lifecycle leaves either
the old order working, or it proven terminal with no new order sent, or the new order
handed to the Router (which finishes it on its own). The budgets survive restarts of
``run`` (they live on the manager) and of the process: every admitted replace and every
unknown outcome a replace met is journaled (``replace_admitted`` with decision
``replace``; ``replace_stepped`` with ``ambiguous=true``), and a new manager seeds its
sliding windows from the journal, so a crash in the middle of a replace storm does not
hand the restarted process a fresh budget.
"""

import contextlib
import enum
import math
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.router import CancelAttempt, CancelOutcome, Router
from scalper.clock import Clock
from scalper.core.errors_base import CoreValueError
from scalper.core.intents import Intent
from scalper.core.replace import (
    DEGRADE_TAG,
    REPLACE_RACE_CAUSE,
    ReplaceAction,
    ReplaceBudget,
    ReplaceConfig,
    ReplaceEvent,
    ReplaceEventKind,
    ReplaceMachine,
    ReplacePressure,
    ReplaceState,
    ReplaceStep,
    admit_replace,
    check_envelope,
)
from scalper.core.types import ZERO
from scalper.messages import (
    PressureRaised,
    ReplaceAdmitted,
    ReplaceFinished,
    ReplaceOrder,
    ReplaceStepped,
    SubmitIntent,
)
from scalper.state import IntentFate

__all__ = [
    "ReplaceManager",
    "ReplaceManagerConfig",
    "ReplaceOutcome",
    "ReplaceResult",
]

_T = TypeVar("_T")

#: The source tag of the replace path's intents and pressure.
SOURCE = "replace"


def _positive(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CoreValueError(attribute.name, f"must be a finite number, got {value!r}")
    if value <= 0:
        raise CoreValueError(attribute.name, f"must be positive, got {value!r}")


def _count(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if type(value) is not int or value < 1:
        raise CoreValueError(attribute.name, f"must be an integer >= 1, got {value!r}")


def _positive_decimal(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise CoreValueError(attribute.name, f"must be a positive finite Decimal, got {value!r}")


def _replace_config(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if not isinstance(value, ReplaceConfig):
        raise CoreValueError(attribute.name, f"must be a ReplaceConfig, got {value!r}")


@attrs.frozen
class ReplaceManagerConfig:
    """ReplaceManager settings: core budgets and bounds, the exposure budget, the waits.

    Attributes:
        core: core's budgets, attempt bounds and pressure severities.
        max_exposure_notional: the envelope budget (quote currency): the worst-case
            ``|position + old + new|`` a replace may reach, valued at the worse price.
            Default 1000 USDT, the same as ``SystemConfig.posture.base_max_notional`` (the
            largest single entry the posture allows at GREEN): a replace may never reach a
            worst case that one plain entry from flat could not. Replacing an order of
            close to that size therefore takes the slow, safe degrade path; raise both
            together.
        new_order_wait_s: how long to wait for the journal to show the new order's outcome
            (covers the Router's recvWindow-based resolution of an ambiguous create).
        reconcile_wait_s: how long a degrade waits for the picture to settle after its
            cancel.
        reconcile_passes: reconcile passes that must complete after a degrade's cancel (the
            last one clean) before the new order is created; the first may have used a
            snapshot taken before the cancel.
        fill_wait_s: how long to wait for a fill-after-cancel to be journaled (longer than
            the collector's routine backfill interval, 30 s by default, so a fill the
            stream missed is still found).
        status_query_gap_s: spacing of repeated status queries of the old order.
        cancel_retry_delay_s: wait before a repeated cancel (the venue's Retry-After wins
            if longer).
        pressure_hold_s: how long the posture holds a replace pressure (one budget window).
        shutdown_journal_s: bound on journaling an interrupted replace while shutting down.
    """

    core: ReplaceConfig = attrs.field(factory=ReplaceConfig, validator=_replace_config)
    max_exposure_notional: Decimal = attrs.field(default=Decimal(1000), validator=_positive_decimal)
    new_order_wait_s: float = attrs.field(default=20.0, validator=_positive)
    reconcile_wait_s: float = attrs.field(default=30.0, validator=_positive)
    reconcile_passes: int = attrs.field(default=2, validator=_count)
    fill_wait_s: float = attrs.field(default=40.0, validator=_positive)
    status_query_gap_s: float = attrs.field(default=1.0, validator=_positive)
    cancel_retry_delay_s: float = attrs.field(default=0.5, validator=_positive)
    pressure_hold_s: float = attrs.field(default=300.0, validator=_positive)
    shutdown_journal_s: float = attrs.field(default=5.0, validator=_positive)


class ReplaceOutcome(enum.StrEnum):
    """How a replace request ended."""

    #: The old order was proven terminal, the new one acknowledged.
    REPLACED = "replaced"
    #: Over the envelope: cancelled, reconciled, then the new order was acknowledged.
    DEGRADED = "degraded"
    #: The old order filled while being cancelled; no new order was sent.
    FILLED_AFTER_CANCEL = "filled_after_cancel"
    #: Stopped with a reason (budget, unresolved cancel, refused new order...).
    GAVE_UP = "gave_up"
    #: Invalid request; nothing was sent.
    REFUSED = "refused"


@attrs.frozen
class ReplaceResult:
    """The answer to one :class:`~scalper.messages.ReplaceOrder`.

    Attributes:
        replace_id: the replace's id in the journal (``""`` only if the manager stopped
            before it could name the request).
        outcome: how it ended.
        reason: a snake_case tag (router refusals are appended: ``new_order_rejected:...``).
        new_intent_id: the new intent's id if it was handed to the Router (it may be live
            or pending even after ``gave_up``), else ``""``.
    """

    replace_id: str
    outcome: ReplaceOutcome
    reason: str
    new_intent_id: str = ""


@attrs.define
class _Job:
    """One admitted-or-not replace request and what it has done so far."""

    replace_id: str
    command: ReplaceOrder
    correlation_id: str
    symbol: str = ""
    old_coid: str = ""
    known_filled_qty: Decimal = ZERO
    remaining_qty: Decimal = ZERO
    price: Decimal | None = None
    reference_price: Decimal | None = None
    cancel_announced: bool = False
    unclear_reason: str = ""
    give_up_reason: str = ""
    submitted: bool = False
    finished: bool = False

    @property
    def old_intent_id(self) -> str:
        return self.command.intent_id

    @property
    def new_intent(self) -> Intent:
        return self.command.new_intent

    @property
    def new_intent_id(self) -> str:
        return self.command.new_intent.intent_id if self.submitted else ""


_Reply = trio.MemorySendChannel[ReplaceResult]
_E = ReplaceEventKind


class ReplaceManager:
    """The replace actor (see the module docstring).

    Args:
        journal: the single writer; its state is what requests are checked against.
        router: sends the cancels, status queries and the new intent.
        clock: the injected clock.
        config: budgets, the envelope budget, the waits.
        on_pressure: awaited with every journaled :class:`~scalper.messages.PressureRaised`
            (the BeliefController's inbox, once wired); ``None`` to only journal them.
    """

    def __init__(
        self,
        journal: Journal,
        router: Router,
        *,
        clock: Clock,
        config: ReplaceManagerConfig | None = None,
        on_pressure: Callable[[PressureRaised], Awaitable[None]] | None = None,
    ) -> None:
        self._journal = journal
        self._router = router
        self._clock = clock
        self._config = config or ReplaceManagerConfig()
        self._on_pressure = on_pressure
        #: The sliding-window replace budgets (kept across restarts of :meth:`run`, and
        #: seeded from the journal, so a process restart does not reset a storm's count).
        self.budget = ReplaceBudget(self._config.core)
        self.budget.restore(
            (
                (clock.from_wall_ms(wall_ms), symbol, ambiguous)
                for wall_ms, symbol, ambiguous in journal.state.replace_spent
            ),
            clock.now(),
        )
        self._sequence = 0
        self._busy: set[str] = set()  # old and new intent ids of replaces in flight
        self._nursery: trio.Nursery | None = None
        send, receive = trio.open_memory_channel[tuple[ReplaceOrder, _Reply]](64)
        self._commands_send = send
        self._commands = receive

    @property
    def config(self) -> ReplaceManagerConfig:
        """The manager's settings."""
        return self._config

    @property
    def in_flight(self) -> frozenset[str]:
        """Intent ids (old and new) of the replaces being worked now."""
        return frozenset(self._busy)

    # ----------------------------------------------------------------- public

    async def replace(self, command: ReplaceOrder) -> ReplaceResult:
        """Replace ``command.intent_id``'s live order with ``command.new_intent``.

        Returns once the replace ended (bounded by the config's waits and core's attempt
        and time bounds). Needs :meth:`run` to be running: a request made while it is not
        waits in the inbox until it runs (again), like a command to the Router.
        """
        send, receive = trio.open_memory_channel[ReplaceResult](1)
        await self._commands_send.send((command, send))
        async with receive:
            try:
                return await receive.receive()
            except trio.EndOfChannel:
                return ReplaceResult("", ReplaceOutcome.GAVE_UP, "manager_stopped")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve replace requests until cancelled (each admitted one runs as a task here)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            async for command, reply in self._commands:
                await self._accept(command, reply)

    # ----------------------------------------------------------------- validation

    async def _accept(self, command: ReplaceOrder, reply: _Reply) -> None:
        job = self._new_job(command)
        refusal = self._validate(job)
        if refusal is not None:
            result = ReplaceResult(job.replace_id, ReplaceOutcome.REFUSED, refusal)
            try:
                await self._finish(job, result)
            finally:
                self._answer(reply, result)  # even if stopped meanwhile: nothing was sent
            return
        self._busy.update((job.old_intent_id, job.new_intent.intent_id))
        assert self._nursery is not None
        self._nursery.start_soon(self._work, job, reply)

    def _new_job(self, command: ReplaceOrder) -> _Job:
        self._sequence += 1
        incarnation = self._journal.store.incarnation
        replace_id = f"rp:{command.intent_id}:{incarnation}:{self._sequence}"
        rec = self._journal.state.intents.get(command.intent_id)
        correlation = rec.correlation_id if rec is not None else command.intent_id
        return _Job(replace_id, command, correlation)

    def _validate(self, job: _Job) -> str | None:
        """Fill in the job from the journal, or return the reason to refuse it."""
        state = self._journal.state
        old_id, new = job.old_intent_id, job.new_intent
        if old_id in self._busy or new.intent_id in self._busy:
            return "replace_in_progress"
        rec = state.intents.get(old_id)
        if rec is None or rec.intent is None:
            return "unknown_intent"
        old = rec.intent
        if new.intent_id == old_id:
            return "same_intent_id"
        if new.intent_id in state.intents:
            # The Router would refuse it as a duplicate after the old order is gone.
            return "new_intent_id_known"
        if new.symbol != old.symbol:
            return "symbol_mismatch"
        if new.side is not old.side:
            return "side_mismatch"
        if new.position_side is not old.position_side:
            return "position_side_mismatch"
        if new.is_exit != old.is_exit:
            return "lane_mismatch"
        if new.quantity is None:
            return "new_quantity_missing"
        live = [o for o in state.orders_for_intent(old_id) if not o.is_terminal]
        if not live:
            return "no_live_order"
        if len(live) > 1:
            return "several_live_orders"
        order = live[0]
        if order.is_unresolved:
            return "old_order_unresolved"
        if order.request.quantity is None:
            return "old_quantity_missing"  # a close-position stop: no size to replace
        hint = state.price_hint(order)
        new_price = new.price if new.price is not None else job.command.reference_price
        prices = [p for p in (new_price, hint) if p is not None]
        if not prices:
            return "no_price"
        job.symbol = new.symbol
        job.old_coid = order.client_order_id
        job.known_filled_qty = order.filled_qty
        job.remaining_qty = order.remaining_qty
        # The worse (higher) of the two prices values the worst case (core's advice).
        job.price = max(prices)
        job.reference_price = new_price if new_price is not None else hint
        if not new.is_exit:
            # Exits are never gated (I1); an entry the Router would refuse must not cost
            # the working order, so the gates are asked before anything is cancelled.
            refusal = self._router.entry_refusal(self._submission(job), freed_orders=1)
            if refusal is not None:
                return refusal[0]
        return None

    def _submission(self, job: _Job) -> SubmitIntent:
        return SubmitIntent(job.new_intent, reference_price=job.reference_price, source=SOURCE)

    # ----------------------------------------------------------------- one replace

    async def _work(self, job: _Job, reply: _Reply) -> None:
        result: ReplaceResult | None = None
        try:
            result = await self._admit_and_drive(job)
        finally:
            self._busy.discard(job.old_intent_id)
            self._busy.discard(job.new_intent.intent_id)
            if result is None:
                # Cancelled (shutdown, restart) or crashed mid-way: say so, bounded.
                result = ReplaceResult(
                    job.replace_id, ReplaceOutcome.GAVE_UP, "interrupted", job.new_intent_id
                )
                if not job.finished:
                    with trio.move_on_after(self._config.shutdown_journal_s, shield=True):
                        await self._finish(job, result)
            self._answer(reply, result)

    async def _admit_and_drive(self, job: _Job) -> ReplaceResult:
        assert job.price is not None
        cfg = self._config
        new = job.new_intent
        assert new.quantity is not None
        state = self._journal.state
        order = state.orders[job.old_coid]
        now = self._clock.now()
        position = state.position(job.symbol, new.position_side)
        budget = cfg.max_exposure_notional
        if new.is_exit:
            # An exit cannot add exposure, and ``|position|`` is always a corner of the
            # envelope: without this, a position already above the budget would push every
            # exit replace onto the slow path, with no exit working meanwhile (I1). Exits
            # are held to "no worse than what is already held", or the budget if larger.
            budget = max(budget, abs(position) * job.price)
        envelope = check_envelope(
            position_qty=position,
            old_side=order.request.side,
            old_remaining_qty=job.remaining_qty,
            new_side=new.side,
            new_qty=new.quantity,
            price=job.price,
            budget_notional=budget,
        )
        admission = admit_replace(self.budget, symbol=job.symbol, now=now, envelope=envelope)
        await self._journal.append(
            ReplaceAdmitted(
                intent_id=job.old_intent_id,
                correlation_id=job.correlation_id,
                replace_id=job.replace_id,
                symbol=job.symbol,
                new_intent_id=new.intent_id,
                decision=admission.decision,
                reason=admission.reason,
                worst_case_notional=envelope.worst_case_notional,
            )
        )
        if admission.pressure is not None:
            await self._raise_pressure(job, admission.pressure)
        if admission.decision == "replace":
            outcome, reason = await self._drive(job)
        elif admission.decision == DEGRADE_TAG:
            outcome, reason = await self._degrade(job)
        else:
            # Over budget: nothing was sent; the old order keeps working (I1 for exits).
            outcome, reason = ReplaceOutcome.GAVE_UP, admission.reason
        result = ReplaceResult(job.replace_id, outcome, reason, job.new_intent_id)
        await self._finish(job, result)
        return result

    # ----------------------------------------------------------------- the machine

    async def _drive(self, job: _Job) -> tuple[ReplaceOutcome, str]:
        """Run core's cancel-then-create machine to a terminal state."""
        machine = ReplaceMachine(
            job.symbol,
            job.old_coid,
            known_filled_qty=job.known_filled_qty,
            config=self._config.core,
        )
        step = await self._apply(job, machine, ReplaceEvent(_E.START))
        last_cancel: CancelAttempt | None = None
        while not machine.is_terminal:
            # A non-terminal step asks for exactly one action.
            action = step.actions[0]
            if action is ReplaceAction.SEND_CANCEL:
                if machine.cancel_attempts > 1:
                    await self._pause_before_cancel(machine, last_cancel)
                event, last_cancel = await self._send_cancel(job)
            elif action is ReplaceAction.QUERY_STATUS:
                if machine.status_queries > 1:
                    await trio.sleep(self._config.status_query_gap_s)
                event = await self._query_status(job)
            elif action is ReplaceAction.SEND_NEW:
                event = await self._send_new(job)
            else:
                assert action is ReplaceAction.ACCOUNT_FILL, action
                event = await self._account_fill(job, machine.observed_filled_qty)
            step = await self._apply(job, machine, event)
        if machine.state is ReplaceState.DONE:
            if machine.new_sent:
                return ReplaceOutcome.REPLACED, machine.reason
            return ReplaceOutcome.FILLED_AFTER_CANCEL, machine.reason
        return ReplaceOutcome.GAVE_UP, job.give_up_reason or machine.reason

    async def _apply(self, job: _Job, machine: ReplaceMachine, event: ReplaceEvent) -> ReplaceStep:
        now = self._clock.now()
        step = machine.apply(event, now)
        if step.ambiguous:
            self.budget.record_ambiguity(job.symbol, now)
        await self._journal.append(
            ReplaceStepped(
                intent_id=job.old_intent_id,
                correlation_id=job.correlation_id,
                replace_id=job.replace_id,
                state=step.state.value,
                actions=tuple(a.value for a in step.actions),
                reason=step.reason,
                fill_qty=step.fill_qty,
                ambiguous=step.ambiguous,
            )
        )
        if step.pressure is not None:
            await self._raise_pressure(job, step.pressure)
        return step

    def _give_up(self, job: _Job, reason: str) -> ReplaceEvent:
        job.give_up_reason = reason
        return ReplaceEvent(_E.GIVE_UP)

    async def _pause_before_cancel(
        self, machine: ReplaceMachine, last: CancelAttempt | None
    ) -> None:
        delay = self._config.cancel_retry_delay_s
        if last is not None and last.retry_after_s is not None:
            delay = max(delay, last.retry_after_s)
        if machine.started_at is not None:
            # Never sleep past the machine's deadline: it gives up there anyway (I2).
            left = machine.started_at + self._config.core.max_elapsed_seconds - self._clock.now()
            delay = min(delay, max(left, 0.0))
        await trio.sleep(delay)

    async def _send_cancel(self, job: _Job) -> tuple[ReplaceEvent, CancelAttempt]:
        attempt = await self._router.cancel_once(
            job.old_coid, f"replace:{job.replace_id}", announce=not job.cancel_announced
        )
        if attempt.outcome is not CancelOutcome.NOT_SENT:
            job.cancel_announced = True
        outcome = attempt.outcome
        if outcome is CancelOutcome.CANCELED:
            assert attempt.order is not None
            return ReplaceEvent(_E.CANCEL_ACK, attempt.order.filled_qty), attempt
        if outcome is CancelOutcome.UNCLEAR:
            job.unclear_reason = attempt.reason
            return ReplaceEvent(_E.CANCEL_UNKNOWN), attempt
        if outcome is CancelOutcome.NOT_DONE:
            return ReplaceEvent(_E.CANCEL_FAILED), attempt
        if outcome is CancelOutcome.NOT_SENT and attempt.reason == "already_terminal":
            # The stream closed it meanwhile (filled, expired): the venue's status decides
            # whether there is a fill to hand over, exactly as after an unclear cancel.
            job.unclear_reason = attempt.reason
            return ReplaceEvent(_E.CANCEL_UNKNOWN), attempt
        return self._give_up(job, f"cancel_{outcome.value}:{attempt.reason}"), attempt

    async def _query_status(self, job: _Job) -> ReplaceEvent:
        check = await self._router.check_cancel(job.old_coid, job.unclear_reason or SOURCE)
        if check.outcome in (CancelOutcome.OPEN, CancelOutcome.CLOSED):
            assert check.order is not None
            return ReplaceEvent.from_status(check.order)
        # Not found proves nothing about fills; a failed query proves nothing at all.
        return ReplaceEvent(_E.STATUS_UNKNOWN)

    async def _send_new(self, job: _Job) -> ReplaceEvent:
        old = self._journal.state.orders.get(job.old_coid)
        if old is None or not old.is_terminal:
            # The machine proved it terminal from the venue's answer; if the journal does
            # not agree (its fold refused the evidence), the proof is not durable (I7).
            return self._give_up(job, "old_order_not_terminal_in_journal")
        event, reason = await self._submit_new(job)
        if reason:
            job.give_up_reason = reason
        return event

    async def _submit_new(self, job: _Job) -> tuple[ReplaceEvent, str]:
        """Hand the new intent to the Router and wait for its order's outcome."""
        receipt = await self._router.submit(self._submission(job))
        job.submitted = True
        if not receipt.accepted:
            return ReplaceEvent(_E.NEW_REJECTED), f"new_order_rejected:{receipt.reason}"
        kind = await self._wait_for(
            lambda: self._new_order_outcome(job.new_intent.intent_id),
            self._config.new_order_wait_s,
        )
        if kind is None:
            return ReplaceEvent(_E.NEW_UNKNOWN), "new_order_outcome_unknown"
        if kind is _E.NEW_REJECTED:
            return ReplaceEvent(kind), "new_order_rejected"
        return ReplaceEvent(kind), ""

    def _new_order_outcome(self, intent_id: str) -> ReplaceEventKind | None:
        """The new intent's order outcome as the journal shows it, ``None`` while pending."""
        fate = self._journal.state.intent_fate(intent_id)
        if fate is IntentFate.PENDING:
            return None  # not sent, being resolved, or the next generation is coming
        if fate is IntentFate.REJECTED:
            return _E.NEW_REJECTED  # refused, or every generation proven absent
        # Live, filled, closed by the venue after it took it, or proven to exist (-4116).
        return _E.NEW_ACKED

    async def _account_fill(self, job: _Job, observed: Decimal) -> ReplaceEvent:
        def journaled() -> bool | None:
            order = self._journal.state.orders.get(job.old_coid)
            return True if order is not None and order.filled_qty >= observed else None

        if await self._wait_for(journaled, self._config.fill_wait_s):
            return ReplaceEvent(_E.FILL_ACCOUNTED)
        return self._give_up(job, "fill_not_journaled")

    # ----------------------------------------------------------------- degrade

    async def _degrade(self, job: _Job) -> tuple[ReplaceOutcome, str]:
        """Cancel, let reconciliation settle the picture, then create (I8's slow path)."""
        cfg = self._config
        await self._degrade_step(job, "DEGRADE_CANCEL", ("SEND_CANCEL",), "envelope_exceeded")
        if not await self._router.cancel_order(job.old_coid, f"replace:{job.replace_id}"):
            return await self._degrade_gave_up(job, "cancel_unproven")
        passes_before = self._journal.state.count("reconcile_runs")
        await self._degrade_step(job, "DEGRADE_RECONCILE", ("RECONCILE",), "awaiting_reconcile")

        def settled() -> bool | None:
            state = self._journal.state
            old = state.orders.get(job.old_coid)
            last = state.last_reconcile
            ok = (
                old is not None
                and old.is_terminal
                and state.count("reconcile_runs") >= passes_before + cfg.reconcile_passes
                and last is not None
                and last.clean
            )
            return True if ok else None

        if not await self._wait_for(settled, cfg.reconcile_wait_s):
            return await self._degrade_gave_up(job, "reconcile_not_settled")
        old = self._journal.state.orders[job.old_coid]
        # The venue's own count (a cancel ack's executedQty) may run ahead of the trades.
        executed = old.filled_qty if old.tracker is None else old.tracker.known_filled_qty
        fill = max(old.filled_qty, executed) - job.known_filled_qty
        if fill > 0:
            # The position changed under the plan: hand it back to the strategy.
            await self._degrade_step(job, "DEGRADE_FILLED", (), "filled_after_cancel", fill)
            return ReplaceOutcome.FILLED_AFTER_CANCEL, "filled_after_cancel_no_new_order"
        await self._degrade_step(job, "DEGRADE_CREATE", ("SEND_NEW",), "old_order_settled")
        event, reason = await self._submit_new(job)
        if event.kind is _E.NEW_ACKED:
            return ReplaceOutcome.DEGRADED, DEGRADE_TAG
        if event.kind is _E.NEW_REJECTED:
            # Old proven gone, new refused: nothing live and nothing in doubt.
            return ReplaceOutcome.GAVE_UP, reason
        return await self._degrade_gave_up(job, reason)

    async def _degrade_step(
        self,
        job: _Job,
        state: str,
        actions: tuple[str, ...],
        reason: str,
        fill_qty: Decimal = ZERO,
    ) -> None:
        await self._journal.append(
            ReplaceStepped(
                intent_id=job.old_intent_id,
                correlation_id=job.correlation_id,
                replace_id=job.replace_id,
                state=state,
                actions=actions,
                reason=reason,
                fill_qty=fill_qty,
            )
        )

    async def _degrade_gave_up(self, job: _Job, reason: str) -> tuple[ReplaceOutcome, str]:
        await self._degrade_step(job, ReplaceState.GAVE_UP.value, ("RECONCILE",), reason)
        core = self._config.core
        pressure = ReplacePressure(
            symbol=job.symbol,
            cause=REPLACE_RACE_CAUSE,
            severity=core.race_severity,
            reason=reason,
            at=self._clock.now(),
        )
        await self._raise_pressure(job, pressure)
        return ReplaceOutcome.GAVE_UP, reason

    # ----------------------------------------------------------------- plumbing

    async def _raise_pressure(self, job: _Job, pressure: ReplacePressure) -> None:
        event = PressureRaised(
            source=SOURCE,
            symbol=pressure.symbol,
            cause=pressure.cause,
            severity=pressure.severity,
            reason=pressure.reason,
            hold_s=self._config.pressure_hold_s,
            correlation_id=job.correlation_id,
        )
        await self._journal.append(event)
        if self._on_pressure is not None:
            await self._on_pressure(event)

    async def _finish(self, job: _Job, result: ReplaceResult) -> None:
        job.finished = True
        await self._journal.append(
            ReplaceFinished(
                intent_id=job.old_intent_id,
                correlation_id=job.correlation_id,
                replace_id=job.replace_id,
                outcome=result.outcome.value,
                reason=result.reason,
                new_intent_id=result.new_intent_id,
            )
        )

    @staticmethod
    def _answer(reply: _Reply, result: ReplaceResult) -> None:
        # The caller may have gone away; the journal has the result anyway.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            reply.send_nowait(result)
        reply.close()

    async def _wait_for(self, probe: Callable[[], _T | None], timeout_s: float) -> _T | None:
        """Wait, at most ``timeout_s``, until ``probe()`` (a read of the journal's state) answers.

        Re-probed after every journaled event; subscribing before the first probe means
        no change can slip between the probe and the wait.
        """
        subscription = self._journal.subscribe(SOURCE)
        # Closing the channel unsubscribes: the journal drops a closed subscriber.
        with subscription.receive:
            found = probe()
            if found is not None:
                return found
            with trio.move_on_after(timeout_s):
                async for _entry in subscription.receive:
                    found = probe()
                    if found is not None:
                        return found
        return probe()
