"""The loopback server's admin surface: ground truth out, prices, time and faults in.

Theory of operation
-------------------

Tests and chaos scenarios that drive the simulated exchange over its Binance wire format
also need what no Binance client can see: what *really* happened (the engine's history,
the authority the invariant checker holds scalper to, I4), and levers (move a price, jump
the clock, schedule faults). :class:`AdminApi` serves them under ``/admin``, outside
``/fapi`` so a Binance client cannot reach them by accident.

Rules:

* **Authenticated.** Every request needs ``Authorization: Bearer <token>``; the token is
  compared with :func:`hmac.compare_digest` (constant time) and never echoed. Anything
  else is 401 with ``WWW-Authenticate: Bearer``, before the path is even looked at, so an
  unauthenticated caller learns nothing about the surface.
* **JSON in, JSON out.** Decimals travel as strings (exact), enums as their values,
  records tagged with ``record`` (their class name). Bad input is 400 with the offending
  ``field``; unknown paths 404; wrong methods 405.
* **Read-only history.** ``GET /admin/history?after=<seq>`` returns records with
  ``seq > after`` and ``last_seq``, so a poller can resume without gaps.
* The admin surface never charges rate limits and never passes through fault injection:
  it is the observer, not a client.

Endpoints: ``GET /admin/history``, ``GET /admin/state``, ``POST /admin/price``
(``{"symbol", "price"}``), ``POST /admin/advance`` (``{"seconds"}``), and
``GET``/``PUT``/``DELETE /admin/faults`` (the fault injector's own JSON schedule).
"""

import hmac
import json
import math
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

import attrs
import cattrs

from scalper.core.errors_base import CoreValueError
from scalper.venues.sim.engine import SimEngine
from scalper.venues.sim.errors import SimRejection
from scalper.venues.sim.market import Quote

__all__ = [
    "AdminApi",
    "AdminBackend",
    "AdminRequest",
    "AdminResponse",
    "FaultControl",
    "history_converter",
]

_BEARER: Final = "bearer "


class FaultControl(Protocol):
    """The admin side of a fault injector: read, replace and clear its schedule."""

    def describe(self) -> dict[str, Any]:
        """The current schedule as JSON."""
        ...

    def configure(self, payload: object) -> dict[str, Any]:
        """Replace the schedule from JSON; raises CoreValueError on bad input."""
        ...

    def clear(self) -> None:
        """Drop every scheduled fault."""
        ...


class AdminBackend(Protocol):
    """What the admin surface needs from the server (the server app implements it)."""

    @property
    def engine(self) -> SimEngine:
        """The ground-truth engine."""
        ...

    @property
    def faults(self) -> FaultControl | None:
        """The fault injector, if any."""
        ...

    @property
    def listen_key(self) -> str | None:
        """The active listenKey, if any."""
        ...

    @property
    def stream_count(self) -> int:
        """Open user-data connections."""
        ...

    def now(self) -> float:
        """The server clock (engine seconds)."""
        ...

    def venue_time_ms(self) -> int:
        """Binance epoch milliseconds now."""
        ...

    def tick(self) -> None:
        """Bring the engine up to now."""
        ...

    def advance(self, seconds: float) -> float:
        """Jump the clock forward; returns the engine clock."""
        ...

    def set_mark_price(self, symbol: str, price: Decimal) -> Quote:
        """Move a symbol's mark price now."""
        ...


@attrs.frozen
class AdminRequest:
    """One admin request (``authorization`` is the raw header, if any)."""

    method: str
    path: str
    query: str = ""
    body: str = ""
    authorization: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class AdminResponse:
    """One admin response: status, JSON payload, extra headers."""

    status: int
    payload: object
    headers: tuple[tuple[str, str], ...] = ()


def history_converter() -> cattrs.Converter:
    """The converter that renders engine records as JSON-ready values (Decimal as str)."""
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Decimal, str)
    return converter


class _BadInput(Exception):  # noqa: N818 - internal control flow, never escapes
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _error(status: int, error: str, **extra: object) -> AdminResponse:
    return AdminResponse(status, {"error": error, **extra})


