"""The Binance USD-M user-data stream: listen key, WebSocket, reconnects and gap evidence.

Theory of operation
-------------------

:func:`open_user_stream` is an async context manager that yields an async iterator of
:data:`~scalper.venues.base.StreamEvent`. Entering it blocks until the first connection is
up (a consumer that takes its REST snapshot *after* entering misses nothing in between);
the first event is always ``StreamConnected(reconnect=False)``.

One *session* is: ``POST /fapi/v1/listenKey`` (idempotent: an active key is returned and
extended), connect ``<ws_url>/<listenKey>``, then three tasks in a nursery owned by the
session until one of them ends it:

* the **reader** parses every frame with
  :func:`~scalper.venues.binance.events.parse_user_message` and converts it with
  :func:`stream_event_from`; it ends the session on a close (``disconnected``) or a
  ``listenKeyExpired`` event (``listen_key_expired``);
* the **keepalive** sends ``PUT /fapi/v1/listenKey`` every ``keepalive_interval_s``; -1125
  ends the session (``listen_key_invalid``), other retryable failures are retried after
  ``keepalive_retry_s`` (the key lives 60 minutes, so there is time), a FATAL one fails the
  stream;
* the **pinger** sends a ping every ``ws_ping_interval_s``; no pong within
  ``ws_ping_timeout_s`` ends the session (``ping_timeout``): a silently dead TCP
  connection is found within a bounded time.

When a session ends the stream emits ``StreamDisconnected(at, since, reason)`` at once (the
consumer knows it is blind while the reconnect runs; once per outage, not per failed
attempt), then reconnects (immediately if the connection had been stable for
``stable_connection_s``, otherwise with exponential backoff), and once connected again it
emits ``StreamGap(started_at, ended_at, reason)`` followed by
``StreamConnected(reconnect=True)``. ``started_at`` is the last instant the stream had
evidence of being whole: the last frame or pong for transport failures, the last frame or
successful keepalive for listen-key failures. The gap is *evidence*, not an error: the
EvidenceCollector answers it with a REST snapshot and a trade backfill (I4, I10).

A frame that names a known event but does not parse is surfaced as an
:class:`~scalper.venues.base.UnknownStreamEvent` (``event_type="MALFORMED"``) followed by a
zero-length ``StreamGap`` (``malformed_event``), because it may have carried a fill.
Known events the base vocabulary has no word for (``TRADE_LITE``, ``MARGIN_CALL``,
``ACCOUNT_CONFIG_UPDATE``) and unknown ones become ``UnknownStreamEvent`` with a redacted
excerpt of the frame: surfaced, never a crash, never silently dropped.

Failure and structured concurrency:

* Listen-key and connection failures that are RETRYABLE or AMBIGUOUS (the key request is
  idempotent) are retried with bounded backoff; after ``reconnect_max_attempts``
  consecutive failures the stream raises a RETRYABLE
  :class:`~scalper.venues.base.VenueError`. A FATAL answer (say -2015, API key rejected)
  raises at once. There is no hidden infinite loop: giving up is the supervisor's signal.
* **No ExceptionGroup leaks out.** The context manager collapses its nursery's group at the
  boundary: the consumer's own exception if it raised one (internal failures are attached
  as notes), else the single internal failure (a ``VenueError``). A pure cancellation is
  re-raised untouched so trio's cancel scopes absorb it.
* Nothing secret is rendered: the listen key is only in the URL, and every error text goes
  through the caller's ``scrub`` function.
* The default connector, :func:`connect_websocket`, owns its TCP stream and always closes it
  (trio-websocket's own ``open_websocket_url`` leaks the client socket when the server
  starts the close, which is what Binance's 24-hour disconnect does).
"""

import contextlib
import enum
import functools
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, NoReturn, Protocol

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionTimeout,
    HandshakeError,
    wrap_client_stream,
)

from scalper.core.errors import ErrorClass, Operation
from scalper.core.model import Balance
from scalper.venues.base import (
    AccountUpdate,
    OrderUpdate,
    StreamConnected,
    StreamDisconnected,
    StreamEvent,
    StreamGap,
    UnknownStreamEvent,
    VenueError,
)
from scalper.venues.binance import events as bev
from scalper.venues.binance.config import BinanceConfig
from scalper.venues.binance.parse import MalformedMessage, excerpt
from scalper.venues.binance.wire import WireRequestError, user_stream_url

