"""What a chaos run plays: a scenario is plain data (steps, a fault schedule, expectations).

Theory of operation
-------------------

A :class:`Scenario` is everything that makes one run different from another except the
seed: a **script** of timed :data:`Step` records (what the strategy, the operator and the
world do), a **fault schedule** of :class:`~scalper.venues.sim.faults.FaultSpec` windows
(how the simulated exchange misbehaves), and **expectations** about the posture. The seed
then decides the rest: the price path, which probabilistic faults fire, trio's scheduling
order and every actor's RNG. Same scenario, same seed, same journal.

Everything here is frozen attrs data with no behaviour beyond validation, so a hypothesis
strategy can generate scripts and schedules and shrink a failure to the smallest one that
still breaks an invariant, and a failing plan prints as a literal that replays.

Steps run at their ``at`` instant (seconds of simulated time since the run began), in
order; a step that is due while the system is down (after a crash, before the restart)
runs once the new incarnation is up. :class:`Enter` and :class:`Replace` wait (up to
``patience_s``) for the posture to allow entries first: posture boots ORANGE after every
start, and a script that fired into a closed gate would test nothing.
"""

from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import Role
from scalper.core.types import Side
from scalper.crashpoints import CrashKind, CrashPoint
from scalper.venues.sim.faults import FaultSpec

__all__ = [
    "ArmCrash",
    "Cancel",
    "Enter",
    "Exit",
    "Expectations",
    "Halt",
    "Kill",
    "MovePrice",
    "PlantOrphan",
    "Replace",
    "Resume",
    "Scenario",
    "Step",
    "VenueCancel",
]


