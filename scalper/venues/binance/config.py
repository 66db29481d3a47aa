"""Settings of the Binance USD-M client: endpoints, timeouts, clock, rate-limit and stream policy.

Theory of operation
-------------------

One frozen :class:`BinanceConfig` holds every default of the I/O shell around the sans-I/O
wire layer (:mod:`scalper.venues.binance.client` and :mod:`~scalper.venues.binance.stream`).
All fields are plain types, defaulted and validated, so a later layer can load them from
TOML and ``SCALPER_*`` variables with cattrs.

Rules:

* **Endpoints.** :meth:`BinanceConfig.live`, :meth:`~BinanceConfig.testnet` and
  :meth:`~BinanceConfig.custom` fill the REST base and the user-data WebSocket prefix (the
  listen key is appended as the last path segment: ``<ws_url>/<listenKey>``). The plain
  constructor defaults to the **testnet**: a configuration that forgets its URLs must not
  reach a live account. Plain ``http``/``ws`` is accepted for loopback hosts only (the
  simulated exchange), never for a remote host, because the API key travels in a header.
* **Timeouts.** ``request_timeout_s`` is the hard cap of one REST call (a trio cancel
  scope); httpx gets the same read/write budget and a shorter ``connect_timeout_s``, so a
  connect failure (nothing written, RETRYABLE) is told apart from a timeout after the
  request left (AMBIGUOUS for mutations).
* **Clock.** Signed requests carry ``local wall ms + measured offset``. The offset is
  re-measured when older than ``time_sync_interval_s`` (0: only on demand) and once after
  a -1021, at most every ``min_resync_interval_s``.
* **Rate limits.** After a 429/418 the client refuses calls until ``Retry-After`` has
  passed (or ``rate_limit_backoff_s``, doubling per consecutive 429 up to
  ``rate_limit_backoff_max_s``, when the header is absent). Reads are retried once after
  the wait only if ``read_retry_on_rate_limit`` is set and the wait is short; mutations
  never.
* **User stream.** The listen key lives 60 minutes after its last keepalive, so
  ``keepalive_interval_s`` must be below 3600 (30 minutes by default, as the digest
  recommends). Reconnects back off exponentially from ``reconnect_backoff_initial_s`` to
  ``reconnect_backoff_max_s``; after ``reconnect_max_attempts`` consecutive failures the
  stream gives up and raises, so its supervisor (not a hidden loop) decides what next.

Serves I4/I10 indirectly: the stream settings bound how long evidence can be missing
before a :class:`~scalper.venues.base.StreamGap` asks for a REST backfill.
"""

import ipaddress
import math
import urllib.parse
from typing import Any, Final

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.venues.binance.wire import (
    MAX_RECV_WINDOW_MS,
    PRODUCTION_REST_URL,
    PRODUCTION_USER_STREAM_URL,
    TESTNET_REST_URL,
    TESTNET_USER_STREAM_URL,
    WireConfig,
)

__all__ = ["LISTEN_KEY_VALIDITY_S", "BinanceConfig", "BinanceConfigError"]

#: A listen key expires this long after its creation or last keepalive.
LISTEN_KEY_VALIDITY_S: Final = 3600.0

_LOOPBACK_NAMES: Final = frozenset({"localhost"})


