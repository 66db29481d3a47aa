r"""The records the durable store reads and writes: journal entries, ledger rows, write items.

Theory of operation
-------------------

This module is the store's vocabulary and does no I/O. Every value is an immutable attrs
record validated at construction, so a malformed record is refused where it is built (with a
:class:`~scalper.core.errors_base.CoreValueError` naming the field), never half-way through a
commit that other callers share.

**Journal.** A caller appends a :class:`JournalRecord`: a ``snake_case`` type, the wall-clock
stamp, the intent and correlation ids it belongs to, and a payload that is JSON text the
caller made canonical. The store never interprets a payload, but it refuses text that is not
strict JSON: ``NaN``, ``Infinity``, numbers that overflow a double, duplicate object keys and
text that cannot be stored as UTF-8 are all rejected, because a journal that cannot be
replayed byte for byte (I5) is worse than a refused append.

The store turns a record into a :class:`JournalEntry` with a sequence number (1, 2, 3, ...
without gaps) and a link in a sha256 hash chain. :func:`chain_hash` is the one definition of
that link::

    hash(n) = sha256( "scalper-journal-v1\0"
                      || field(prev_hash) || field(seq) || field(wall_ms)
                      || field(type) || field(intent_id) || field(correlation_id)
                      || field(payload) )
    field(x) = len(utf8(x)) as 8 bytes big-endian || utf8(x)   (integers as decimal text)
    prev_hash(1) = "0" * 64                                    (GENESIS_HASH)

Length-prefixing every field makes the encoding unambiguous (no two different entries share
a byte string), so changing, deleting or reordering any entry breaks the chain at a seq
that can be named.

**Intent ledger.** One :class:`LedgerRow` per client order id (one per generation of one
intent): the write-ahead record of an order, stored *before* it is sent (I7), and updated as
evidence arrives. :class:`LedgerState` says which states are terminal; ``ABSENT`` (proven
never placed) is terminal for its row, and the next generation gets its own row.

**Write items.** A :class:`WriteItem` is one journal record plus the ledger operations that
must commit with it (:class:`UpsertLedger`, :class:`InsertFill`, :class:`SetCursor`). An
item is all-or-nothing. An item carrying a fill whose ``(symbol, trade_id)`` is already
stored is skipped whole and reported ``duplicate``: that is how every venue fill is journaled
exactly once (I10).
"""

import enum
import hashlib
import re
from typing import Any, Final

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import check_text_id
from scalper.core.strict_json import StrictJsonError, loads_strict

__all__ = [
    "GENESIS_HASH",
    "TERMINAL_STATES",
    "InsertFill",
    "JournalEntry",
    "JournalRecord",
    "LedgerOp",
    "LedgerRow",
    "LedgerState",
    "PurgeResult",
    "SetCursor",
    "UpsertLedger",
    "VerifyReport",
    "WriteItem",
    "WriteOutcome",
    "chain_hash",
    "check_json_text",
]

#: The ``prev_hash`` of the first journal entry.
GENESIS_HASH: Final = "0" * 64

_HASH_DOMAIN: Final = b"scalper-journal-v1\x00"
_TYPE_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_TYPE_LEN: Final = 64
_MAX_ID_LEN: Final = 256


# --------------------------------------------------------------------------- validation