__all__ = [
    "MALFORMED_EVENT_TYPE",
    "GapReason",
    "ListenKeyApi",
    "WsConnect",
    "WsConnection",
    "connect_websocket",
    "open_user_stream",
    "reconnect_delay_s",
    "stream_event_from",
]

#: ``UnknownStreamEvent.event_type`` of a frame that did not parse.
MALFORMED_EVENT_TYPE: Final = "MALFORMED"
#: Longest excerpt of a raw frame kept in an UnknownStreamEvent.
_RAW_EXCERPT_CHARS: Final = 2000
#: Failures after which the stream keeps trying (anything else is raised at once).
_RETRY_CLASSES: Final = frozenset({ErrorClass.RETRYABLE, ErrorClass.AMBIGUOUS})
_LISTEN_KEY_MISSING_CODE: Final = -1125
#: Cap on the doubling exponent (the delay is capped anyway; this keeps the float finite).
_MAX_DOUBLINGS: Final = 30


class GapReason(enum.StrEnum):
    """Why a :class:`~scalper.venues.base.StreamGap` was emitted."""

    DISCONNECTED = "disconnected"
    PING_TIMEOUT = "ping_timeout"
    LISTEN_KEY_EXPIRED = "listen_key_expired"
    LISTEN_KEY_INVALID = "listen_key_invalid"
    MALFORMED_EVENT = "malformed_event"


class ListenKeyApi(Protocol):
    """The REST calls the stream needs (implemented by ``BinanceVenue``)."""

    async def create_listen_key(self) -> str:
        """``POST /fapi/v1/listenKey``: the account's active key (created or extended)."""
        ...

    async def keepalive_listen_key(self) -> None:
        """``PUT /fapi/v1/listenKey``; raises a VenueError with code -1125 if it is gone."""
        ...

    async def close_listen_key(self) -> None:
        """``DELETE /fapi/v1/listenKey``."""
        ...


class WsConnection(Protocol):
    """The part of ``trio_websocket.WebSocketConnection`` the stream uses."""

    async def get_message(self) -> str | bytes:
        """The next message; raises ``ConnectionClosed`` once the connection is closed."""
        ...

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong."""
        ...


#: Opens a WebSocket connection to a URL (``trio_websocket.open_websocket_url`` shape).
WsConnect = Callable[[str], AbstractAsyncContextManager[WsConnection]]


def reconnect_delay_s(failures: int, initial_s: float, maximum_s: float) -> float:
    """Backoff before the next connection attempt after ``failures`` consecutive failures.

    No wait after a stable connection ended (``failures == 0``): the gap should be short.
    Then ``initial_s``, doubling per failure, capped at ``maximum_s``.
    """
    if failures <= 0:
        return 0.0
    return float(min(initial_s * 2.0 ** min(failures - 1, _MAX_DOUBLINGS), maximum_s))


_OTHER_EVENT_TYPES: Final[dict[type, str]] = {
    bev.TradeLite: "TRADE_LITE",
    bev.MarginCall: "MARGIN_CALL",
    bev.AccountConfigUpdate: "ACCOUNT_CONFIG_UPDATE",
    bev.ListenKeyExpired: "listenKeyExpired",
}


def _raw_excerpt(raw: str | bytes) -> str:
    return excerpt(raw, _RAW_EXCERPT_CHARS)


def stream_event_from(event: bev.UserEvent, raw: str | bytes) -> StreamEvent:
    """Convert one parsed Binance user-data event into the venue-neutral vocabulary.

    * ``ORDER_TRADE_UPDATE`` → :class:`~scalper.venues.base.OrderUpdate` (with its fill);
    * ``ALGO_UPDATE`` → ``OrderUpdate(conditional=True)`` (algo id as ``order_id``);
    * ``ACCOUNT_UPDATE`` → :class:`~scalper.venues.base.AccountUpdate`. The event carries
      no available balance, so ``available_balance`` holds the cross wallet balance, the
      closest figure it has; read ``balances()`` for margin decisions;
    * anything else → :class:`~scalper.venues.base.UnknownStreamEvent` with a redacted
      excerpt of ``raw`` (the frame as received).
    """
    if isinstance(event, bev.OrderTradeUpdate):
        return OrderUpdate(order=event.order, fill=event.fill, event_time_ms=event.event_time_ms)
    if isinstance(event, bev.AlgoUpdate):
        return OrderUpdate(
            order=event.algo.order, event_time_ms=event.event_time_ms, conditional=True
        )
    if isinstance(event, bev.AccountUpdate):
        return AccountUpdate(
            positions=event.positions,
            balances=tuple(
                Balance(
                    asset=b.asset,
                    wallet_balance=b.wallet_balance,
                    available_balance=b.cross_wallet_balance,
                    cross_wallet_balance=b.cross_wallet_balance,
                    venue_time_ms=event.transaction_time_ms,
                )
                for b in event.balances
            ),
            reason=event.reason,
            event_time_ms=event.event_time_ms,
        )
    if isinstance(event, bev.UnknownEvent):
        return UnknownStreamEvent(event_type=event.event_type, raw=_raw_excerpt(raw))
    return UnknownStreamEvent(
        event_type=_OTHER_EVENT_TYPES.get(type(event), type(event).__name__),
        raw=_raw_excerpt(raw),
    )


# ---------------------------------------------------------------------------------------
# Exception-group handling at the boundary.


def _no_scrub(text: str) -> str:
    return excerpt(text, 300)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _choose(
    group: BaseExceptionGroup[BaseException],
    preferred: BaseException | None,
    scrub: Callable[[str], str],
) -> BaseException | None:
    """The one exception to raise for ``group``, or None for a pure cancellation."""
    failures = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
    if not failures:
        return None
    chosen = preferred if any(e is preferred for e in failures) else failures[0]
    assert chosen is not None
    for other in failures:
        if other is not chosen:
            chosen.add_note(
                f"the user stream also failed: {type(other).__name__}: {scrub(str(other))}"
            )
    return chosen


def _raise(exc: BaseException) -> NoReturn:
    """Re-raise ``exc`` without making the group it came from its ``__context__``."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


