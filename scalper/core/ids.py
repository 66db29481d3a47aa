r"""Intent ids, correlation ids and deterministic client order ids.

Theory of operation
-------------------

An *intent* is one thing a strategy wants done ("enter long 0.01 BTCUSDT"). Its
``intent_id`` is minted once, from the injected RNG or a counter, and is the idempotency key
of the whole system: at most one risk-increasing exchange order may exist per intent (I7).
A ``correlation_id`` ties together every event one decision caused (the intent, its retries,
its cancel, its replace), so an operator can follow one story through the journal.

The exchange only knows our *client order id*. It is derived, never random::

    client_order_id = f(prefix, intent_id, role, generation)
                    = "{prefix}-{role}-{digest16}-{generation}"

* ``prefix``: 1-8 characters ``[A-Za-z0-9]`` naming this installation (default ``sc``).
* ``role``: one letter, ENTRY ``E``, EXIT ``X``, take-profit ``T``, stop-loss ``S``.
* ``digest16``: the first 16 hex digits of sha256(intent_id): stable across processes.
* ``generation``: a decimal counter, 0 for the first order of the intent and role.

At most 8+1+1+1+16+1+4 = 32 characters, inside Binance's ``^[\.A-Z\:/a-z0-9_-]{1,36}$``.

Why deterministic: after a timeout the only safe question is "does the order with *this* id
exist?" (query by ``origClientOrderId``). A retry therefore always reuses the id of its
generation. Binance enforces uniqueness only among *open* orders, so a fresh id after a lost
ack could create a second live order, and even the same id can be accepted again once the
first order has filled; a blind resend is never safe. A new generation (a new id) is minted
only with a :class:`GenerationProof` that the previous generation's order is absent or
terminal, and :class:`ClientIdSequence` refuses to advance without one.

:func:`parse_client_order_id` maps an id back to (ours or foreign, role, intent digest,
generation), which orphan classification and restart rebuild depend on.
"""

import enum
import hashlib
import random
import re

import attrs

from scalper.core.errors_base import CoreValueError

__all__ = [
    "BINANCE_CLIENT_ID_RE",
    "DEFAULT_PREFIX",
    "MAX_GENERATION",
    "ClientIdSequence",
    "ClientOrderIdInfo",
    "GenerationProof",
    "IdFactory",
    "IdsConfig",
    "ProofKind",
    "Role",
    "client_order_id",
    "intent_digest",
    "parse_client_order_id",
]

BINANCE_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
DEFAULT_PREFIX = "sc"
MAX_GENERATION = 9999
_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
_DIGEST_LEN = 16
_OURS_RE = re.compile(
    r"^(?P<prefix>[A-Za-z0-9]{1,8})-(?P<role>[EXTS])-(?P<digest>[0-9a-f]{16})-(?P<gen>0|[1-9][0-9]{0,3})$"
)