def check_json_text(field: str, text: object) -> None:
    """Check that ``text`` is strict JSON the journal can store and replay byte for byte.

    Args:
        field: the field name reported in the error.
        text: the candidate JSON text.

    Raises:
        CoreValueError: if ``text`` is not a ``str``, cannot be encoded as UTF-8 (a lone
            surrogate), is not valid JSON, or contains ``NaN``/``Infinity``, a number that
            overflows a double, or a duplicate object key.
    """
    if not isinstance(text, str):
        raise CoreValueError(field, f"must be JSON text (str), got {type(text).__name__}")
    _check_utf8(field, text)
    try:
        loads_strict(text)
    except StrictJsonError as exc:
        raise CoreValueError(field, f"{exc}: {_excerpt(text)}") from None
    except RecursionError:
        raise CoreValueError(field, f"is nested too deeply to parse: {_excerpt(text)}") from None
    except ValueError as exc:  # json.JSONDecodeError, or an int with too many digits
        raise CoreValueError(field, f"is not valid JSON ({exc}): {_excerpt(text)}") from None


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _check_utf8(field: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise CoreValueError(
            field, f"contains U+{ord(bad):04X} at index {exc.start}, which UTF-8 cannot store"
        ) from None


def _check_text(field: str, value: object, *, allow_empty: bool, max_len: int) -> None:
    if not isinstance(value, str):
        raise CoreValueError(field, f"must be a str, got {type(value).__name__}")
    if value or not allow_empty:
        check_text_id(field, value, max_len=max_len)


def _check_int(field: str, value: object, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CoreValueError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise CoreValueError(field, f"must be >= {minimum}, got {value}")


def _v_id(*, allow_empty: bool) -> Any:
    def check(_inst: object, attribute: "attrs.Attribute[str]", value: Any) -> None:
        _check_text(attribute.name, value, allow_empty=allow_empty, max_len=_MAX_ID_LEN)

    return check


def _v_json(_inst: object, attribute: "attrs.Attribute[str]", value: Any) -> None:
    check_json_text(attribute.name, value)


def _v_nonneg(_inst: object, attribute: "attrs.Attribute[int]", value: Any) -> None:
    _check_int(attribute.name, value, minimum=0)


def _v_opt_nonneg(_inst: object, attribute: "attrs.Attribute[int | None]", value: Any) -> None:
    if value is not None:
        _check_int(attribute.name, value, minimum=0)


def _v_type(_inst: object, attribute: "attrs.Attribute[str]", value: Any) -> None:
    if not isinstance(value, str) or not _TYPE_RE.match(value) or len(value) > _MAX_TYPE_LEN:
        raise CoreValueError(
            attribute.name,
            f"must be snake_case ([a-z][a-z0-9_]*, at most {_MAX_TYPE_LEN} chars), got {value!r}",
        )


def _v_bool(_inst: object, attribute: "attrs.Attribute[bool]", value: Any) -> None:
    if not isinstance(value, bool):
        raise CoreValueError(attribute.name, f"must be a bool, got {value!r}")


def _v_str(_inst: object, attribute: "attrs.Attribute[str]", value: Any) -> None:
    if not isinstance(value, str):
        raise CoreValueError(attribute.name, f"must be a str, got {type(value).__name__}")
    _check_utf8(attribute.name, value)


def _v_opt_str(_inst: object, attribute: "attrs.Attribute[str | None]", value: Any) -> None:
    if value is not None:
        _v_str(_inst, attribute, value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the journal


def _field(h: "hashlib._Hash", value: str) -> None:
    # surrogateescape: text read back from a damaged file keeps its exact stored bytes, so
    # the recomputed hash is over what is on disk (and mismatches), never over a guess.
    data = value.encode("utf-8", "surrogateescape")
    h.update(len(data).to_bytes(8, "big"))
    h.update(data)


def chain_hash(
    prev_hash: str,
    seq: int,
    wall_ms: int,
    record_type: str,
    intent_id: str,
    correlation_id: str,
    payload: str,
) -> str:
    """The sha256 hex link of one journal entry (see the module docstring for the encoding).

    Args:
        prev_hash: the hash of the previous entry, :data:`GENESIS_HASH` for seq 1.
        seq: the entry's sequence number.
        wall_ms: its wall-clock stamp, epoch milliseconds.
        record_type: its type.
        intent_id: its intent id ("" if none).
        correlation_id: its correlation id ("" if none).
        payload: its JSON payload text.

    Returns:
        64 lowercase hex digits.
    """
    h = hashlib.sha256(_HASH_DOMAIN)
    _field(h, prev_hash)
    _field(h, str(seq))
    _field(h, str(wall_ms))
    _field(h, record_type)
    _field(h, intent_id)
    _field(h, correlation_id)
    _field(h, payload)
    return h.hexdigest()


@attrs.frozen
class JournalRecord:
    """One fact a caller appends to the journal.

    Args:
        type: what happened, ``snake_case`` (``order_sending``, ``fill_applied``, ...).
        wall_ms: when, in epoch milliseconds from the injected clock.
        payload: canonical JSON text made by the caller; stored and hashed verbatim.
        intent_id: the intent this fact belongs to, or "".
        correlation_id: the decision chain it belongs to, or "".

    Raises:
        CoreValueError: naming the first invalid field.
    """

    type: str = attrs.field(validator=_v_type)
    wall_ms: int = attrs.field(validator=_v_nonneg)
    payload: str = attrs.field(validator=_v_json, repr=lambda p: _excerpt(p, 60))
    intent_id: str = attrs.field(default="", validator=_v_id(allow_empty=True))
    correlation_id: str = attrs.field(default="", validator=_v_id(allow_empty=True))


@attrs.frozen
class JournalEntry:
    """One stored journal row: a record plus its sequence number and chain links.

    Attributes:
        seq: position in the journal, starting at 1, without gaps.
        wall_ms: the record's wall-clock stamp.
        type: the record's type.
        intent_id: the record's intent id.
        correlation_id: the record's correlation id.
        payload: the record's JSON text.
        prev_hash: the hash of entry ``seq - 1`` (:data:`GENESIS_HASH` for seq 1).
        hash: :func:`chain_hash` over ``prev_hash`` and this entry's fields.
    """

    seq: int
    wall_ms: int
    type: str
    intent_id: str
    correlation_id: str
    payload: str = attrs.field(repr=lambda p: _excerpt(p, 60))
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """The hash this entry's contents and ``prev_hash`` imply (equals ``hash`` if intact)."""
        return chain_hash(
            self.prev_hash,
            self.seq,
            self.wall_ms,
            self.type,
            self.intent_id,
            self.correlation_id,
            self.payload,
        )

    @property
    def record(self) -> JournalRecord:
        """The record this entry stores."""
        return JournalRecord(
            type=self.type,
            wall_ms=self.wall_ms,
            payload=self.payload,
            intent_id=self.intent_id,
            correlation_id=self.correlation_id,
        )


# --------------------------------------------------------------------------- the ledger


class LedgerState(enum.StrEnum):
    """Where one client order id stands in the write-ahead intent ledger."""

    #: Durably recorded before the send; whether the venue has it is not known yet.
    SENDING = "SENDING"
    #: The venue acknowledged it (evidence, not truth: I4).
    ACKED = "ACKED"
    #: The send's outcome is ambiguous; resolved by querying the client order id.
    UNKNOWN = "UNKNOWN"
    #: Proven never placed (not found twice after recvWindow); the next generation may go.
    ABSENT = "ABSENT"
    #: Definitively refused by the venue.
    REJECTED = "REJECTED"
    #: Open at the venue with some quantity filled.
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    #: Completely filled.
    FILLED = "FILLED"
    #: Canceled at the venue.
    CANCELED = "CANCELED"
    #: Expired at the venue (IOC/FOK remainder, GTX would-take, ...).
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """True once the order can no longer take effect at the venue."""
        return self in TERMINAL_STATES


#: States in which a row can never change again at the venue (and may be purged after TTL).
TERMINAL_STATES: Final = frozenset(
    {
        LedgerState.REJECTED,
        LedgerState.FILLED,
        LedgerState.CANCELED,
        LedgerState.EXPIRED,
        LedgerState.ABSENT,
    }
)


def _v_state(_inst: object, attribute: "attrs.Attribute[LedgerState]", value: Any) -> None:
    if not isinstance(value, LedgerState):
        raise CoreValueError(attribute.name, f"must be a LedgerState, got {value!r}")


def _to_state(value: object) -> object:
    if isinstance(value, str) and not isinstance(value, LedgerState):
        try:
            return LedgerState(value)
        except ValueError:
            known = ", ".join(s.value for s in LedgerState)
            raise CoreValueError("state", f"unknown ledger state {value!r} ({known})") from None
    return value


@attrs.frozen
class LedgerRow:
    """The write-ahead ledger's row for one client order id (one generation of one intent).

    Args:
        client_order_id: the id the venue knows the order by; the row's key.
        intent_id: the intent this order serves.
        generation: 0 for the intent's first order, +1 for each proven-absent predecessor.
        symbol: venue symbol.
        spec: canonical JSON of the order request, as it was (or will be) sent.
        state: where the order stands.
        risk_increasing: True for entries (I7 allows one live per intent), False for exits.
        created_wall_ms: when the row was first written.
        updated_wall_ms: when it last changed (purge ages terminal rows by this).
        recv_window_ms: the request's recvWindow (bounds when "not found" proves absence).
        sent_wall_ms: the request ``timestamp``, once sent.
        venue_order_id: the venue's id, once known.
        incarnation: the process incarnation that wrote this version of the row.
        reason: a short tag for the last change (``timeout``, ``not_found_x2``, ...).

    Raises:
        CoreValueError: naming the first invalid field.
    """

    client_order_id: str = attrs.field(validator=_v_id(allow_empty=False))
    intent_id: str = attrs.field(validator=_v_id(allow_empty=False))
    generation: int = attrs.field(validator=_v_nonneg)
    symbol: str = attrs.field(validator=_v_id(allow_empty=False))
    spec: str = attrs.field(validator=_v_json)
    state: LedgerState = attrs.field(converter=_to_state, validator=_v_state)
    risk_increasing: bool = attrs.field(validator=_v_bool)
    created_wall_ms: int = attrs.field(validator=_v_nonneg)
    updated_wall_ms: int = attrs.field(validator=_v_nonneg)
    recv_window_ms: int = attrs.field(validator=_v_nonneg)
    sent_wall_ms: int | None = attrs.field(default=None, validator=_v_opt_nonneg)
    venue_order_id: str | None = attrs.field(default=None, validator=_v_opt_str)
    incarnation: int = attrs.field(default=0, validator=_v_nonneg)
    reason: str = attrs.field(default="", validator=_v_str)


# --------------------------------------------------------------------------- write items


@attrs.frozen
class UpsertLedger:
    """Insert a ledger row, or update the row with the same client order id.

    The store refuses (as a conflict) an update that changes what identifies the order
    (intent, generation, symbol, spec, risk_increasing), and a *new* live risk-increasing
    row while another one of the same intent is still live (I7).
    """

    row: LedgerRow = attrs.field(validator=attrs.validators.instance_of(LedgerRow))


@attrs.frozen
class InsertFill:
    """Store one venue fill, keyed by ``(symbol, trade_id)`` (I10).

    Args:
        symbol: venue symbol.
        trade_id: the venue's trade id, unique per symbol.
        client_order_id: the order it filled (ours or foreign).
        payload: the fill's canonical JSON.
    """

    symbol: str = attrs.field(validator=_v_id(allow_empty=False))
    trade_id: str = attrs.field(validator=_v_id(allow_empty=False))
    client_order_id: str = attrs.field(validator=_v_id(allow_empty=True))
    payload: str = attrs.field(validator=_v_json)

    @property
    def key(self) -> tuple[str, str]:
        """The exactly-once key: ``(symbol, trade_id)``."""
        return (self.symbol, self.trade_id)


@attrs.frozen
class SetCursor:
    """Set a named resume point (``user_trades_from_id:BTCUSDT``, last stream event time)."""

    name: str = attrs.field(validator=_v_id(allow_empty=False))
    value: str = attrs.field(validator=_v_str)


#: One ledger operation committed together with a journal record.
LedgerOp = UpsertLedger | InsertFill | SetCursor

_OP_TYPES: Final = (UpsertLedger, InsertFill, SetCursor)


def _to_ops(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _v_record(_inst: object, _attribute: object, value: Any) -> None:
    if value is not None and not isinstance(value, JournalRecord):
        raise CoreValueError("record", f"must be a JournalRecord or None, got {value!r}")


def _v_ops(inst: "WriteItem", _attribute: object, value: Any) -> None:
    if not isinstance(value, tuple):
        raise CoreValueError("ops", f"must be a tuple of ledger ops, got {type(value).__name__}")
    seen: set[tuple[str, str]] = set()
    for i, op in enumerate(value):
        if not isinstance(op, _OP_TYPES):
            raise CoreValueError(f"ops[{i}]", f"must be a ledger op, got {op!r}")
        if isinstance(op, InsertFill):
            if op.key in seen:
                raise CoreValueError(f"ops[{i}]", f"fill {op.key} appears twice in one item")
            seen.add(op.key)
    if inst.record is None and not value:
        raise CoreValueError("ops", "an item needs a journal record or at least one op")


@attrs.frozen
class WriteItem:
    """One all-or-nothing unit of a group commit: a journal record and its ledger ops.

    Args:
        record: the journal record, or ``None`` for ops without a journal row (cursors).
        ops: ledger operations applied in order, in the same transaction.

    Raises:
        CoreValueError: if the item is empty, an op is not a ledger op, or the same fill
            key appears twice in it.
    """

    record: JournalRecord | None = attrs.field(validator=_v_record)
    ops: tuple[LedgerOp, ...] = attrs.field(default=(), converter=_to_ops, validator=_v_ops)

    @property
    def fill_keys(self) -> tuple[tuple[str, str], ...]:
        """The ``(symbol, trade_id)`` keys of the fills this item inserts."""
        return tuple(op.key for op in self.ops if isinstance(op, InsertFill))


@attrs.frozen
class WriteOutcome:
    """What happened to one item of a committed batch.

    Attributes:
        entry: the durable journal entry, or ``None`` (no record, duplicate or conflict).
        duplicate: the item carried an already-stored fill and was skipped whole (I10).
        conflict: non-empty if the item was refused because a ledger upsert contradicts the
            stored ledger (see :class:`UpsertLedger`); the item was skipped whole.
    """

    entry: JournalEntry | None
    duplicate: bool = False
    conflict: str = ""

    @property
    def applied(self) -> bool:
        """True if the item was written (neither a duplicate nor a conflict)."""
        return not self.duplicate and not self.conflict


# --------------------------------------------------------------------------- reports


@attrs.frozen
class PurgeResult:
    """What one :meth:`~scalper.store.store.Store.purge_terminal` call removed.

    Attributes:
        cutoff_wall_ms: terminal rows last updated before this were removed.
        counts: ``(state, rows removed)`` for every terminal state, in state order.
    """

    cutoff_wall_ms: int
    counts: tuple[tuple[LedgerState, int], ...]

    @property
    def total(self) -> int:
        """Rows removed in all states."""
        return sum(n for _, n in self.counts)

    def count(self, state: LedgerState) -> int:
        """Rows removed in ``state``."""
        return dict(self.counts).get(state, 0)

    def as_dict(self) -> dict[str, int]:
        """``{state: rows removed}``, for journaling the purge."""
        return {str(state): n for state, n in self.counts}


@attrs.frozen
class VerifyReport:
    """The result of re-walking the store's integrity check and hash chain.

    Attributes:
        ok: True if no problem was found.
        entries: journal entries walked.
        problems: one operator-readable line per problem, naming the seq where it applies.
    """

    ok: bool
    entries: int
    problems: tuple[str, ...]

    @classmethod
    def from_problems(cls, entries: int, problems: "tuple[str, ...] | list[str]") -> "VerifyReport":
        """A report that is ok exactly when ``problems`` is empty."""
        return cls(ok=not problems, entries=entries, problems=tuple(problems))
