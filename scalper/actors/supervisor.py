"""Erlang-style supervision of scalper's actors, built on trio nurseries.

Theory of operation
-------------------

A :class:`Supervisor` owns a list of :class:`ChildSpec` and keeps them alive. It decides one
thing: when a child's run ends, whether and when that child (or its whole generation) runs
again, and when to give up. It serves the system's failure doctrine: an actor that crashes
is restarted after a bounded, jittered pause (I2: every retry loop is bounded), and a
supervisor that cannot keep its children alive stops them all and says so loudly instead
of flapping forever.

Rules:

* **Ordered start.** Children start in list order, each through ``nursery.start``: child
  ``i + 1`` is not started before child ``i`` called ``task_status.started()`` (its channels
  are ready). :meth:`Supervisor.run` calls its own ``task_status.started()`` once every child
  has started. A child that crashes *before* calling ``started()`` is restarted like any
  other crash, and the start keeps waiting for it (bounded by the restart intensity). A
  child that ends for good without calling ``started()`` releases the start.
* **Restart type** (per child): PERMANENT children are restarted whenever their run ends,
  even by a normal return; TRANSIENT ones only after an exception; TEMPORARY ones never.
* **Strategy.** ONE_FOR_ONE restarts only the child that ended. ONE_FOR_ALL stops every
  sibling (cancelling it, so its ``finally`` blocks run) and restarts the whole generation
  in list order, with ordered start again. Under ONE_FOR_ALL a TEMPORARY child stopped by
  a sibling's crash is not restarted, and a child that ended for good leaves the
  generation; siblings stopped by a restart emit no event of their own (the crash that
  triggered it explains them).
* **Restart intensity.** Each restart (one per generation under ONE_FOR_ALL) is stamped
  with ``clock.now()``. When more than ``max_restarts`` stamps fall within the last
  ``period_s`` seconds the supervisor *escalates*: it stops every child, emits
  :class:`Escalated` and raises :class:`RestartIntensityExceeded`, with the last error as
  ``__cause__``. A parent supervisor sees that as a crash of its own child and applies its
  own strategy; at the top it ends the system.
* **Backoff.** Before a restart the child waits a capped exponential delay
  (:func:`backoff_delay`): the n-th consecutive restart waits ``initial * multiplier **
  (n - 1)``, capped at ``backoff_max_s``, scaled by a jitter factor drawn from the injected
  ``random.Random``. The streak resets once the child has run ``period_s`` seconds before
  ending. The pause is on trio's clock, so it is virtual under ``MockClock``.
* **What counts as a crash.** Only ``Exception`` is caught. ``trio.Cancelled``,
  ``KeyboardInterrupt`` and ``SystemExit`` pass untouched, so an outer cancel (say a
  ``move_on_after`` around :meth:`Supervisor.run`) ends everything with no restart and no
  crash event. An ``ExceptionGroup`` from an actor's inner nursery is an ``Exception``, so
  it is a crash; a ``BaseExceptionGroup`` that contains a ``Cancelled`` propagates.
* **Events.** The supervisor awaits ``on_event`` with a :data:`SupervisorEvent` for every
  start, crash, normal exit and escalation, in order, so an actor can journal *why* a child
  restarted. An exception from ``on_event`` is a bug and propagates (it is never caught as a
  child's crash).

Exception convention at the boundary
------------------------------------

:meth:`Supervisor.run` raises :class:`RestartIntensityExceeded` **bare**, never wrapped in
an ``ExceptionGroup``: escalation is the supervisor's own decision, so it stops its
children through their cancel scopes and raises after its nursery has closed. Callers
write ``except RestartIntensityExceeded``. Everything else that escapes is not the
supervisor's decision and comes out the way trio delivers it: ``Cancelled`` for an outer
cancel (absorbed by the cancelling scope), and a ``BaseExceptionGroup`` from the
supervisor's nursery for a ``BaseException`` raised by a child or a bug in ``on_event``.

Determinism: under ``MockClock`` with a seeded scheduler (:mod:`scalper.determinism`) and
a seeded ``rng``, the same children produce the same event log, byte for byte.
"""

import collections
import enum
import math
import random
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeAlias

import attrs
import trio

from scalper.clock import Clock
from scalper.core.errors_base import CoreValueError

