"""The operator's live console for ``scalper serve`` (rich).

Theory of operation
-------------------

The console shows what an operator needs to decide whether to intervene: the posture and
*why* (cause tags, unlock conditions), halts and frozen symbols, each position with its
envelope (stops and coverage, open entries and exits, worst case, time unprotected), the
open orders, the intents whose outcome is unknown, and the last journal events.

It is split in two so that the picture can be tested without a terminal:

* :func:`render_console` is a pure function from a
  :func:`~scalper.operator.views.status_document` and a list of :class:`RecentEvent` to a
  rich renderable. Same inputs, same picture.
* :func:`run_console` is the loop: it subscribes to the journal (events arrive in
  sequence order once durable), keeps the last ``max_events`` in an :class:`EventTail`
  (seeded from the journal's tail so the screen is not empty at start), re-reads the
  status document every ``refresh_s`` seconds and redraws a :class:`rich.live.Live`.
  The subscription is drained without waiting, so a burst of journal entries never blocks
  the redraw, and it is closed on exit (the journal then drops it). Live's own refresh
  thread is not used: the loop redraws on trio's clock.

The console only reads; every action goes through the API.
"""

import datetime as dt
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from scalper.core.errors_base import CoreValueError
from scalper.messages import Event, FillApplied, MessageError, OrderSending, converter, decode_event
from scalper.operator.target import OperatedSystem
from scalper.operator.views import status_document
from scalper.store.records import JournalEntry

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "EventTail",
    "RecentEvent",
    "recent_event",
    "render_console",
    "run_console",
]

#: Journal events the console keeps on screen.
DEFAULT_MAX_EVENTS: Final = 15

_POSTURE_STYLE: Final = {
    "GREEN": "bold green",
    "YELLOW": "bold yellow",
    "ORANGE": "bold dark_orange",
    "RED": "bold red",
}
_SUMMARY_CHARS: Final = 110
_SKIPPED_FIELDS: Final = frozenset({"correlation_id", "intent_id"})


@attrs.frozen
class RecentEvent:
    """One journal event as the console lists it.

    Attributes:
        seq: the journal sequence number.
        wall_ms: the journal's wall-clock stamp.
        type: the event's journal type (``order_sending``, ...).
        intent_id: the intent it concerns (empty if none).
        summary: a one-line description of its content.
    """

    seq: int
    wall_ms: int
    type: str
    intent_id: str
    summary: str


def _scalar_text(value: object) -> str | None:
    if isinstance(value, (str, int, float, bool)) and value != "":
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return ",".join(str(v) for v in value)
    return None


def _summarize(event: Event) -> str:
    match event:
        case FillApplied(fill=fill):
            text = (
                f"{fill.side.value} {fill.quantity} {fill.symbol} @ {fill.price} "
                f"trade {fill.trade_id} ({fill.client_order_id})"
            )
        case OrderSending(request=req):
            qty = "close-position" if req.quantity is None else str(req.quantity)
            price = "" if req.price is None else f" @ {req.price}"
            stop = "" if req.stop_price is None else f" stop {req.stop_price}"
            text = (
                f"{req.side.value} {req.order_type.value} {qty} {req.symbol}{price}{stop} "
                f"{event.client_order_id} gen {event.generation}"
            )
        case _:
            data = converter.unstructure(event)
            parts = []
            for key, value in data.items():
                shown = _scalar_text(value)
                if key not in _SKIPPED_FIELDS and shown is not None:
                    parts.append(f"{key}={shown}")
            text = " ".join(parts)
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


def recent_event(entry: JournalEntry, event: Event | None = None) -> RecentEvent:
    """The console's line for a journal entry (``event`` is decoded if not given).

    An entry whose payload does not decode is still listed, by type, with the error.
    """
    if event is None:
        try:
            event = decode_event(entry.type, entry.payload)
        except MessageError as exc:
            return RecentEvent(
                entry.seq, entry.wall_ms, entry.type, entry.intent_id, f"undecodable: {exc}"
            )
    return RecentEvent(entry.seq, entry.wall_ms, entry.type, entry.intent_id, _summarize(event))


class EventTail:
    """The last ``limit`` journal events, oldest first.

    Args:
        limit: how many to keep (at least 1).
    """

    def __init__(self, limit: int = DEFAULT_MAX_EVENTS) -> None:
        if limit < 1:
            raise CoreValueError("limit", f"must be at least 1, got {limit}")
        self._events: deque[RecentEvent] = deque(maxlen=limit)
        self._last_seq = 0

    def add(self, entry: JournalEntry, event: Event | None = None) -> None:
        """Add one entry (an entry at or before the newest one is ignored: no repeats)."""
        if entry.seq <= self._last_seq:
            return
        self._last_seq = entry.seq
        self._events.append(recent_event(entry, event))

    def drain(self, receive: trio.MemoryReceiveChannel[tuple[JournalEntry, Event]]) -> bool:
        """Take every entry waiting on a journal subscription without blocking.

        Returns:
            False once the journal closed the subscription (the system stopped).
        """
        while True:
            try:
                entry, event = receive.receive_nowait()
            except trio.WouldBlock:
                return True
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return False
            self.add(entry, event)

    def events(self) -> list[RecentEvent]:
        """The kept events, oldest first."""
        return list(self._events)