class Role(enum.StrEnum):
    """What an order is for. The one-letter code is what goes into the client order id."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"
    TP = "TP"
    SL = "SL"

    @property
    def code(self) -> str:
        """The single letter used inside client order ids."""
        return _ROLE_CODES[self]


_ROLE_CODES = {Role.ENTRY: "E", Role.EXIT: "X", Role.TP: "T", Role.SL: "S"}
_ROLES_BY_CODE = {code: role for role, code in _ROLE_CODES.items()}


#: The longest intent or correlation id accepted (the journal's id columns hold 256).
MAX_INTENT_ID_CHARS = 128


def check_text_id(field: str, value: str, *, max_len: int = MAX_INTENT_ID_CHARS) -> None:
    """Refuse an identifier the journal could not store or a console could not show.

    Intent and correlation ids come from strategies and from the operator API; they are
    journaled, indexed and printed. An empty id, one longer than ``max_len``, one with a
    control character (U+0000-U+001F, U+007F) or one UTF-8 cannot encode (a lone surrogate)
    is refused here, before anything acts on it, rather than failing inside an actor.

    Raises:
        CoreValueError: naming ``field`` and what is wrong (with the offending position).
    """
    if not value:
        raise CoreValueError(field, "must not be empty")
    if len(value) > max_len:
        raise CoreValueError(field, f"must be at most {max_len} characters, got {len(value)}")
    for i, ch in enumerate(value):
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise CoreValueError(field, f"contains control character U+{ord(ch):04X} at {i}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CoreValueError(
            field,
            f"contains U+{ord(value[exc.start]):04X} at index {exc.start}, "
            "a lone surrogate UTF-8 cannot store",
        ) from None


def _check_prefix(prefix: str) -> None:
    if not _PREFIX_RE.match(prefix):
        raise CoreValueError("prefix", f"must be 1-8 characters [A-Za-z0-9], got {prefix!r}")


def intent_digest(intent_id: str) -> str:
    """Return the 16-hex-digit digest of ``intent_id`` embedded in client order ids.

    Raises:
        CoreValueError: if ``intent_id`` is empty.
    """
    if not intent_id:
        raise CoreValueError("intent_id", "must not be empty")
    return hashlib.sha256(intent_id.encode("utf-8")).hexdigest()[:_DIGEST_LEN]


def client_order_id(prefix: str, intent_id: str, role: Role, generation: int = 0) -> str:
    """Derive the client order id of one generation of one role of one intent.

    The same arguments always give the same id; every retry of a generation reuses it.

    Raises:
        CoreValueError: on a bad prefix, an empty intent id, or a generation outside
            ``0..MAX_GENERATION``.
    """
    _check_prefix(prefix)
    if not 0 <= generation <= MAX_GENERATION:
        raise CoreValueError("generation", f"must be in 0..{MAX_GENERATION}, got {generation}")
    return f"{prefix}-{role.code}-{intent_digest(intent_id)}-{generation}"


@attrs.frozen
class ClientOrderIdInfo:
    """What a client order id tells us. Foreign ids have ``ours=False`` and no other fields."""

    raw: str
    ours: bool
    role: Role | None = None
    intent_digest: str | None = None
    generation: int | None = None

    def belongs_to(self, intent_id: str) -> bool:
        """True if this id was derived from ``intent_id``."""
        return self.ours and self.intent_digest == intent_digest(intent_id)


def parse_client_order_id(coid: str, prefix: str = DEFAULT_PREFIX) -> ClientOrderIdInfo:
    """Map a client order id back to (ours or foreign, role, intent digest, generation).

    An id is *ours* only if it has our exact format and our ``prefix``; anything else
    (another bot's ids, Binance's generated ids, ``autoclose-...`` liquidations) is foreign.
    Never raises on the id itself: an unparseable id is simply foreign.
    """
    _check_prefix(prefix)
    m = _OURS_RE.match(coid)
    if m is None or m.group("prefix") != prefix:
        return ClientOrderIdInfo(raw=coid, ours=False)
    return ClientOrderIdInfo(
        raw=coid,
        ours=True,
        role=_ROLES_BY_CODE[m.group("role")],
        intent_digest=m.group("digest"),
        generation=int(m.group("gen")),
    )


def _valid_prefix(_inst: object, _attr: object, value: str) -> None:
    _check_prefix(value)


@attrs.frozen
class IdsConfig:
    """Id settings.

    Attributes:
        prefix: names this installation in every client order id. Two bots sharing one
            account must use different prefixes, or each will treat the other's orders as
            its own (orphan classification keys on the prefix).
    """

    prefix: str = attrs.field(default=DEFAULT_PREFIX, validator=_valid_prefix)


class ProofKind(enum.StrEnum):
    """Why the previous generation's order can no longer take effect."""

    #: Proven never to have reached the book (e.g. not found twice after recvWindow expired).
    ABSENT = "ABSENT"
    #: Reached a terminal state (canceled, expired, rejected) with its fills accounted for.
    TERMINAL = "TERMINAL"


@attrs.frozen
class GenerationProof:
    """Evidence that the order with ``client_order_id`` is absent or terminal.

    ``evidence`` is a short reason tag that the journal records (``not_found_x2``,
    ``status_canceled``, ...).
    """

    client_order_id: str
    kind: ProofKind
    evidence: str


@attrs.frozen
class ClientIdSequence:
    """The client order ids of one (intent, role): generation 0, then 1, ... each proven.

    Immutable: :meth:`advance` returns the next sequence and refuses to do so unless given a
    proof about *the current* id.
    """

    prefix: str
    intent_id: str
    role: Role
    generation: int = 0

    @property
    def current(self) -> str:
        """The client order id of the current generation (the one every retry reuses)."""
        return client_order_id(self.prefix, self.intent_id, self.role, self.generation)

    def advance(self, proof: GenerationProof) -> "ClientIdSequence":
        """Return the next generation, given proof that the current one is absent or terminal.

        Raises:
            CoreValueError: if the proof is about a different id (a stale or misrouted proof
                must never unlock a resend), or the generation counter would overflow.
        """
        if proof.client_order_id != self.current:
            raise CoreValueError(
                "proof",
                f"is about {proof.client_order_id!r}, not the current id {self.current!r}",
            )
        if self.generation >= MAX_GENERATION:
            raise CoreValueError("generation", f"cannot advance past {MAX_GENERATION}")
        return attrs.evolve(self, generation=self.generation + 1)


@attrs.define
class IdFactory:
    """Mints intent and correlation ids from an injected RNG (or a counter, if no RNG).

    With an RNG, ids are 64 random bits in hex, so independent processes do not collide;
    with ``rng=None`` they count up, which reads well in tests and examples. Either way the
    same seed (or start) gives the same ids: runs are replayable.
    """

    rng: random.Random | None = None
    counter: int = 0

    def _next(self, kind: str) -> str:
        self.counter += 1
        if self.rng is None:
            return f"{kind}-{self.counter:08d}"
        return f"{kind}-{self.rng.getrandbits(64):016x}"

    def new_intent_id(self) -> str:
        """A fresh intent id, ``i-...``."""
        return self._next("i")

    def new_correlation_id(self) -> str:
        """A fresh correlation id, ``c-...``."""
        return self._next("c")