__all__ = [
    "ChildCrashed",
    "ChildExited",
    "ChildSpec",
    "ChildStarted",
    "ChildStats",
    "ChildStatus",
    "Escalated",
    "RestartIntensityExceeded",
    "RestartStrategy",
    "RestartType",
    "Supervisor",
    "SupervisorConfig",
    "SupervisorEvent",
    "SupervisorStats",
    "backoff_delay",
]


class RestartStrategy(enum.StrEnum):
    """Which children restart when one of them ends and must be restarted."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"


class RestartType(enum.StrEnum):
    """When a child is restarted after its run ends."""

    PERMANENT = "permanent"  # always, even after a normal return
    TRANSIENT = "transient"  # only after an exception
    TEMPORARY = "temporary"  # never


class ChildStatus(enum.StrEnum):
    """Where a child is in its life, for status pages and metrics."""

    PENDING = "pending"  # not started yet in this run of the supervisor
    RUNNING = "running"
    RESTARTING = "restarting"  # ended, waiting out its backoff (or its generation's)
    STOPPED = "stopped"  # ended for good, or the supervisor is not running


def _check_name(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CoreValueError(attribute.name, f"must be a non-empty string, got {value!r}")


def _check_callable(
    _inst: object, attribute: "attrs.Attribute[Callable[..., Awaitable[None]]]", value: object
) -> None:
    if not callable(value):
        raise CoreValueError(attribute.name, f"must be an async callable, got {value!r}")


def _check_restart_type(
    _inst: object, attribute: "attrs.Attribute[RestartType]", value: object
) -> None:
    if not isinstance(value, RestartType):
        raise CoreValueError(attribute.name, f"must be a RestartType, got {value!r}")


@attrs.frozen
class ChildSpec:
    """One supervised child.

    Attributes:
        name: unique within its supervisor; names the child in events and stats.
        run: the child's body, called as ``await run(task_status=...)``. It calls
            ``task_status.started()`` once it is ready (its channels are open); on a restart
            under ONE_FOR_ONE it receives ``trio.TASK_STATUS_IGNORED``.
        restart: when the child is restarted (see :class:`RestartType`).
    """

    name: str = attrs.field(validator=_check_name)
    run: Callable[..., Awaitable[None]] = attrs.field(validator=_check_callable)
    restart: RestartType = attrs.field(default=RestartType.PERMANENT, validator=_check_restart_type)


def _number(field: str, value: object, *, low: float, high: float = math.inf) -> float:
    """``value`` as a finite float in ``[low, high]``, or a CoreValueError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise CoreValueError(field, f"must be a finite number {bounds}, got {value!r}")
    return float(value)