class AdminApi:
    """The ``/admin`` request handler.

    Args:
        backend: the server it observes and steers.
        token: the bearer token (non-empty).

    Raises:
        CoreValueError: if the token is empty.
    """

    def __init__(self, backend: AdminBackend, token: str) -> None:
        if not token:
            raise CoreValueError("admin_token", "must not be empty")
        self._backend = backend
        self._token = token.encode()
        self._converter = history_converter()

    def authorized(self, authorization: str | None) -> bool:
        """True if the ``Authorization`` header carries the token (constant-time compare)."""
        if authorization is None or not authorization.lower().startswith(_BEARER):
            return False
        presented = authorization[len(_BEARER) :].strip().encode()
        return hmac.compare_digest(presented, self._token)

    def handle(self, request: AdminRequest) -> AdminResponse:
        """Answer one admin request."""
        if not self.authorized(request.authorization):
            return AdminResponse(
                401, {"error": "unauthorized"}, (("WWW-Authenticate", 'Bearer realm="sim-admin"'),)
            )
        routes = {
            "/admin/history": {"GET": self._history},
            "/admin/state": {"GET": self._state},
            "/admin/price": {"POST": self._price},
            "/admin/advance": {"POST": self._advance},
            "/admin/faults": {
                "GET": self._faults_get,
                "PUT": self._faults_put,
                "POST": self._faults_put,
                "DELETE": self._faults_delete,
            },
        }
        methods = routes.get(request.path.rstrip("/"))
        if methods is None:
            return _error(404, "not_found")
        handler = methods.get(request.method)
        if handler is None:
            return _error(405, "method_not_allowed", allowed=sorted(methods))
        try:
            return handler(request)
        except _BadInput as exc:
            return _error(400, "bad_request", field=exc.field, reason=exc.reason)
        except CoreValueError as exc:
            return _error(400, "bad_request", field=exc.field, reason=exc.reason)
        except SimRejection as rej:
            return _error(400, "rejected", code=rej.code, msg=rej.message)

    # ------------------------------------------------------------------ handlers

    def _history(self, request: AdminRequest) -> AdminResponse:
        params = dict(urllib.parse.parse_qsl(request.query))
        after = _int_param(params, "after", 0)
        self._backend.tick()
        records = self._backend.engine.history.records
        selected = [r for r in records if r.seq > after]
        return AdminResponse(
            200,
            {
                "records": [self._record(r) for r in selected],
                "last_seq": records[-1].seq if records else 0,
            },
        )

    def _record(self, record: object) -> dict[str, Any]:
        out: dict[str, Any] = {"record": type(record).__name__}
        out.update(self._converter.unstructure(record))
        return out

    def _state(self, request: AdminRequest) -> AdminResponse:
        self._backend.tick()
        engine = self._backend.engine
        unstructure = self._converter.unstructure
        return AdminResponse(
            200,
            {
                "engine_time": engine.now,
                "venue_time_ms": self._backend.venue_time_ms(),
                "position_mode": engine.position_mode.value,
                "marks": {
                    s.symbol: str(engine.mark_price(s.symbol))
                    for s in engine.exchange_info().symbols
                },
                "positions": [unstructure(p) for p in engine.positions()],
                "balances": [unstructure(b) for b in engine.balances()],
                "open_orders": [unstructure(o) for o in engine.orders(open_only=True)],
                "listen_key_active": self._backend.listen_key is not None,
                "streams": self._backend.stream_count,
                "history_len": len(engine.history),
            },
        )

    def _price(self, request: AdminRequest) -> AdminResponse:
        body = _json_object(request.body)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise _BadInput("symbol", "must be a non-empty string")
        price = _decimal(body.get("price"), "price")
        quote = self._backend.set_mark_price(symbol, price)
        return AdminResponse(
            200,
            {"symbol": symbol, "bid": str(quote.bid), "ask": str(quote.ask), "mid": str(quote.mid)},
        )

    def _advance(self, request: AdminRequest) -> AdminResponse:
        body = _json_object(request.body)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
            raise _BadInput("seconds", "must be a number")
        try:
            value = float(seconds)
        except ValueError:
            raise _BadInput("seconds", "must be a number") from None
        if not math.isfinite(value) or value < 0:
            raise _BadInput("seconds", "must be a finite number >= 0")
        engine_time = self._backend.advance(value)
        return AdminResponse(
            200, {"engine_time": engine_time, "venue_time_ms": self._backend.venue_time_ms()}
        )

    def _faults_get(self, request: AdminRequest) -> AdminResponse:
        faults = self._backend.faults
        if faults is None:
            return _error(501, "no_fault_injector")
        return AdminResponse(200, faults.describe())

    def _faults_put(self, request: AdminRequest) -> AdminResponse:
        faults = self._backend.faults
        if faults is None:
            return _error(501, "no_fault_injector")
        try:
            payload = json.loads(request.body or "null")
        except ValueError:
            raise _BadInput("body", "must be JSON") from None
        return AdminResponse(200, faults.configure(payload))

    def _faults_delete(self, request: AdminRequest) -> AdminResponse:
        faults = self._backend.faults
        if faults is None:
            return _error(501, "no_fault_injector")
        faults.clear()
        return AdminResponse(200, faults.describe())


def _json_object(body: str) -> Mapping[str, Any]:
    try:
        value = json.loads(body or "{}", parse_float=Decimal)
    except ValueError:
        raise _BadInput("body", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise _BadInput("body", "must be a JSON object")
    return value


def _decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _BadInput(field, "must be a decimal string or number")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise _BadInput(field, "must be a decimal string or number") from None
    if not result.is_finite() or result <= 0:
        raise _BadInput(field, "must be positive and finite")
    return result


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise _BadInput(name, "must be a non-negative integer")
    return int(text)