def _at(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not (value >= 0.0 and value < float("inf")):
        raise CoreValueError(attribute.name, f"must be a finite time >= 0, got {value!r}")


def _name(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if not value or len(value) > 24:
        raise CoreValueError(attribute.name, f"must be 1-24 characters, got {value!r}")


def _qty(_inst: object, attribute: "attrs.Attribute[Decimal]", value: Decimal) -> None:
    if not value > 0:
        raise CoreValueError(attribute.name, f"must be positive, got {value}")


@attrs.frozen
class Enter:
    """The strategy submits an entry intent (market, or a limit ``offset_bps`` from mid).

    A positive offset rests a buy below the market (a sell above it); ``None`` is a market
    order. Waits up to ``patience_s`` for the posture to allow entries.
    """

    at: float = attrs.field(validator=_at)
    intent_id: str = attrs.field(validator=_name)
    quantity: Decimal = attrs.field(default=Decimal("0.002"), converter=Decimal, validator=_qty)
    side: Side = attrs.field(default=Side.BUY, converter=Side)
    offset_bps: float | None = None
    patience_s: float = 300.0


@attrs.frozen
class Exit:
    """The strategy flattens the symbol with a reduce-only market exit (never gated, I1)."""

    at: float = attrs.field(validator=_at)
    intent_id: str = attrs.field(validator=_name)


@attrs.frozen
class Cancel:
    """The strategy cancels an intent's live orders."""

    at: float = attrs.field(validator=_at)
    intent_id: str = attrs.field(validator=_name)


@attrs.frozen
class Replace:
    """The strategy replaces an intent's resting order by a new limit ``offset_bps`` from mid."""

    at: float = attrs.field(validator=_at)
    intent_id: str = attrs.field(validator=_name)
    new_intent_id: str = attrs.field(validator=_name)
    offset_bps: float = 20.0
    quantity: Decimal | None = None
    patience_s: float = 300.0


@attrs.frozen
class Halt:
    """The operator halts entries (durable)."""

    at: float = attrs.field(validator=_at)
    reason: str = "chaos operator halt"


@attrs.frozen
class Resume:
    """The operator asks to resume (refused unless the last reconcile was clean)."""

    at: float = attrs.field(validator=_at)


@attrs.frozen
class MovePrice:
    """The market jumps: the exchange's mark and book move to ``price``."""

    at: float = attrs.field(validator=_at)
    price: Decimal = attrs.field(converter=Decimal, validator=_qty)


@attrs.frozen
class ArmCrash:
    """Arm a named crash point on the running incarnation (it fires when next reached)."""

    at: float = attrs.field(validator=_at)
    point: CrashPoint = attrs.field(converter=CrashPoint)
    kind: CrashKind = attrs.field(default=CrashKind.PROCESS, converter=CrashKind)
    skip: int = 0


@attrs.frozen
class Kill:
    """Kill the whole process now, wherever it is (what is committed survives, nothing else)."""

    at: float = attrs.field(validator=_at)


@attrs.frozen
class VenueCancel:
    """Someone cancels our orders at the exchange behind the system's back.

    ``which``: ``stops`` (our protective stops: the stop-vanished case), ``entries`` (our
    resting entries) or ``foreign`` (orders that are not ours: someone cleans up by hand).
    """

    at: float = attrs.field(validator=_at)
    which: str = attrs.field(
        default="stops", validator=attrs.validators.in_(("stops", "entries", "foreign"))
    )


@attrs.frozen
class PlantOrphan:
    """An order the journal never saw rests at the exchange (left by a lost process).

    Give either ``client_order_id`` (our prefix makes it look like ours: adopt or cancel;
    anything else is someone else's: freeze) or ``for_intent``: the id our Router will
    derive for that intent's first order of ``role``, as a zombie process that already
    sent it would have (for an entry, the Router's own send then meets -4116, duplicate
    client order id).
    """

    at: float = attrs.field(validator=_at)
    client_order_id: str = ""
    for_intent: str = ""
    offset_bps: float = 150.0
    quantity: Decimal = attrs.field(default=Decimal("0.002"), converter=Decimal, validator=_qty)
    side: Side = attrs.field(default=Side.BUY, converter=Side)
    reduce_only: bool = False
    role: Role = attrs.field(default=Role.ENTRY, converter=Role)

    def __attrs_post_init__(self) -> None:
        if bool(self.client_order_id) == bool(self.for_intent):
            raise CoreValueError(
                "client_order_id", "give exactly one of client_order_id, for_intent"
            )


#: One scripted action.
Step = (
    Enter | Exit | Cancel | Replace | Halt | Resume | MovePrice | ArmCrash | Kill | VenueCancel
) | PlantOrphan


@attrs.frozen
class Expectations:
    """What the posture must do: degrade under the faults, recover after them.

    Attributes:
        degrade: the posture leaves GREEN after ``degrade_after`` (the scenario's trouble).
        degrade_after: the instant the trouble starts (default: the first fault).
        recover: entries are allowed again, with no halt, by the end of the run.
        kill_switch: the kill switch must trip (a halt with source ``kill_switch``).
    """

    degrade: bool = True
    degrade_after: float | None = None
    recover: bool = True
    kill_switch: bool = False


@attrs.frozen
class Scenario:
    """A named chaos scenario: a script, a fault schedule, expectations (see module doc).

    Attributes:
        name: the CLI name (``unknown-order``).
        description: one line: what happens.
        attacks: what it attacks and why it is dangerous (for ``docs/chaos.md``).
        proves: the invariants and exactly-once checks it is built to exercise.
        steps: the script, in any order (run sorted by ``at``).
        faults: the fault schedule (windows on the run's clock).
        duration_s: the run length; faults must end ``settle_s`` before it.
        settle_s: a quiet tail with no faults, so the end state is a quiescent one.
        expect: the posture expectations.
        reaches: "sometimes" labels this scenario exists to reach (checked over a campaign).
        restart_after_s: how long a killed process stays down before it is restarted.
    """

    name: str
    description: str
    attacks: str
    proves: tuple[str, ...]
    steps: tuple[Step, ...]
    faults: tuple[FaultSpec, ...] = ()
    duration_s: float = 1000.0
    settle_s: float = 280.0
    expect: Expectations = attrs.Factory(Expectations)
    reaches: tuple[str, ...] = ()
    restart_after_s: float = 3.0

    def __attrs_post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c == "-" for c in self.name):
            raise CoreValueError("name", f"must be letters, digits and '-', got {self.name!r}")
        if self.settle_s <= 0 or self.settle_s >= self.duration_s:
            raise CoreValueError("settle_s", "must be positive and shorter than duration_s")
        quiet_from = self.duration_s - self.settle_s
        for i, spec in enumerate(self.faults):
            if spec.end > quiet_from:
                raise CoreValueError(
                    f"faults[{i}].end",
                    f"must end by {quiet_from} (duration_s - settle_s), got {spec.end}",
                )
        for i, step in enumerate(self.steps):
            if step.at >= quiet_from and not isinstance(step, Exit | Resume):
                raise CoreValueError(
                    f"steps[{i}].at",
                    f"only Exit and Resume may run in the settle tail (from {quiet_from})",
                )

    @property
    def trouble_starts(self) -> float:
        """When the posture may first be expected to degrade."""
        if self.expect.degrade_after is not None:
            return self.expect.degrade_after
        if self.faults:
            return min(spec.start for spec in self.faults)
        return 0.0

    def ordered_steps(self) -> tuple[Step, ...]:
        """The script in execution order (stable for equal times)."""
        return tuple(sorted(self.steps, key=lambda s: s.at))