def _finite_nonneg(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    _number(attribute.name, value, low=0.0)


def _finite_positive(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if _number(attribute.name, value, low=0.0) == 0:
        raise CoreValueError(attribute.name, f"must be > 0, got {value!r}")


def _integer(field: str, value: object, *, low: int) -> int:
    """``value`` as an int ``>= low``, or a CoreValueError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CoreValueError(field, f"must be an integer >= {low}, got {value!r}")
    return value


def _check_max_restarts(_inst: object, attribute: "attrs.Attribute[int]", value: object) -> None:
    _integer(attribute.name, value, low=0)


def _check_multiplier(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    # >= 1: pauses never shrink along a streak.
    _number(attribute.name, value, low=1.0)


def _check_jitter(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    _number(attribute.name, value, low=0.0, high=1.0)


def _check_instance(field: str, value: object, cls: type, what: str) -> None:
    if not isinstance(value, cls):
        raise CoreValueError(field, f"must be {what}, got {value!r}")


@attrs.frozen
class SupervisorConfig:
    """Restart intensity and backoff of one supervisor.

    Attributes:
        max_restarts: more restarts than this within ``period_s`` escalates (0: the first
            restart escalates).
        period_s: the intensity window; also how long a child must run before its backoff
            streak resets.
        backoff_initial_s: the pause before the first restart of a streak, before jitter.
        backoff_max_s: cap on any pause, jitter included.
        backoff_multiplier: growth factor of the pause per consecutive restart.
        jitter: each pause is scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``.
    """

    max_restarts: int = attrs.field(default=5, validator=_check_max_restarts)
    period_s: float = attrs.field(default=30.0, validator=_finite_positive)
    backoff_initial_s: float = attrs.field(default=0.05, validator=_finite_nonneg)
    backoff_max_s: float = attrs.field(default=5.0, validator=_finite_nonneg)
    backoff_multiplier: float = attrs.field(default=2.0, validator=_check_multiplier)
    jitter: float = attrs.field(default=0.2, validator=_check_jitter)

    def __attrs_post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_initial_s:
            raise CoreValueError(
                "backoff_max_s",
                f"must be >= backoff_initial_s ({self.backoff_initial_s}), "
                f"got {self.backoff_max_s}",
            )


def _grown(initial: float, multiplier: float, steps: int, cap: float) -> float:
    """``min(cap, initial * multiplier ** steps)`` without float overflow on long streaks."""
    if initial == 0 or multiplier == 1:
        return min(initial, cap)
    try:
        return min(initial * multiplier**steps, cap)
    except OverflowError:
        # The power left the float range; only a tiny ``initial`` can keep the product under
        # the cap, so compare in log space (cap >= initial > 0 here).
        log_raw = math.log(initial) + steps * math.log(multiplier)
        return cap if log_raw >= math.log(cap) else math.exp(log_raw)


def backoff_delay(config: SupervisorConfig, streak: int, rng: random.Random) -> float:
    """The pause before the ``streak``-th consecutive restart of a child.

    ``min(backoff_max_s, backoff_initial_s * backoff_multiplier ** (streak - 1))`` scaled by
    ``1 + U(-jitter, +jitter)`` and clamped to ``[0, backoff_max_s]``. Consumes exactly one
    draw from ``rng`` (none if ``jitter`` is 0), so a seeded run replays the same pauses.

    Raises:
        CoreValueError: if ``streak`` is not an integer >= 1.
    """
    _integer("streak", streak, low=1)
    raw = _grown(
        config.backoff_initial_s, config.backoff_multiplier, streak - 1, config.backoff_max_s
    )
    if config.jitter > 0:
        raw *= 1.0 + rng.uniform(-config.jitter, config.jitter)
    return min(max(raw, 0.0), config.backoff_max_s)


# --- events --------------------------------------------------------------------------------


@attrs.frozen
class ChildStarted:
    """The supervisor is about to call a child's ``run`` (``at`` is ``clock.now()``).

    ``restart_count`` is 0 for the child's first start and counts restarts after it.
    """

    supervisor: str
    child: str
    at: float
    restart_count: int


@attrs.frozen
class ChildCrashed:
    """A child's run raised an ``Exception``.

    ``restart_in_s`` is the pause before it (or its generation) runs again; ``None`` when it
    will not be restarted (TEMPORARY, or the supervisor is escalating).
    """

    supervisor: str
    child: str
    at: float
    error_type: str
    error: str
    restart_in_s: float | None


@attrs.frozen
class ChildExited:
    """A child's run returned normally.

    ``restart_in_s`` is set when a PERMANENT child is restarted after a normal return.
    """

    supervisor: str
    child: str
    at: float
    restart_in_s: float | None = None


@attrs.frozen
class Escalated:
    """The supervisor exceeded its restart intensity, stopped its children and gives up."""

    supervisor: str
    at: float
    reason: str


#: Everything a supervisor reports through ``on_event``.
SupervisorEvent: TypeAlias = ChildStarted | ChildCrashed | ChildExited | Escalated


class RestartIntensityExceeded(Exception):  # noqa: N818 (the Erlang name; it is an error)
    """A supervisor saw too many restarts in too short a time and stopped.

    ``__cause__`` is the last child's error (``None`` if a PERMANENT child kept returning).

    Attributes:
        supervisor: the supervisor that gave up.
        child: the child whose restart exceeded the intensity.
        restarts: restarts counted in the window, including the refused one.
        period_s: the window length.
    """

    def __init__(self, supervisor: str, child: str, restarts: int, period_s: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r}: {restarts} restarts within {period_s:g}s "
            f"(the last for child {child!r}); stopping all children"
        )
        self.supervisor = supervisor
        self.child = child
        self.restarts = restarts
        self.period_s = period_s


# --- stats ---------------------------------------------------------------------------------


@attrs.frozen
class ChildStats:
    """A snapshot of one child, for status pages and metrics.

    ``restarts`` and ``crashes`` accumulate over the supervisor's lifetime (across runs).
    """

    name: str
    restart: RestartType
    status: ChildStatus
    restarts: int
    crashes: int
    last_error_type: str | None


@attrs.frozen
class SupervisorStats:
    """A snapshot of a supervisor and its children, in child order."""

    supervisor: str
    strategy: RestartStrategy
    running: bool
    escalated: bool
    children: tuple[ChildStats, ...]


# --- internals -----------------------------------------------------------------------------


@attrs.define
class _ChildState:
    spec: ChildSpec
    status: ChildStatus = ChildStatus.PENDING
    lives: int = 0  # runs begun, over the supervisor's lifetime
    restarts: int = 0
    crashes: int = 0
    last_error_type: str | None = None
    streak: int = 0  # consecutive restarts, for the backoff
    life_started_at: float = 0.0
    finished: bool = False  # ended for good in this run of the supervisor
    scope: trio.CancelScope | None = None  # the current life's, so the supervisor can stop it


@attrs.define
class _Generation:
    """One ONE_FOR_ALL generation: its members and, once triggered, its restart pause."""

    members: list[_ChildState]
    restart_in_s: float | None = None

    def stop_members(self) -> None:
        for member in self.members:
            if member.scope is not None:
                member.scope.cancel()


class _StartGate:
    """A child's ``task_status``: forwards the first ``started()`` and remembers it."""

    def __init__(self, status: trio.TaskStatus[None]) -> None:
        self._status = status
        self.done = False

    def started(self, value: None = None) -> None:
        if self.done:
            raise RuntimeError("called 'started' twice on the same task status")
        self.done = True
        self._status.started(value)

    def release(self) -> None:
        """Let the ordered start move on, if the child did not (it ended first)."""
        if not self.done:
            self.started()


def _describe(exc: BaseException) -> str:
    """A one-line description of an error; groups list their leaves."""
    if isinstance(exc, BaseExceptionGroup):
        inner = "; ".join(f"{type(e).__name__}: {_describe(e)}" for e in exc.exceptions)
        return f"{exc.message} [{inner}]"
    return str(exc) or repr(exc)


def _wants_restart(spec: ChildSpec, error: Exception | None) -> bool:
    if spec.restart is RestartType.PERMANENT:
        return True
    return spec.restart is RestartType.TRANSIENT and error is not None


class Supervisor:
    """Runs children in a nursery and restarts them by strategy, backoff and intensity.

    Args:
        name: names the supervisor in events and errors.
        children: started in this order; names must be unique.
        strategy: ONE_FOR_ONE or ONE_FOR_ALL.
        config: restart intensity and backoff.
        rng: the injected RNG for backoff jitter.
        clock: the system clock; ``clock.now()`` stamps events and restarts.
        on_event: awaited with every :data:`SupervisorEvent`; its exceptions propagate.

    Raises:
        CoreValueError: on an empty name, duplicate child names or mistyped arguments.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
        config: SupervisorConfig = SupervisorConfig(),  # frozen, so sharing is safe
        rng: random.Random,
        clock: Clock,
        on_event: Callable[[SupervisorEvent], Awaitable[None]] | None = None,
    ) -> None:
        _check_name(None, attrs.fields(ChildSpec).name, name)
        specs = tuple(children)
        for spec in specs:
            _check_instance("children", spec, ChildSpec, "a sequence of ChildSpec")
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CoreValueError("children", f"child names must be unique, repeated: {duplicates}")
        _check_instance("strategy", strategy, RestartStrategy, "a RestartStrategy")
        _check_instance("config", config, SupervisorConfig, "a SupervisorConfig")
        _check_instance("rng", rng, random.Random, "a random.Random")
        _check_instance("clock", clock, Clock, "a scalper.clock.Clock")
        if on_event is not None and not callable(on_event):
            raise CoreValueError("on_event", f"must be an async callable, got {on_event!r}")
        self.name = name
        self.strategy = strategy
        self.config = config
        self._rng = rng
        self._clock = clock
        self._on_event = on_event
        self._states = [_ChildState(spec) for spec in specs]
        self._running = False
        # Per run of the supervisor (reset by run()):
        self._restart_stamps: collections.deque[float] = collections.deque()
        self._escalation: RestartIntensityExceeded | None = None
        self._stop_event: trio.Event | None = None

    # --- observation ---------------------------------------------------------------------

    @property
    def children(self) -> tuple[ChildSpec, ...]:
        """The child specs, in start order."""
        return tuple(state.spec for state in self._states)

    @property
    def restart_counts(self) -> Mapping[str, int]:
        """Restarts per child name, in child order (a read-only snapshot)."""
        return types.MappingProxyType({s.spec.name: s.restarts for s in self._states})

    def stats(self) -> SupervisorStats:
        """A snapshot of the supervisor and its children."""
        return SupervisorStats(
            supervisor=self.name,
            strategy=self.strategy,
            running=self._running,
            escalated=self._escalation is not None,
            children=tuple(
                ChildStats(
                    name=s.spec.name,
                    restart=s.spec.restart,
                    status=s.status,
                    restarts=s.restarts,
                    crashes=s.crashes,
                    last_error_type=s.last_error_type,
                )
                for s in self._states
            ),
        )

    # --- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order and supervise them.

        Calls ``task_status.started()`` once every child has started. Returns when every
        child has ended for good (TRANSIENT and TEMPORARY children can); runs until
        cancelled otherwise. A supervisor can be run again after ``run`` ends (a parent
        supervisor restarting it): intensity, backoff streaks and statuses start afresh,
        restart counts accumulate.

        Raises:
            RestartIntensityExceeded: bare, after every child has been stopped.
            RuntimeError: if this supervisor is already running.
        """
        if self._running:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        self._begin_run()
        try:
            if self.strategy is RestartStrategy.ONE_FOR_ONE:
                await self._run_one_for_one(task_status)
            else:
                await self._run_one_for_all(task_status)
            escalation = self._escalation
            if escalation is not None:
                await self._emit(Escalated(self.name, self._clock.now(), str(escalation)))
                raise escalation
        finally:
            self._running = False
            for state in self._states:
                state.status = ChildStatus.STOPPED
                state.scope = None

    def _begin_run(self) -> None:
        self._running = True
        self._restart_stamps.clear()
        self._escalation = None
        self._stop_event = trio.Event()
        for state in self._states:
            state.status = ChildStatus.PENDING
            state.streak = 0
            state.finished = False
            state.scope = None

    async def _run_one_for_one(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            for state in self._states:
                if self._stopping:
                    break
                await nursery.start(self._supervise_one, state)
            if not self._stopping:
                task_status.started()

    async def _supervise_one(
        self, state: _ChildState, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """One child's restart loop under ONE_FOR_ONE."""
        gate = _StartGate(task_status)
        while not self._stopping:
            # Until the child has said started(), every attempt gets the real task status,
            # so the ordered start waits for a child that crashes during its start-up.
            status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED if gate.done else gate
            error, stopped = await self._live(state, status)
            if stopped and error is None:
                state.status = ChildStatus.STOPPED
                break
            restart_in_s = self._decide(state, error)
            if restart_in_s is None:
                state.status = ChildStatus.STOPPED
                state.finished = True
            else:
                state.status = ChildStatus.RESTARTING
            await self._report_end(state, error, restart_in_s)
            if restart_in_s is None:
                break
            await self._pause(restart_in_s)
        gate.release()

    async def _run_one_for_all(self, task_status: trio.TaskStatus[None]) -> None:
        announced = False
        while not self._stopping:
            members = [state for state in self._states if not state.finished]
            if not members:
                break
            generation = _Generation(members)
            async with trio.open_nursery() as nursery:
                for state in members:
                    if generation.restart_in_s is not None or self._stopping:
                        break
                    await nursery.start(self._generation_member, state, generation)
                if not announced and generation.restart_in_s is None and not self._stopping:
                    task_status.started()
                    announced = True
            if generation.restart_in_s is None or self._stopping:
                break
            await self._pause(generation.restart_in_s)
        if not announced and not self._stopping:
            task_status.started()  # every child ended for good before all had started

    async def _generation_member(
        self, state: _ChildState, generation: _Generation, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """One life of one child under ONE_FOR_ALL."""
        gate = _StartGate(task_status)
        error, stopped = await self._live(state, gate)
        gate.release()
        if stopped and error is None:
            # Stopped by the supervisor: a sibling's exit restarts the generation, or the
            # supervisor escalates. TEMPORARY children do not come back (as in OTP).
            state.finished = self._stopping or state.spec.restart is RestartType.TEMPORARY
            state.status = ChildStatus.STOPPED if state.finished else ChildStatus.RESTARTING
            return
        if self._stopping:
            self._record_end(state, error)
            restart_in_s = None
        elif generation.restart_in_s is not None:
            # The generation is already restarting (a sibling ended first); this exit rides
            # along and does not count against the intensity a second time.
            self._record_end(state, error)
            wanted = _wants_restart(state.spec, error)
            restart_in_s = generation.restart_in_s if wanted else None
        else:
            restart_in_s = self._decide(state, error)
            if restart_in_s is not None:
                generation.restart_in_s = restart_in_s
                generation.stop_members()
        state.finished = restart_in_s is None
        state.status = ChildStatus.STOPPED if state.finished else ChildStatus.RESTARTING
        await self._report_end(state, error, restart_in_s)

    async def _live(
        self, state: _ChildState, status: trio.TaskStatus[None]
    ) -> tuple[Exception | None, bool]:
        """Run one life of a child; return (its error, whether the supervisor stopped it)."""
        scope = trio.CancelScope()
        state.scope = scope
        try:
            if self._stopping:
                return None, True
            at = self._clock.now()
            restart_count = state.restarts + (1 if state.lives else 0)
            await self._emit(ChildStarted(self.name, state.spec.name, at, restart_count))
            state.lives += 1
            state.restarts = restart_count
            state.life_started_at = at
            state.status = ChildStatus.RUNNING
            # The except is outside the scope on purpose: when the supervisor stops a child
            # whose inner nursery fails while unwinding, the scope strips the Cancelled out
            # of the group and the remaining error is still caught here as a crash.
            try:
                with scope:
                    await state.spec.run(task_status=status)
            except Exception as exc:  # noqa: BLE001 (a crash, by definition; see the docstring)
                return exc, scope.cancelled_caught
            return None, scope.cancelled_caught
        finally:
            state.scope = None

    @property
    def _stopping(self) -> bool:
        return self._escalation is not None

    def _record_end(self, state: _ChildState, error: Exception | None) -> None:
        if error is not None:
            state.crashes += 1
            state.last_error_type = type(error).__name__

    def _decide(self, state: _ChildState, error: Exception | None) -> float | None:
        """Record a child's end and return its restart pause, or None; may escalate.

        Synchronous on purpose: between two checkpoints no sibling can slip a restart past
        the intensity check, and only one child can trigger the escalation.
        """
        self._record_end(state, error)
        if self._stopping or not _wants_restart(state.spec, error):
            return None
        now = self._clock.now()
        period = self.config.period_s
        stamps = self._restart_stamps
        stamps.append(now)
        while stamps and now - stamps[0] >= period:
            stamps.popleft()
        if len(stamps) > self.config.max_restarts:
            escalation = RestartIntensityExceeded(self.name, state.spec.name, len(stamps), period)
            escalation.__cause__ = error
            self._escalation = escalation
            self._stop_all()
            return None
        if now - state.life_started_at >= period:
            state.streak = 0  # it ran long enough: this is a fresh failure, not a flap
        state.streak += 1
        return backoff_delay(self.config, state.streak, self._rng)

    def _stop_all(self) -> None:
        for state in self._states:
            if state.scope is not None:
                state.scope.cancel()
        if self._stop_event is not None:
            self._stop_event.set()

    async def _pause(self, seconds: float) -> None:
        """Wait out a backoff on trio's clock, cut short if the supervisor escalates."""
        assert self._stop_event is not None
        with trio.move_on_after(seconds):
            await self._stop_event.wait()

    async def _report_end(
        self, state: _ChildState, error: Exception | None, restart_in_s: float | None
    ) -> None:
        at = self._clock.now()
        event: SupervisorEvent
        if error is None:
            event = ChildExited(self.name, state.spec.name, at, restart_in_s)
        else:
            event = ChildCrashed(
                self.name,
                state.spec.name,
                at,
                type(error).__name__,
                _describe(error),
                restart_in_s,
            )
        await self._emit(event)

    async def _emit(self, event: SupervisorEvent) -> None:
        if self._on_event is not None:
            await self._on_event(event)