# --------------------------------------------------------------------------- rendering


def _clock(wall_ms: int) -> str:
    stamp = dt.datetime.fromtimestamp(wall_ms / 1000.0, tz=dt.UTC)
    return stamp.strftime("%H:%M:%S.") + f"{wall_ms % 1000:03d}"


def _posture_panel(doc: Mapping[str, Any]) -> Panel:
    posture = doc.get("posture", {})
    mode = str(posture.get("mode", "?"))
    style = _POSTURE_STYLE.get(mode, "bold")
    text = Text()
    text.append("Posture ", style="bold")
    text.append(mode, style=style)
    score = posture.get("score")
    level = posture.get("level")
    details = [f"level {level}"] if level is not None else []
    if score is not None:
        details.append(f"score {score:.3f}")
    if details:
        text.append(f"  ({', '.join(details)})")
    allowed = bool(posture.get("entries_allowed"))
    text.append("   entries ", style="bold")
    text.append("allowed" if allowed else "blocked", style="green" if allowed else "red")
    if not doc.get("running", True):
        text.append(f"\nSTOPPED: {doc.get('stop_reason') or 'stopped'}", style="bold red")
    halts: Mapping[str, str] = doc.get("halts", {})
    if halts:
        text.append("\nHALTED ", style="bold red")
        text.append("; ".join(f"{source}: {reason}" for source, reason in sorted(halts.items())))
    frozen: Mapping[str, str] = doc.get("frozen_symbols", {})
    if frozen:
        text.append("\nFrozen ", style="bold red")
        text.append("; ".join(f"{symbol}: {reason}" for symbol, reason in sorted(frozen.items())))
    causes = posture.get("causes") or []
    text.append("\nCauses ", style="bold")
    text.append(", ".join(causes) if causes else "none")
    for condition in posture.get("unlock") or []:
        text.append("\n  unlock ", style="dim")
        text.append(str(condition), style="green" if str(condition).endswith(": met") else "yellow")
    return Panel(text, title="scalper", border_style=style.replace("bold ", ""))


def _positions_table(doc: Mapping[str, Any]) -> RenderableType:
    positions = doc.get("positions") or []
    if not positions:
        return Text("No open positions or orders.", style="dim")
    table = Table(title="Positions", expand=True)
    for column in (
        "symbol",
        "qty",
        "entry",
        "coverage",
        "stops",
        "entries",
        "exits",
        "worst case",
        "unprotected",
    ):
        table.add_column(column)
    for p in positions:
        coverage = p.get("coverage", {})
        status = str(coverage.get("status", "?"))
        cov_style = "green" if status in ("covered", "over_covered", "flat") else "red"
        covered = coverage.get("covered_qty")
        unprotected = float(p.get("unprotected_s", 0.0))
        side = p.get("position_side", "BOTH")
        table.add_row(
            p["symbol"] if side == "BOTH" else f"{p['symbol']} {side}",
            str(p.get("quantity")),
            str(p.get("entry_price") or "-"),
            Text(status + (f" {covered}" if covered is not None else ""), style=cov_style),
            "\n".join(
                f"{s['client_order_id']} {s['order_type']} @{s['stop_price']} [{s['state']}]"
                for s in p.get("stops", [])
            )
            or "-",
            str(len(p.get("entry_orders", []))),
            str(len(p.get("exit_orders", []))),
            f"{p.get('worst_case_qty')}"
            + (f" ({p['worst_case_notional']})" if p.get("worst_case_notional") else ""),
            Text(f"{unprotected:.1f}s", style="bold red") if unprotected > 0 else Text("-"),
        )
    return table


def _orders_table(doc: Mapping[str, Any]) -> RenderableType:
    orders = doc.get("open_orders") or []
    if not orders:
        return Text("No open orders.", style="dim")
    table = Table(title="Open orders", expand=True)
    for column in (
        "client order id",
        "lane",
        "symbol",
        "side",
        "type",
        "qty",
        "filled",
        "price",
        "state",
        "age",
    ):
        table.add_column(column)
    for o in orders:
        price = o.get("price") or o.get("stop_price") or "-"
        state = str(o.get("state"))
        table.add_row(
            o["client_order_id"],
            o.get("lane", "?"),
            o.get("symbol", "?"),
            o.get("side", "?"),
            o.get("order_type", "?"),
            str(o.get("quantity") or "close"),
            str(o.get("filled_qty")),
            str(price),
            Text(state, style="bold red" if state in ("SENDING", "UNKNOWN") else ""),
            f"{float(o.get('age_s', 0.0)):.1f}s",
        )
    return table