class BinanceConfigError(CoreValueError):
    """A client setting that cannot work (names the field)."""


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_validator(secure: str, plain: str) -> Any:
    def check(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
        if not isinstance(value, str):
            raise BinanceConfigError(attribute.name, f"must be a URL string, got {value!r}")
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in (secure, plain) or not parts.hostname:
            raise BinanceConfigError(
                attribute.name, f"must be a {secure}:// (or loopback {plain}://) URL"
            )
        if parts.query or parts.fragment:
            raise BinanceConfigError(attribute.name, "must not carry a query or fragment")
        if parts.scheme == plain and not _is_loopback(parts.hostname):
            # The API key travels in a header: never in clear text over a real network.
            raise BinanceConfigError(
                attribute.name, f"{plain}:// is only allowed for loopback hosts; use {secure}://"
            )

    return check


def _positive_finite(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BinanceConfigError(attribute.name, f"must be a finite number, got {value!r}")
    if value <= 0:
        raise BinanceConfigError(attribute.name, f"must be > 0, got {value!r}")


def _non_negative_finite(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BinanceConfigError(attribute.name, f"must be a finite number, got {value!r}")
    if value < 0:
        raise BinanceConfigError(attribute.name, f"must be >= 0, got {value!r}")


def _int_at_least(minimum: int, maximum: int | None = None) -> Any:
    def check(_inst: object, attribute: "attrs.Attribute[int]", value: object) -> None:
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f"..{maximum}"
            raise BinanceConfigError(
                attribute.name, f"must be an integer in {minimum}{upper}, got {value!r}"
            )

    return check


def _is_bool(_inst: object, attribute: "attrs.Attribute[bool]", value: object) -> None:
    if not isinstance(value, bool):
        raise BinanceConfigError(attribute.name, f"must be a boolean, got {value!r}")


@attrs.frozen
class BinanceConfig:
    """Every default of the Binance USD-M client (see the module docstring).

    Attributes:
        rest_url: REST base, e.g. ``https://fapi.binance.com``.
        ws_url: user-data WebSocket prefix; the listen key is appended as a path segment.
        recv_window_ms: ``recvWindow`` of signed requests (Binance recommends <= 5000).
        new_order_resp_type, working_type, price_protect: order-shaping defaults passed to
            the wire layer (:class:`~scalper.venues.binance.wire.WireConfig`).
        request_timeout_s: hard cap of one REST call, and httpx's read/write timeout.
        connect_timeout_s: httpx's connect and pool timeout (below ``request_timeout_s``).
        time_sync_interval_s: re-measure the clock offset before a signed request when the
            last measurement is older than this; 0 disables the automatic re-sync.
        min_resync_interval_s: at most one automatic re-sync per this many seconds (bounds
            the -1021 path and a failing time endpoint).
        rate_limit_backoff_s: fail-fast window after a 429 without ``Retry-After``; doubles
            per consecutive 429.
        rate_limit_backoff_max_s: ceiling of that doubling.
        read_retry_on_rate_limit: retry a *read* once after a 429/418 wait.
        read_retry_max_wait_s: ...but only if the wait is at most this long.
        keepalive_interval_s: listen-key keepalive period (below 3600).
        keepalive_retry_s: retry delay after a failed keepalive (other than -1125).
        reconnect_backoff_initial_s, reconnect_backoff_max_s: stream reconnect backoff.
        reconnect_max_attempts: consecutive failed reconnects before the stream raises.
        stable_connection_s: a connection that lived this long resets the backoff; a
            shorter one counts as a failed attempt (a flapping server is not hammered).
        ws_connect_timeout_s, ws_close_timeout_s: WebSocket handshake and close timeouts.
        ws_ping_interval_s, ws_ping_timeout_s: client liveness pings; a missing pong ends
            the connection (reason ``ping_timeout``).
        stream_buffer: events buffered between the socket and the consumer.
        close_listen_key_on_exit: ``DELETE`` the listen key when the stream closes. Off by
            default: the key is one per account and may be shared by another stream.
    """

    rest_url: str = attrs.field(default=TESTNET_REST_URL, validator=_url_validator("https", "http"))
    ws_url: str = attrs.field(
        default=TESTNET_USER_STREAM_URL, validator=_url_validator("wss", "ws")
    )
    recv_window_ms: int = attrs.field(default=5000, validator=_int_at_least(1, MAX_RECV_WINDOW_MS))
    new_order_resp_type: str = "RESULT"
    working_type: str = "MARK_PRICE"
    price_protect: bool = attrs.field(default=False, validator=_is_bool)
    request_timeout_s: float = attrs.field(default=10.0, validator=_positive_finite)
    connect_timeout_s: float = attrs.field(default=5.0, validator=_positive_finite)
    time_sync_interval_s: float = attrs.field(default=900.0, validator=_non_negative_finite)
    min_resync_interval_s: float = attrs.field(default=5.0, validator=_non_negative_finite)
    rate_limit_backoff_s: float = attrs.field(default=1.0, validator=_positive_finite)
    rate_limit_backoff_max_s: float = attrs.field(default=60.0, validator=_positive_finite)
    read_retry_on_rate_limit: bool = attrs.field(default=False, validator=_is_bool)
    read_retry_max_wait_s: float = attrs.field(default=5.0, validator=_non_negative_finite)
    keepalive_interval_s: float = attrs.field(default=30 * 60.0, validator=_positive_finite)
    keepalive_retry_s: float = attrs.field(default=60.0, validator=_positive_finite)
    reconnect_backoff_initial_s: float = attrs.field(default=0.5, validator=_positive_finite)
    reconnect_backoff_max_s: float = attrs.field(default=30.0, validator=_positive_finite)
    reconnect_max_attempts: int = attrs.field(default=20, validator=_int_at_least(1))
    stable_connection_s: float = attrs.field(default=60.0, validator=_non_negative_finite)
    ws_connect_timeout_s: float = attrs.field(default=10.0, validator=_positive_finite)
    ws_close_timeout_s: float = attrs.field(default=2.0, validator=_positive_finite)
    ws_ping_interval_s: float = attrs.field(default=60.0, validator=_positive_finite)
    ws_ping_timeout_s: float = attrs.field(default=20.0, validator=_positive_finite)
    stream_buffer: int = attrs.field(default=1024, validator=_int_at_least(1))
    close_listen_key_on_exit: bool = attrs.field(default=False, validator=_is_bool)

    def __attrs_post_init__(self) -> None:
        if self.connect_timeout_s >= self.request_timeout_s:
            # Otherwise the hard cap could fire mid-connect, where "written or not" is unknown.
            raise BinanceConfigError("connect_timeout_s", "must be below request_timeout_s")
        if self.rate_limit_backoff_max_s < self.rate_limit_backoff_s:
            raise BinanceConfigError("rate_limit_backoff_max_s", "must be >= rate_limit_backoff_s")
        if self.reconnect_backoff_max_s < self.reconnect_backoff_initial_s:
            raise BinanceConfigError(
                "reconnect_backoff_max_s", "must be >= reconnect_backoff_initial_s"
            )
        if self.keepalive_interval_s >= LISTEN_KEY_VALIDITY_S:
            raise BinanceConfigError(
                "keepalive_interval_s", "must be below 3600 s or the listen key expires"
            )
        if self.ws_ping_timeout_s >= self.ws_ping_interval_s:
            raise BinanceConfigError("ws_ping_timeout_s", "must be below ws_ping_interval_s")
        try:
            self.wire_config  # noqa: B018 - building it validates the order-shaping fields
        except (TypeError, ValueError) as exc:
            # attrs' in_() validator raises a plain ValueError that names the attribute.
            field = next(
                (n for n in ("new_order_resp_type", "working_type") if n in str(exc)), "wire"
            )
            raise BinanceConfigError(field, "not a value Binance accepts") from None

    @property
    def wire_config(self) -> WireConfig:
        """The wire layer's settings derived from this config."""
        return WireConfig(
            recv_window_ms=self.recv_window_ms,
            new_order_resp_type=self.new_order_resp_type,
            working_type=self.working_type,
            price_protect=self.price_protect,
        )

    @classmethod
    def live(cls, **overrides: Any) -> "BinanceConfig":
        """Binance USD-M production (``fapi.binance.com``, ``/private/ws`` user data)."""
        return cls(rest_url=PRODUCTION_REST_URL, ws_url=PRODUCTION_USER_STREAM_URL, **overrides)

    @classmethod
    def testnet(cls, **overrides: Any) -> "BinanceConfig":
        """Binance's USD-M testnet (``demo-fapi.binance.com``, ``fstream.binancefuture.com``)."""
        return cls(rest_url=TESTNET_REST_URL, ws_url=TESTNET_USER_STREAM_URL, **overrides)

    @classmethod
    def custom(cls, rest_url: str, ws_url: str, **overrides: Any) -> "BinanceConfig":
        """Any Binance-compatible endpoint, e.g. the loopback simulated exchange."""
        return cls(rest_url=rest_url, ws_url=ws_url, **overrides)