class _ConsumerGone(Exception):  # noqa: N818 - a private signal, not an error
    """The consumer closed its receiving end: the stream stops quietly."""


@attrs.frozen
class _SessionEnd:
    reason: GapReason
    since: float


@attrs.frozen
class _Gap:
    since: float
    reason: GapReason


class _UserStream:
    """The reconnect loop and one session's tasks (see the module docstring)."""

    def __init__(
        self,
        api: ListenKeyApi,
        config: BinanceConfig,
        clock: Callable[[], float],
        connect: WsConnect,
        scrub: Callable[[str], str],
    ) -> None:
        self._api = api
        self._config = config
        self._clock = clock
        self._connect = connect
        self._scrub = scrub
        self._send: trio.MemorySendChannel[StreamEvent] | None = None
        self._task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        self.listen_key: str | None = None
        self._connected_once = False
        self._session_connected = False
        self._connected_at = 0.0
        self._transport_alive_at = 0.0
        self._key_alive_at = 0.0
        self._end: _SessionEnd | None = None
        self._gap: _Gap | None = None
        self._failures = 0

    def __repr__(self) -> str:
        return f"_UserStream(ws_url={self._config.ws_url!r}, connected={self._connected_once})"

    async def _emit(self, event: StreamEvent) -> None:
        assert self._send is not None
        try:
            await self._send.send(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _ConsumerGone from None

    def _reset_session(self) -> None:
        self._end = None
        self._session_connected = False

    def _finish(self, reason: GapReason, since: float, scope: trio.CancelScope) -> None:
        if self._end is None:
            self._end = _SessionEnd(reason, since)
        scope.cancel()

    async def run(
        self,
        send: trio.MemorySendChannel[StreamEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect, pump, reconnect; returns only when the consumer has gone away."""
        self._send = send
        self._task_status = task_status
        try:
            while True:
                await self._attempt()
        except _ConsumerGone:
            return

    async def _attempt(self) -> None:
        """One connection attempt and, if it connects, one session; then the backoff."""
        self._reset_session()
        error: BaseException | None = None
        try:
            await self._session()
        except VenueError as exc:
            if exc.error_class not in _RETRY_CLASSES:
                raise
            error = exc
        except (HandshakeError, ConnectionClosed, OSError, WireRequestError) as exc:
            error = exc
        end = self._end
        connected = self._session_connected
        was_up = self._gap is None
        if end is not None:
            self._gap = _Gap(end.since, end.reason)
        elif connected and self._gap is None:
            # Connected, then failed without a task saying why (e.g. a close error).
            self._gap = _Gap(self._transport_alive_at, GapReason.DISCONNECTED)
        if was_up and self._gap is not None:
            # Say so now, not at the reconnect: until then the stream is blind.
            await self._emit(
                StreamDisconnected(
                    at=self._clock(), since=self._gap.since, reason=self._gap.reason.value
                )
            )
        if connected and self._clock() - self._connected_at >= self._config.stable_connection_s:
            self._failures = 0
        else:
            self._failures += 1
        if self._failures > self._config.reconnect_max_attempts:
            last = "" if error is None else f"; last: {type(error).__name__}"
            if error is not None and str(error):
                last += f": {self._scrub(str(error))}"
            raise VenueError.transport(
                request_written=False,
                operation=Operation.QUERY,
                detail=(
                    f"user stream gave up after {self._config.reconnect_max_attempts} "
                    f"consecutive failed connections{last}"
                ),
            )
        delay = reconnect_delay_s(
            self._failures,
            self._config.reconnect_backoff_initial_s,
            self._config.reconnect_backoff_max_s,
        )
        if isinstance(error, VenueError) and error.verdict.backoff_hint_s is not None:
            # The venue said when it will talk to us again (429/418): asking earlier
            # only extends a ban.
            delay = max(delay, error.verdict.backoff_hint_s)
        await trio.sleep(delay)

    async def _session(self) -> None:
        key = await self._api.create_listen_key()
        self.listen_key = key
        url = user_stream_url(self._config.ws_url, key)
        async with self._connect(url) as ws:
            now = self._clock()
            self._connected_at = self._transport_alive_at = self._key_alive_at = now
            self._session_connected = True
            if self._gap is not None:
                await self._emit(StreamGap(self._gap.since, now, self._gap.reason.value))
                self._gap = None
            await self._emit(StreamConnected(at=now, reconnect=self._connected_once))
            self._connected_once = True
            self._task_status.started()
            self._task_status = trio.TASK_STATUS_IGNORED
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, ws, nursery.cancel_scope)
                    nursery.start_soon(self._keepalive, nursery.cancel_scope)
                    nursery.start_soon(self._ping, ws, nursery.cancel_scope)
            except BaseExceptionGroup as group:
                _collapse(group, None, self._scrub)

    async def _read(self, ws: WsConnection, scope: trio.CancelScope) -> None:
        while True:
            try:
                raw = await ws.get_message()
            except ConnectionClosed:
                self._finish(GapReason.DISCONNECTED, self._transport_alive_at, scope)
                return
            now = self._clock()
            self._transport_alive_at = self._key_alive_at = now
            try:
                event = bev.parse_user_message(raw)
            except MalformedMessage as exc:
                await self._emit(
                    UnknownStreamEvent(event_type=MALFORMED_EVENT_TYPE, raw=self._scrub(str(exc)))
                )
                await self._emit(StreamGap(now, now, GapReason.MALFORMED_EVENT.value))
                continue
            if isinstance(event, bev.ListenKeyExpired):
                self._finish(GapReason.LISTEN_KEY_EXPIRED, now, scope)
                return
            await self._emit(stream_event_from(event, raw))

    async def _keepalive(self, scope: trio.CancelScope) -> None:
        interval = self._config.keepalive_interval_s
        delay = interval
        while True:
            await trio.sleep(delay)
            try:
                await self._api.keepalive_listen_key()
            except VenueError as exc:
                if exc.code == _LISTEN_KEY_MISSING_CODE:
                    self._finish(GapReason.LISTEN_KEY_INVALID, self._key_alive_at, scope)
                    return
                if exc.error_class is ErrorClass.FATAL:
                    raise
                delay = min(self._config.keepalive_retry_s, interval)
                continue
            self._key_alive_at = self._clock()
            delay = interval

    async def _ping(self, ws: WsConnection, scope: trio.CancelScope) -> None:
        sequence = 0
        while True:
            await trio.sleep(self._config.ws_ping_interval_s)
            sequence += 1
            with trio.move_on_after(self._config.ws_ping_timeout_s) as ping_scope:
                try:
                    # A counter, not random bytes: payloads must be unique per connection.
                    await ws.ping(sequence.to_bytes(8, "big"))
                except ConnectionClosed:
                    self._finish(GapReason.DISCONNECTED, self._transport_alive_at, scope)
                    return
            if ping_scope.cancelled_caught:
                self._finish(GapReason.PING_TIMEOUT, self._transport_alive_at, scope)
                return
            self._transport_alive_at = self._clock()


def _collapse(
    group: BaseExceptionGroup[BaseException],
    preferred: BaseException | None,
    scrub: Callable[[str], str],
) -> NoReturn:
    chosen = _choose(group, preferred, scrub)
    _raise(group if chosen is None else chosen)


@asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    connect_timeout_s: float,
    close_timeout_s: float,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[WsConnection]:
    """Open a client WebSocket to ``url`` whose TCP stream is always closed on exit.

    ``trio_websocket.open_websocket_url`` leaves the client's socket open when the *server*
    starts the close (the client waits for the TCP close and then never closes its own
    end), which is exactly Binance's 24-hour disconnect. Here the stream belongs to us: the
    close handshake gets ``close_timeout_s`` (skipped under cancellation) and the stream is
    then closed forcefully in any case.

    Raises:
        trio_websocket.HandshakeError: connect failure, timeout or rejection.
    """
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if port in (80, 443) else f"{host}:{port}"
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(connect_timeout_s):
                    if secure:
                        stream = await trio.open_ssl_over_tcp_stream(
                            host,
                            port,
                            ssl_context=ssl_context or ssl.create_default_context(),
                            https_compatible=True,
                        )
                    else:
                        stream = await trio.open_tcp_stream(host, port)
                    ws = await wrap_client_stream(nursery, stream, host_header, resource)
            except trio.TooSlowError:
                raise ConnectionTimeout from None
            except OSError as exc:
                raise HandshakeError(f"cannot connect ({type(exc).__name__})") from exc
            try:
                yield ws
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                # Not shielded: under cancellation the connection's reader task is being
                # cancelled too, so no close handshake can complete; the stream is then
                # simply closed below.
                with trio.move_on_after(close_timeout_s):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _collapse(group, body_error, _no_scrub)
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)


def _default_connect(config: BinanceConfig) -> WsConnect:
    return functools.partial(
        connect_websocket,
        connect_timeout_s=config.ws_connect_timeout_s,
        close_timeout_s=config.ws_close_timeout_s,
    )


@asynccontextmanager
async def open_user_stream(
    api: ListenKeyApi,
    config: BinanceConfig,
    *,
    clock: Callable[[], float] = trio.current_time,
    connect: WsConnect | None = None,
    scrub: Callable[[str], str] = _no_scrub,
) -> AsyncIterator[AsyncIterator[StreamEvent]]:
    """Open the user-data stream; yields an async iterator of stream events.

    Args:
        api: the listen-key REST calls (a ``BinanceVenue``).
        config: endpoints and stream policy (``ws_url``, keepalive, reconnect, pings).
        clock: the injected clock; ``StreamGap``/``StreamConnected`` times are on it.
        connect: opens a WebSocket (default: :func:`connect_websocket` with the configured
            timeouts); injectable for fault injection.
        scrub: removes secrets from error text (the venue passes its own redactor).

    Raises:
        VenueError: the first connection or a reconnect failed for good (FATAL answer, or
            ``reconnect_max_attempts`` consecutive failures), or a keepalive was FATAL.
            Never an ExceptionGroup (see the module docstring).
    """
    stream = _UserStream(api, config, clock, connect or _default_connect(config), scrub)
    send, receive = trio.open_memory_channel[StreamEvent](config.stream_buffer)
    consumer_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(stream.run, send)
            try:
                yield receive
            except BaseException as exc:
                consumer_error = exc
                raise
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _collapse(group, consumer_error, scrub)
    finally:
        send.close()
        receive.close()
        if config.close_listen_key_on_exit and stream.listen_key is not None:
            # Best effort: the key expires by itself within 60 minutes.
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(config.ws_close_timeout_s),
                contextlib.suppress(VenueError),
            ):
                await api.close_listen_key()
