"""Evidence health: how much each evidence source deserves to be believed right now.

Theory of operation
-------------------

Reconciliation is the authority (I4), but reconciliation is only as good as the evidence it
reconciles against. This module scores every evidence source and says, as a number in
``[0, 1]`` with reason tags, how far the rest of the system may lean on it. It decides
nothing about orders or positions; the belief book and the posture controller consume its
snapshots, and a falling confidence tightens entry clamps (I6) but never touches exits (I1).

Sources (:class:`SourceKind`):

* ``USER_STREAM``: the user-data WebSocket. It is silent while nothing trades, so the actor
  calls :meth:`SourceHealth.observe` on *every* valid frame, keepalive pongs included: a
  quiet stream that still answers pings is fresh, a stream that stopped answering is not.
* ``REST``: periodic account snapshots (open orders and positions), one observation per
  successful poll, one error per failed poll.
* ``FILLS``: the periodic trade-history backfill (``userTrades``) that catches fills the
  stream missed (I10).
* ``MARKET_DATA``: mark prices. Scored and reported, but by default weighted zero in the
  account confidence: a stale price feed says nothing about what the account holds (the
  pricing path clamps on it separately).

Per source, over a sliding window of ``window_s`` seconds (the practical coverage model of
seed 000, used because Binance's user stream has no sequence numbers):

* **freshness** ``freshness_s``: seconds since the last valid message (since the source was
  registered, if it never spoke). It scores 1 up to ``warn_after_s``, falls linearly to 0 at
  ``stale_after_s``, and the source is **stale** from there on.
* **coverage**: the window is cut into slots of ``expected_interval_s`` on a fixed grid;
  coverage is the fraction of expected slots in which at least one message arrived. Slots
  count rather than messages, so a burst of events cannot hide a silence. The slot that
  contains the registration instant and the slot still running count only once covered:
  nobody is blamed for an interval that has not had its chance yet.
* **gap events** (disconnects, ``listenKeyExpired``, inferred sequence gaps): each
  :meth:`SourceHealth.record_gap` darkens the slots it spans, because messages that arrived
  around a gap (keepalives on a socket whose key expired, say) are not evidence that no data
  was lost. Each gap still in the window also multiplies confidence by ``gap_decay``.
* **error rate**: errors / (errors + observations) in the window.

``confidence = freshness_score * coverage * (1 - error_rate) * gap_decay ** gaps``, and 0 for
a source that never spoke (nothing is known until something is heard). Every factor lies in
``[0, 1]`` and none of them can rise when an observation is removed or an error or gap is
added, so confidence is **monotone**: more errors, gaps or silence never raise it.

:class:`EvidenceHealth` holds one :class:`SourceHealth` per kind and combines them with a
**weighted minimum**: ``min_k(1 - w_k * (1 - c_k))``. A minimum, not a mean, because a mean
lets three healthy sources hide a dead one, and the dead one is what degrade-fast must react
to. Not a product, because three individually fine sources at 0.9 would read as 0.73, a
degradation nobody could act on. The weight says how much losing a source matters: REST is
the authority (1.0), the stream is the low-latency path that REST backs up with a lag (0.8),
the fill backfill only backs up the stream (0.5).

**Contradictions.** When two sources disagree about a symbol (the stream says filled, REST
says open), :func:`assess_contradiction` makes a :class:`Contradiction` whose severity is
``magnitude * (floor + (1 - floor) * min(confidence_a, confidence_b))``: a disagreement
between two fresh, healthy sources is as severe as it gets (belief is wrong somewhere),
while one against a stale source is mostly explained by staleness and weighs down to
``floor``. Severities feed :class:`ContradictionBurn`, an exponentially decaying
accumulator (half-life ``contradiction_half_life_s``): a burst of contradictions spikes it,
quiet time drains it, it never goes negative and never rises without an add. Burn is kept
apart from source confidence so the posture controller can weigh the two, without counting
one signal twice.

Everything here is deterministic: time comes in as ``now`` and must not run backwards.
"""

