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

Validation
----------

A plan is refused at construction, never half-run: a run that silently skipped a step
or judged quiescence while a fault still fired would pass for the wrong reason. Every
field of every class is validated and a bad value raises
:class:`~scalper.core.errors_base.CoreValueError` naming the field and the value:

* **Times and durations** (``at``, ``patience_s``, ``degrade_after``, ``duration_s``,
  ``settle_s``, ``restart_after_s``) are real numbers (not bools), finite and ``>= 0``
  (``duration_s`` and ``settle_s`` > 0). NaN and infinities are refused: a NaN compares
  false with everything and would make a step silently never due.
* **Quantities and prices** are Decimals converted from ``Decimal``, ``int``, ``str`` or
  ``float`` (by its shortest repr), finite and positive. A malformed string is refused
  naming the field rather than surfacing as a bare ``decimal.InvalidOperation``.
* **Offsets** (``offset_bps``) are finite, ``>= 0`` and below 10,000 bps (a passive price
  must stay positive). **Enums** (``side``, ``role``, ``point``, ``kind``) accept their
  members or their values. **Ids** are 1-24 printable characters without whitespace;
  a planted ``client_order_id`` follows the exchange's pattern (1-36 of ``A-Za-z0-9.:/_-``).
* **The scenario as a whole**: ``settle_s < duration_s``; every fault lies in
  ``[0, duration_s - settle_s]``; every step is due before ``duration_s`` (a later one
  would never run) and only :class:`Exit`, :class:`Resume` and :class:`Unfreeze` (the
  operator's own actions) run in the settle tail;
  ``expect.degrade_after`` lies inside the run; ``reaches`` names catalogue labels
  (:data:`scalper.chaos.sometimes.CATALOGUE`).
"""

import enum
import math
import re
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from scalper.chaos.sometimes import CATALOGUE
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import Role
from scalper.core.intents import to_decimal
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
    "Unfreeze",
    "VenueCancel",
]

#: Longest intent id a script may use (a readable label, not a payload).
_MAX_ID_CHARS = 24
#: Longest operator reason (the journal and the console show it whole).
_MAX_REASON_CHARS = 200
#: Binance's client order id pattern: a planted id the exchange would refuse tests nothing.
_CLIENT_ORDER_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
#: A passive price ``offset_bps`` away from mid must stay positive.
_MAX_OFFSET_BPS = 10_000.0

_E = TypeVar("_E", bound=enum.Enum)

# --------------------------------------------------------------------------- validators


def _number(field: str, value: object) -> float:
    """``value`` as a real number, or a CoreValueError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    return float(value)


def _check_time(field: str, value: object) -> None:
    number = _number(field, value)
    if not (math.isfinite(number) and number >= 0.0):
        raise CoreValueError(field, f"must be a finite time >= 0, got {value!r}")


def _time(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    _check_time(attribute.name, value)


def _optional_time(
    _inst: object, attribute: "attrs.Attribute[float | None]", value: object
) -> None:
    if value is not None:
        _check_time(attribute.name, value)


def _positive_duration(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    number = _number(attribute.name, value)
    if not (math.isfinite(number) and number > 0.0):
        raise CoreValueError(attribute.name, f"must be a finite duration > 0, got {value!r}")


def _check_offset(field: str, value: object) -> None:
    number = _number(field, value)
    if not (math.isfinite(number) and 0.0 <= number < _MAX_OFFSET_BPS):
        raise CoreValueError(
            field, f"must be a finite offset in [0, {_MAX_OFFSET_BPS:g}) bps, got {value!r}"
        )


def _offset(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    _check_offset(attribute.name, value)


def _optional_offset(
    _inst: object, attribute: "attrs.Attribute[float | None]", value: object
) -> None:
    if value is not None:
        _check_offset(attribute.name, value)


def _check_id(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise CoreValueError(field, f"must be a string, got {value!r}")
    if not 1 <= len(value) <= _MAX_ID_CHARS:
        raise CoreValueError(field, f"must be 1-{_MAX_ID_CHARS} characters, got {value!r}")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise CoreValueError(
            field, f"must be printable characters without whitespace, got {value!r}"
        )


def _name(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    _check_id(attribute.name, value)


def _optional_name(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    # "" means "not given" (PlantOrphan names exactly one of two identities).
    if value != "":
        _check_id(attribute.name, value)


def _client_order_id(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if not isinstance(value, str):
        raise CoreValueError(attribute.name, f"must be a string, got {value!r}")
    if value != "" and _CLIENT_ORDER_ID.fullmatch(value) is None:
        raise CoreValueError(
            attribute.name, f"must be 1-36 characters of A-Za-z0-9.:/_-, got {value!r}"
        )


def _reason(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CoreValueError(attribute.name, f"must be a non-empty string, got {value!r}")
    if len(value) > _MAX_REASON_CHARS:
        raise CoreValueError(
            attribute.name, f"must be at most {_MAX_REASON_CHARS} characters, got {len(value)}"
        )
    if not value.isprintable():
        # Journaled and shown on the console: no control characters.
        raise CoreValueError(attribute.name, f"must be printable, got {value!r}")


def _flag(_inst: object, attribute: "attrs.Attribute[bool]", value: object) -> None:
    if not isinstance(value, bool):
        raise CoreValueError(attribute.name, f"must be True or False, got {value!r}")


def _count(_inst: object, attribute: "attrs.Attribute[int]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CoreValueError(attribute.name, f"must be an int >= 0, got {value!r}")


def _positive_amount(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if value is not None and not (isinstance(value, Decimal) and value > 0):
        raise CoreValueError(attribute.name, f"must be positive, got {value}")


# --------------------------------------------------------------------------- converters


def _to_decimal(field: str, value: object) -> Decimal:
    # One conversion rule for every decimal a trading script holds: core's (floats by their
    # shortest repr; bools, NaN, infinities and malformed text refused, naming the field).
    return to_decimal(value, field)


def _quantity(value: object) -> Decimal:
    return _to_decimal("quantity", value)


def _optional_quantity(value: object) -> Decimal | None:
    # None: not given (Replace keeps the old intent's quantity).
    return None if value is None else _to_decimal("quantity", value)


def _price(value: object) -> Decimal:
    return _to_decimal("price", value)


def _to_enum(cls: type[_E], field: str, value: object) -> _E:
    """``value`` as a member of ``cls`` (a member or its value), or an error naming ``field``."""
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(str(m.value) for m in cls)
        raise CoreValueError(field, f"must be one of {known}; got {value!r}") from None


def _side(value: object) -> Side:
    return _to_enum(Side, "side", value)


def _role(value: object) -> Role:
    return _to_enum(Role, "role", value)


def _point(value: object) -> CrashPoint:
    return _to_enum(CrashPoint, "point", value)


def _crash_kind(value: object) -> CrashKind:
    return _to_enum(CrashKind, "kind", value)


# --------------------------------------------------------------------------- steps


@attrs.frozen
class Enter:
    """The strategy submits an entry intent (market, or a limit ``offset_bps`` from mid).

    A positive offset rests a buy below the market (a sell above it); ``None`` is a market
    order. Waits up to ``patience_s`` for the posture to allow entries.
    """

    at: float = attrs.field(validator=_time)
    intent_id: str = attrs.field(validator=_name)
    quantity: Decimal = attrs.field(
        default=Decimal("0.002"), converter=_quantity, validator=_positive_amount
    )
    side: Side = attrs.field(default=Side.BUY, converter=_side)
    offset_bps: float | None = attrs.field(default=None, validator=_optional_offset)
    patience_s: float = attrs.field(default=300.0, validator=_time)


@attrs.frozen
class Exit:
    """The strategy flattens the symbol with a reduce-only market exit (never gated, I1)."""

    at: float = attrs.field(validator=_time)
    intent_id: str = attrs.field(validator=_name)


@attrs.frozen
class Cancel:
    """The strategy cancels an intent's live orders."""

    at: float = attrs.field(validator=_time)
    intent_id: str = attrs.field(validator=_name)


@attrs.frozen
class Replace:
    """The strategy replaces an intent's resting order by a new limit ``offset_bps`` from mid.

    ``quantity`` ``None`` keeps the old intent's quantity. The new intent id must differ
    from the old one: a replace that reused it would be a duplicate of the order it ends.
    """

    at: float = attrs.field(validator=_time)
    intent_id: str = attrs.field(validator=_name)
    new_intent_id: str = attrs.field(validator=_name)
    offset_bps: float = attrs.field(default=20.0, validator=_offset)
    quantity: Decimal | None = attrs.field(
        default=None, converter=_optional_quantity, validator=_positive_amount
    )
    patience_s: float = attrs.field(default=300.0, validator=_time)

    def __attrs_post_init__(self) -> None:
        if self.new_intent_id == self.intent_id:
            raise CoreValueError(
                "new_intent_id", f"must differ from intent_id, got {self.new_intent_id!r}"
            )


@attrs.frozen
class Halt:
    """The operator halts entries (durable)."""

    at: float = attrs.field(validator=_time)
    reason: str = attrs.field(default="chaos operator halt", validator=_reason)


@attrs.frozen
class Resume:
    """The operator asks to resume (refused unless the last reconcile was clean)."""

    at: float = attrs.field(validator=_time)


@attrs.frozen
class Unfreeze:
    """The operator lifts the symbol's freeze (after removing the foreign order by hand).

    Refused while the last reconcile is not clean; the operator tries again every
    ``retry_s`` for up to ``patience_s`` (never past the run's end), as a person at the
    console would.
    """

    at: float = attrs.field(validator=_time)
    patience_s: float = attrs.field(default=120.0, validator=_time)
    retry_s: float = attrs.field(default=5.0, validator=_time)

    def __attrs_post_init__(self) -> None:
        if self.retry_s <= 0:
            raise CoreValueError("retry_s", f"must be > 0, got {self.retry_s!r}")


@attrs.frozen
class MovePrice:
    """The market jumps: the exchange's mark and book move to ``price``."""

    at: float = attrs.field(validator=_time)
    price: Decimal = attrs.field(converter=_price, validator=_positive_amount)


@attrs.frozen
class ArmCrash:
    """Arm a named crash point on the running incarnation (it fires when next reached).

    ``skip`` lets the point pass that many times before it fires.
    """

    at: float = attrs.field(validator=_time)
    point: CrashPoint = attrs.field(converter=_point)
    kind: CrashKind = attrs.field(default=CrashKind.PROCESS, converter=_crash_kind)
    skip: int = attrs.field(default=0, validator=_count)


@attrs.frozen
class Kill:
    """Kill the whole process now, wherever it is (what is committed survives, nothing else)."""

    at: float = attrs.field(validator=_time)


def _which(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if value not in ("stops", "entries", "foreign"):
        raise CoreValueError(
            attribute.name, f"must be one of stops, entries, foreign; got {value!r}"
        )


@attrs.frozen
class VenueCancel:
    """Someone cancels our orders at the exchange behind the system's back.

    ``which``: ``stops`` (our protective stops: the stop-vanished case), ``entries`` (our
    resting entries) or ``foreign`` (orders that are not ours: someone cleans up by hand).
    """

    at: float = attrs.field(validator=_time)
    which: str = attrs.field(default="stops", validator=_which)


@attrs.frozen
class PlantOrphan:
    """An order the journal never saw rests at the exchange (left by a lost process).

    Give either ``client_order_id`` (our prefix makes it look like ours: adopt or cancel;
    anything else is someone else's: freeze) or ``for_intent``: the id our Router will
    derive for that intent's first order of ``role``, as a zombie process that already
    sent it would have (for an entry, the Router's own send then meets -4116, duplicate
    client order id).
    """

    at: float = attrs.field(validator=_time)
    client_order_id: str = attrs.field(default="", validator=_client_order_id)
    for_intent: str = attrs.field(default="", validator=_optional_name)
    offset_bps: float = attrs.field(default=150.0, validator=_offset)
    quantity: Decimal = attrs.field(
        default=Decimal("0.002"), converter=_quantity, validator=_positive_amount
    )
    side: Side = attrs.field(default=Side.BUY, converter=_side)
    reduce_only: bool = attrs.field(default=False, validator=_flag)
    role: Role = attrs.field(default=Role.ENTRY, converter=_role)

    def __attrs_post_init__(self) -> None:
        if bool(self.client_order_id) == bool(self.for_intent):
            raise CoreValueError(
                "client_order_id",
                "give exactly one of client_order_id, for_intent; got "
                f"client_order_id={self.client_order_id!r}, for_intent={self.for_intent!r}",
            )


#: One scripted action.
Step = (
    Enter | Exit | Cancel | Replace | Halt | Resume | MovePrice | ArmCrash | Kill | VenueCancel
) | (PlantOrphan | Unfreeze)

_STEP_TYPES = (
    Enter,
    Exit,
    Cancel,
    Replace,
    Halt,
    Resume,
    MovePrice,
    ArmCrash,
    Kill,
    VenueCancel,
    PlantOrphan,
    Unfreeze,
)


@attrs.frozen
class Expectations:
    """What the posture must do: degrade under the faults, recover after them.

    Attributes:
        degrade: the posture leaves GREEN after ``degrade_after`` (the scenario's trouble).
        degrade_after: the instant the trouble starts (default: the first fault).
        recover: entries are allowed again, with no halt, by the end of the run.
        kill_switch: the kill switch must trip (a halt with source ``kill_switch``).
    """

    degrade: bool = attrs.field(default=True, validator=_flag)
    degrade_after: float | None = attrs.field(default=None, validator=_optional_time)
    recover: bool = attrs.field(default=True, validator=_flag)
    kill_switch: bool = attrs.field(default=False, validator=_flag)


def _scenario_name(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if (
        not isinstance(value, str)
        or not value
        or not all(c.isascii() and (c.isalnum() or c == "-") for c in value)
    ):
        raise CoreValueError(attribute.name, f"must be letters, digits and '-', got {value!r}")


def _one_line(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise CoreValueError(attribute.name, f"must be one non-empty printable line, got {value!r}")


def _text(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if not isinstance(value, str):
        raise CoreValueError(attribute.name, f"must be a string, got {value!r}")


def _proves(_inst: object, attribute: "attrs.Attribute[tuple[str, ...]]", value: object) -> None:
    if not isinstance(value, tuple) or not value:
        raise CoreValueError(attribute.name, f"must be a non-empty tuple, got {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or any(c.isspace() for c in item):
            raise CoreValueError(f"{attribute.name}[{i}]", f"must be a check name, got {item!r}")


def _steps(_inst: object, attribute: "attrs.Attribute[tuple[Step, ...]]", value: object) -> None:
    if not isinstance(value, tuple):
        raise CoreValueError(attribute.name, f"must be a tuple of steps, got {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, _STEP_TYPES):
            raise CoreValueError(f"{attribute.name}[{i}]", f"must be a plan step, got {item!r}")


def _faults(
    _inst: object, attribute: "attrs.Attribute[tuple[FaultSpec, ...]]", value: object
) -> None:
    if not isinstance(value, tuple):
        raise CoreValueError(attribute.name, f"must be a tuple of FaultSpec, got {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, FaultSpec):
            raise CoreValueError(f"{attribute.name}[{i}]", f"must be a FaultSpec, got {item!r}")


def _expectations(_inst: object, attribute: "attrs.Attribute[Expectations]", value: object) -> None:
    if not isinstance(value, Expectations):
        raise CoreValueError(attribute.name, f"must be an Expectations, got {value!r}")


def _labels(_inst: object, attribute: "attrs.Attribute[tuple[str, ...]]", value: object) -> None:
    if not isinstance(value, tuple):
        raise CoreValueError(attribute.name, f"must be a tuple of labels, got {value!r}")
    for i, item in enumerate(value):
        if item not in CATALOGUE:
            raise CoreValueError(
                f"{attribute.name}[{i}]", f"must be a 'sometimes' catalogue label, got {item!r}"
            )


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

    Raises:
        CoreValueError: naming the offending field (``steps[2].at``, ``faults[0].end``,
            ``expect.degrade_after``...) and its value; see the module docstring.
    """

    name: str = attrs.field(validator=_scenario_name)
    description: str = attrs.field(validator=_one_line)
    attacks: str = attrs.field(validator=_text)
    proves: tuple[str, ...] = attrs.field(validator=_proves)
    steps: tuple[Step, ...] = attrs.field(validator=_steps)
    faults: tuple[FaultSpec, ...] = attrs.field(default=(), validator=_faults)
    duration_s: float = attrs.field(default=1000.0, validator=_positive_duration)
    settle_s: float = attrs.field(default=280.0, validator=_positive_duration)
    expect: Expectations = attrs.field(factory=Expectations, validator=_expectations)
    reaches: tuple[str, ...] = attrs.field(default=(), validator=_labels)
    restart_after_s: float = attrs.field(default=3.0, validator=_time)

    def __attrs_post_init__(self) -> None:
        if self.settle_s >= self.duration_s:
            raise CoreValueError(
                "settle_s",
                f"must be shorter than duration_s {self.duration_s}, got {self.settle_s!r}",
            )
        quiet_from = self.duration_s - self.settle_s
        for i, spec in enumerate(self.faults):
            if spec.start < 0:
                raise CoreValueError(f"faults[{i}].start", f"must be >= 0, got {spec.start}")
            if spec.end > quiet_from:
                raise CoreValueError(
                    f"faults[{i}].end",
                    f"must end by {quiet_from} (duration_s - settle_s), got {spec.end}",
                )
        for i, step in enumerate(self.steps):
            if step.at >= self.duration_s:
                raise CoreValueError(
                    f"steps[{i}].at",
                    f"must be before duration_s {self.duration_s} (it would never run), "
                    f"got {step.at}",
                )
            if step.at >= quiet_from and not isinstance(step, Exit | Resume | Unfreeze):
                raise CoreValueError(
                    f"steps[{i}].at",
                    f"only Exit, Resume and Unfreeze may run in the settle tail (from "
                    f"{quiet_from}), "
                    f"got {type(step).__name__} at {step.at}",
                )
        after = self.expect.degrade_after
        if after is not None and after >= self.duration_s:
            raise CoreValueError(
                "expect.degrade_after",
                f"must be before duration_s {self.duration_s}, got {after}",
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