def _unknown_table(doc: Mapping[str, Any]) -> RenderableType | None:
    unknown = doc.get("unknown_intents") or []
    if not unknown:
        return None
    table = Table(title="Unknown intents (outcome not settled)", expand=True, style="red")
    for column in ("intent", "symbol", "orders", "age"):
        table.add_column(column)
    for u in unknown:
        table.add_row(
            u["intent_id"],
            u.get("symbol", "?"),
            ", ".join(
                f"{c} [{s}]" for c, s in zip(u["client_order_ids"], u["states"], strict=False)
            ),
            f"{float(u.get('age_s', 0.0)):.1f}s",
        )
    return table


def _events_table(events: Sequence[RecentEvent]) -> RenderableType:
    if not events:
        return Text("No journal events yet.", style="dim")
    table = Table(title="Recent journal events", expand=True)
    table.add_column("seq", justify="right")
    table.add_column("time (UTC)")
    table.add_column("type")
    table.add_column("intent")
    table.add_column("detail", overflow="fold")
    for e in events:
        table.add_row(str(e.seq), _clock(e.wall_ms), e.type, e.intent_id or "-", e.summary)
    return table


def _footer(doc: Mapping[str, Any]) -> Text:
    parts = [
        f"journal {doc.get('journal_entries', 0)} entries",
        f"incarnation {doc.get('incarnation', '?')}",
    ]
    restarts: Mapping[str, int] = doc.get("restarts") or {}
    if any(restarts.values()):
        parts.append("restarts " + ", ".join(f"{k}={v}" for k, v in sorted(restarts.items()) if v))
    lag: Mapping[str, int] = doc.get("journal_lag") or {}
    if any(lag.values()):
        parts.append("lag " + ", ".join(f"{k}={v}" for k, v in sorted(lag.items()) if v))
    last = doc.get("last_reconcile")
    reconcile = (
        "no reconcile yet"
        if not last
        else f"last reconcile {'clean' if last.get('clean') else 'UNCLEAN'}: {last.get('summary')}"
    )
    text = Text(" · ".join(parts) + "\n")
    text.append(reconcile, style="green" if last and last.get("clean") else "yellow")
    return text


def render_console(
    document: Mapping[str, Any], recent_events: Sequence[RecentEvent]
) -> RenderableType:
    """The console picture of a status document and the recent journal events.

    Args:
        document: a :func:`~scalper.operator.views.status_document`.
        recent_events: the events to list, oldest first.

    Returns:
        A rich renderable (pure: the same inputs render the same picture).
    """
    parts: list[RenderableType] = [_posture_panel(document), _positions_table(document)]
    unknown = _unknown_table(document)
    if unknown is not None:
        parts.append(unknown)
    parts.extend([_orders_table(document), _events_table(recent_events), _footer(document)])
    return Group(*parts)


def _seed(system: OperatedSystem, tail: EventTail, count: int) -> None:
    last = system.journal.store.last_entry()
    if last is None:
        return
    for entry in system.journal.store.entries(from_seq=max(1, last.seq - count + 1)):
        tail.add(entry)


async def run_console(
    system: OperatedSystem,
    *,
    refresh_s: float = 1.0,
    console: Console | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> None:
    """Show the live console until cancelled or the system stops.

    Args:
        system: the running system.
        refresh_s: seconds between redraws (trio's clock).
        console: where to draw (default: a new rich Console on stdout).
        max_events: journal events kept on screen.

    Raises:
        CoreValueError: a non-positive ``refresh_s``.
    """
    if not (math.isfinite(refresh_s) and refresh_s > 0):
        raise CoreValueError("refresh_s", f"must be a positive number, got {refresh_s!r}")
    tail = EventTail(max_events)
    subscription = system.journal.subscribe("console")
    # Seeded after subscribing: an entry made durable in between is in both, and the
    # tail's sequence check drops the repeat.
    _seed(system, tail, max_events)

    def picture() -> RenderableType:
        return render_console(status_document(system), tail.events())

    try:
        with Live(
            picture(),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            while True:
                open_ = tail.drain(subscription.receive)
                live.update(picture(), refresh=True)
                if not open_ or system.stopped.is_set():
                    return
                await trio.sleep(refresh_s)
    finally:
        subscription.receive.close()