import enum
import math
from collections.abc import Iterable, Mapping

import attrs

from scalper.core.errors_base import CoreValueError

__all__ = [
    "Contradiction",
    "ContradictionBurn",
    "EvidenceConfig",
    "EvidenceHealth",
    "EvidenceSnapshot",
    "SourceConfig",
    "SourceHealth",
    "SourceHealthSnapshot",
    "SourceKind",
    "assess_contradiction",
    "combine_confidence",
]


class SourceKind(enum.StrEnum):
    """An evidence source."""

    USER_STREAM = "USER_STREAM"
    REST = "REST"
    FILLS = "FILLS"
    MARKET_DATA = "MARKET_DATA"


def _finite(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise CoreValueError(field, f"must be finite, got {value!r}")
    return float(value)


def _positive(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if _finite(attribute.name, value) <= 0:
        raise CoreValueError(attribute.name, f"must be positive, got {value!r}")


def _non_negative(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if _finite(attribute.name, value) < 0:
        raise CoreValueError(attribute.name, f"must be >= 0, got {value!r}")


def _unit(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not 0.0 <= _finite(attribute.name, value) <= 1.0:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


def _tag(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise CoreValueError(field, f"must be a non-empty string, got {value!r}")
    return value


@attrs.frozen
class SourceConfig:
    """Cadence and weight of one evidence source.

    Attributes:
        expected_interval_s: how often a healthy source speaks (the coverage slot length).
        warn_after_s: silence up to this long is fully fresh.
        stale_after_s: silence this long scores zero and marks the source stale.
        weight: how much the account confidence depends on this source, in ``[0, 1]``.
    """

    expected_interval_s: float = attrs.field(validator=_positive)
    warn_after_s: float = attrs.field(validator=_non_negative)
    stale_after_s: float = attrs.field(validator=_positive)
    weight: float = attrs.field(default=1.0, validator=_unit)

    def __attrs_post_init__(self) -> None:
        if self.stale_after_s <= self.warn_after_s:
            raise CoreValueError(
                "stale_after_s",
                f"must exceed warn_after_s ({self.warn_after_s}), got {self.stale_after_s}",
            )


@attrs.frozen
class EvidenceConfig:
    """Defaults for evidence scoring (seed defaults adapted; see the module docstring).

    The user stream is scored on the client's 30 s ping/pong cadence (Binance itself pings
    every 3 minutes, too slow to notice a dead socket); REST snapshots are polled every
    15 s (the seed's guardian poll); the trade backfill every 60 s; mark prices stream at 1 s.
    """

    user_stream: SourceConfig = SourceConfig(30.0, 60.0, 90.0, 0.8)
    rest: SourceConfig = SourceConfig(15.0, 45.0, 120.0, 1.0)
    fills: SourceConfig = SourceConfig(60.0, 120.0, 300.0, 0.5)
    market_data: SourceConfig = SourceConfig(1.0, 5.0, 15.0, 0.0)
    #: Sliding window for coverage, error rate and gap counting.
    window_s: float = attrs.field(default=300.0, validator=_positive)
    #: Confidence multiplier per gap event still inside the window.
    gap_decay: float = attrs.field(default=0.75, validator=_unit)
    #: Coverage below this adds the ``coverage_low`` reason tag.
    min_coverage: float = attrs.field(default=0.8, validator=_unit)
    #: A weighted source whose confidence is below this is reported as degraded.
    degraded_below: float = attrs.field(default=0.7, validator=_unit)
    #: Lowest severity factor of a contradiction against a fully untrusted source.
    contradiction_floor: float = attrs.field(default=0.25, validator=_unit)
    #: Half-life of the contradiction burn accumulator.
    contradiction_half_life_s: float = attrs.field(default=120.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        for kind in SourceKind:
            interval = self.source(kind).expected_interval_s
            if interval > self.window_s:
                raise CoreValueError(
                    "window_s",
                    f"must cover at least one {kind} interval ({interval}), got {self.window_s}",
                )

    def source(self, kind: SourceKind) -> SourceConfig:
        """The configuration of one source kind."""
        return {
            SourceKind.USER_STREAM: self.user_stream,
            SourceKind.REST: self.rest,
            SourceKind.FILLS: self.fills,
            SourceKind.MARKET_DATA: self.market_data,
        }[kind]


@attrs.frozen
class SourceHealthSnapshot:
    """The health of one source at one instant, with the tags that explain it."""

    kind: SourceKind
    at: float
    freshness_s: float
    coverage: float
    error_rate: float
    error_count: int
    gap_count: int
    observations: int
    confidence: float
    stale: bool
    reasons: tuple[str, ...]


@attrs.frozen
class _Gap:
    slot: int
    seq: int
    duration_s: float
    reason: str


@attrs.define
class SourceHealth:
    """Freshness, coverage, gaps and errors of one evidence source.

    Mutable and cheap: the evidence actor feeds it messages and asks for snapshots. Memory is
    bounded by the window (a few counters per slot). ``now`` must never decrease.
    """

    kind: SourceKind
    config: SourceConfig
    window_s: float
    started_at: float
    gap_decay: float = 0.75
    min_coverage: float = 0.8
    _latest: float = attrs.field(init=False, default=0.0)
    _seq: int = attrs.field(init=False, default=0)
    _last_obs_at: float | None = attrs.field(init=False, default=None)
    # slot -> (message count, sequence number of the latest message in the slot)
    _obs: dict[int, tuple[int, int]] = attrs.field(init=False, factory=dict)
    # slot -> sequence number of the latest gap that darkened it
    _dark: dict[int, int] = attrs.field(init=False, factory=dict)
    # slot -> reason -> count
    _errors: dict[int, dict[str, int]] = attrs.field(init=False, factory=dict)
    _gaps: list[_Gap] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self.started_at = _finite("started_at", self.started_at)
        self.window_s = _finite("window_s", self.window_s)
        if self.window_s < self.config.expected_interval_s:
            raise CoreValueError("window_s", "must cover at least one expected interval")
        if not 0.0 <= self.gap_decay <= 1.0:
            raise CoreValueError("gap_decay", f"must be in [0, 1], got {self.gap_decay!r}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise CoreValueError("min_coverage", f"must be in [0, 1], got {self.min_coverage!r}")
        self._latest = self.started_at

    # -- feeding ---------------------------------------------------------------------------

    def _advance(self, now: float) -> float:
        now = _finite("now", now)
        if now < self._latest:
            raise CoreValueError("now", f"went backwards: {now} < {self._latest}")
        self._latest = now
        self._seq += 1
        self._prune(now)
        return now

    def _slot(self, t: float) -> int:
        return math.floor(t / self.config.expected_interval_s)

    def _slots_in_window(self) -> int:
        return max(1, math.ceil(self.window_s / self.config.expected_interval_s))

    def _oldest_slot(self, now: float) -> int:
        return self._slot(now) - self._slots_in_window() + 1

    def _prune(self, now: float) -> None:
        oldest = self._oldest_slot(now)
        for table in (self._obs, self._dark, self._errors):
            for slot in [s for s in table if s < oldest]:
                del table[slot]
        self._gaps = [g for g in self._gaps if g.slot >= oldest]

    def observe(self, now: float) -> None:
        """Record one valid message (data, snapshot or keepalive) at ``now``."""
        now = self._advance(now)
        slot = self._slot(now)
        count, _ = self._obs.get(slot, (0, 0))
        self._obs[slot] = (count + 1, self._seq)
        self._last_obs_at = now

    def record_error(self, now: float, reason: str) -> None:
        """Record one failed request or unparseable message at ``now`` (``reason`` is a tag)."""
        _tag("reason", reason)
        now = self._advance(now)
        per_reason = self._errors.setdefault(self._slot(now), {})
        per_reason[reason] = per_reason.get(reason, 0) + 1

    def record_gap(self, now: float, duration_s: float, reason: str) -> None:
        """Record that the source delivered nothing trustworthy for ``duration_s`` up to ``now``.

        Call it when the gap is *detected* (on reconnect, on ``listenKeyExpired``): every slot
        the gap touches loses its coverage, including messages that arrived during it, until a
        new message arrives after this call.
        """
        _tag("reason", reason)
        duration_s = _finite("duration_s", duration_s)
        if duration_s < 0:
            raise CoreValueError("duration_s", f"must be >= 0, got {duration_s}")
        now = self._advance(now)
        first = max(self._slot(now - duration_s), self._oldest_slot(now))
        for slot in range(first, self._slot(now) + 1):
            self._dark[slot] = self._seq
        self._gaps.append(_Gap(self._slot(now), self._seq, duration_s, reason))

    # -- reading ---------------------------------------------------------------------------

    def _covered(self, slot: int) -> bool:
        count, seq = self._obs.get(slot, (0, 0))
        return count > 0 and seq > self._dark.get(slot, -1)

    def _coverage(self, now: float) -> float:
        current = self._slot(now)
        first = max(self._oldest_slot(now), self._slot(self.started_at))
        expected = covered = 0
        for slot in range(first, current + 1):
            is_covered = self._covered(slot)
            # The registration slot and the running slot are partial: they count once covered.
            partial = slot == current or slot == self._slot(self.started_at)
            if partial and not is_covered:
                continue
            expected += 1
            covered += int(is_covered)
        return 1.0 if expected == 0 else covered / expected

    def _freshness_score(self, age: float) -> float:
        cfg = self.config
        if age <= cfg.warn_after_s:
            return 1.0
        if age >= cfg.stale_after_s:
            return 0.0
        return 1.0 - (age - cfg.warn_after_s) / (cfg.stale_after_s - cfg.warn_after_s)

    def snapshot(self, now: float) -> SourceHealthSnapshot:
        """Score the source at ``now`` (which must not precede anything already recorded)."""
        now = _finite("now", now)
        if now < self._latest:
            raise CoreValueError("now", f"went backwards: {now} < {self._latest}")
        oldest = self._oldest_slot(now)
        observations = sum(c for s, (c, _) in self._obs.items() if s >= oldest)
        error_reasons: dict[str, int] = {}
        for slot, per_reason in self._errors.items():
            if slot >= oldest:
                for reason, n in per_reason.items():
                    error_reasons[reason] = error_reasons.get(reason, 0) + n
        errors = sum(error_reasons.values())
        gaps = [g for g in self._gaps if g.slot >= oldest]
        error_rate = errors / (errors + observations) if errors else 0.0
        coverage = self._coverage(now)
        never = self._last_obs_at is None
        freshness = now - (self.started_at if self._last_obs_at is None else self._last_obs_at)
        fresh_score = self._freshness_score(freshness)
        if never:
            confidence = 0.0
        else:
            decay = math.pow(self.gap_decay, len(gaps))
            confidence = fresh_score * coverage * (1.0 - error_rate) * decay
        confidence = min(1.0, max(0.0, confidence))
        stale = never or fresh_score <= 0.0
        reasons: list[str] = []
        if never:
            reasons.append("never_observed")
        if stale:
            reasons.append("stale")
        elif freshness > self.config.warn_after_s:
            reasons.append("freshness_degraded")
        if coverage < self.min_coverage:
            reasons.append("coverage_low")
        if errors:
            reasons.append("errors")
        if gaps:
            reasons.append("gaps")
        reasons.extend(f"error:{r}" for r in sorted(error_reasons))
        reasons.extend(f"gap:{r}" for r in sorted({g.reason for g in gaps}))
        return SourceHealthSnapshot(
            kind=self.kind,
            at=now,
            freshness_s=freshness,
            coverage=coverage,
            error_rate=error_rate,
            error_count=errors,
            gap_count=len(gaps),
            observations=observations,
            confidence=confidence,
            stale=stale,
            reasons=tuple(reasons),
        )


def _non_empty(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    _tag(attribute.name, value)


@attrs.frozen
class Contradiction:
    """Two sources disagree about one symbol.

    ``kind`` is a short tag (``position_mismatch``, ``order_status``, ...); ``severity`` in
    ``[0, 1]`` already accounts for how much each source deserved to be believed.
    """

    symbol: str = attrs.field(validator=_non_empty)
    kind: str = attrs.field(validator=_non_empty)
    source_a: SourceKind
    source_b: SourceKind
    severity: float = attrs.field(validator=_unit)
    reasons: tuple[str, ...] = ()


def assess_contradiction(
    symbol: str,
    kind: str,
    a: SourceHealthSnapshot,
    b: SourceHealthSnapshot,
    *,
    floor: float = 0.25,
    magnitude: float = 1.0,
) -> Contradiction:
    """Grade a disagreement between the sources of ``a`` and ``b``.

    Severity is ``magnitude * (floor + (1 - floor) * min(a.confidence, b.confidence))``:
    maximal between two fully trusted sources, down to ``floor * magnitude`` when either side
    is untrusted (a stale source disagreeing is expected; two fresh ones disagreeing means the
    belief is wrong). Monotone: a less trusted side never makes it more severe.

    Args:
        symbol: the symbol the sources disagree about.
        kind: a tag naming what they disagree about.
        a: health of the first source when the disagreement was seen.
        b: health of the second source.
        floor: severity factor left when a side has zero confidence, in ``[0, 1]``.
        magnitude: how large the disagreement is, in ``[0, 1]`` (1 = total).

    Raises:
        CoreValueError: on an empty symbol or kind, or floor/magnitude outside ``[0, 1]``.
    """
    for name, value in (("floor", floor), ("magnitude", magnitude)):
        if not 0.0 <= _finite(name, value) <= 1.0:
            raise CoreValueError(name, f"must be in [0, 1], got {value!r}")
    trust = min(a.confidence, b.confidence)
    severity = min(1.0, max(0.0, magnitude * (floor + (1.0 - floor) * trust)))
    reasons = [f"stale:{s.kind}" for s in (a, b) if s.stale]
    if not reasons:
        reasons.append("both_fresh")
    return Contradiction(
        symbol=symbol,
        kind=kind,
        source_a=a.kind,
        source_b=b.kind,
        severity=severity,
        reasons=tuple(reasons),
    )


@attrs.define
class ContradictionBurn:
    """Exponentially decaying sum of contradiction severities.

    ``value(now) = sum(severity_i * 0.5 ** ((now - t_i) / half_life_s))``, kept as one
    running number. Never negative; without adds it only decays.
    """

    half_life_s: float = 120.0
    _value: float = attrs.field(init=False, default=0.0)
    _at: float | None = attrs.field(init=False, default=None)
    count: int = attrs.field(init=False, default=0)
    last_added_at: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if _finite("half_life_s", self.half_life_s) <= 0:
            raise CoreValueError("half_life_s", f"must be positive, got {self.half_life_s!r}")

    def _decayed(self, now: float) -> float:
        now = _finite("now", now)
        if self._at is None:
            return 0.0
        if now < self._at:
            raise CoreValueError("now", f"went backwards: {now} < {self._at}")
        return self._value * math.pow(0.5, (now - self._at) / self.half_life_s)

    def add(self, severity: float, now: float) -> float:
        """Add one contradiction of ``severity`` (>= 0) at ``now``; return the new value."""
        severity = _finite("severity", severity)
        if severity < 0:
            raise CoreValueError("severity", f"must be >= 0, got {severity}")
        self._value = self._decayed(now) + severity
        self._at = float(now)
        self.count += 1
        self.last_added_at = float(now)
        return self._value

    def value(self, now: float) -> float:
        """The decayed value at ``now`` (not before the last add)."""
        return self._decayed(now)


@attrs.frozen
class EvidenceSnapshot:
    """All sources at one instant, the combined account confidence and the burn."""

    at: float
    sources: tuple[SourceHealthSnapshot, ...]
    confidence: float
    weakest: SourceKind | None
    contradiction_burn: float
    contradiction_count: int
    reasons: tuple[str, ...]

    def source(self, kind: SourceKind) -> SourceHealthSnapshot:
        """The snapshot of one source."""
        for s in self.sources:
            if s.kind is kind:
                return s
        raise CoreValueError("kind", f"no source {kind}")


def combine_confidence(
    snapshots: Iterable[SourceHealthSnapshot], weights: Mapping[SourceKind, float]
) -> tuple[float, SourceKind | None]:
    """Weighted minimum ``min_k(1 - w_k * (1 - c_k))`` and the source that set it."""
    best = 1.0
    weakest: SourceKind | None = None
    for snap in snapshots:
        effective = 1.0 - weights.get(snap.kind, 0.0) * (1.0 - snap.confidence)
        if effective < best:
            best, weakest = effective, snap.kind
    return min(1.0, max(0.0, best)), weakest


@attrs.define
class EvidenceHealth:
    """Health of every evidence source of one account, plus the contradiction burn."""

    started_at: float
    config: EvidenceConfig = attrs.field(factory=EvidenceConfig)
    sources: dict[SourceKind, SourceHealth] = attrs.field(init=False, factory=dict)
    burn: ContradictionBurn = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        cfg = self.config
        for kind in SourceKind:
            self.sources[kind] = SourceHealth(
                kind=kind,
                config=cfg.source(kind),
                window_s=cfg.window_s,
                started_at=self.started_at,
                gap_decay=cfg.gap_decay,
                min_coverage=cfg.min_coverage,
            )
        self.burn = ContradictionBurn(half_life_s=cfg.contradiction_half_life_s)

    def observe(self, kind: SourceKind, now: float) -> None:
        """A valid message from ``kind`` arrived."""
        self.sources[kind].observe(now)

    def record_error(self, kind: SourceKind, now: float, reason: str) -> None:
        """A request to, or a message from, ``kind`` failed."""
        self.sources[kind].record_error(now, reason)

    def record_gap(self, kind: SourceKind, now: float, duration_s: float, reason: str) -> None:
        """``kind`` delivered nothing trustworthy for ``duration_s`` up to ``now``."""
        self.sources[kind].record_gap(now, duration_s, reason)

    def record_contradiction(
        self,
        symbol: str,
        kind: str,
        source_a: SourceKind,
        source_b: SourceKind,
        now: float,
        *,
        magnitude: float = 1.0,
    ) -> Contradiction:
        """Grade a disagreement using the sources' current health, and add it to the burn."""
        found = assess_contradiction(
            symbol,
            kind,
            self.sources[source_a].snapshot(now),
            self.sources[source_b].snapshot(now),
            floor=self.config.contradiction_floor,
            magnitude=magnitude,
        )
        self.burn.add(found.severity, now)
        return found

    def snapshot(self, now: float) -> EvidenceSnapshot:
        """Score all sources and combine them (see the module docstring for the rules)."""
        snaps = tuple(self.sources[kind].snapshot(now) for kind in SourceKind)
        weights = {kind: self.config.source(kind).weight for kind in SourceKind}
        confidence, weakest = combine_confidence(snaps, weights)
        burn = self.burn.value(now)
        reasons = [
            f"source_degraded:{s.kind}"
            for s in snaps
            if weights[s.kind] > 0 and (s.stale or s.confidence < self.config.degraded_below)
        ]
        if burn > 0:
            reasons.append("contradiction_burn")
        return EvidenceSnapshot(
            at=now,
            sources=snaps,
            confidence=confidence,
            weakest=weakest,
            contradiction_burn=burn,
            contradiction_count=self.burn.count,
            reasons=tuple(reasons),
        )
