"""The operator HTTP API of ``scalper serve``: a small hand-written ASGI app on loopback.

Theory of operation
-------------------

:class:`OperatorApp` is a plain ASGI-3 application (no framework, like the simulated
exchange's server) around one running system; :func:`serve_operator_api` runs it with
hypercorn's trio worker in the same trio run as the system, so every handler reads the
journal's state between awaits and acts through the System's public commands only.

Endpoints:

=====================  ====================================================================
``GET /health``        200 ``{"ok": true, "posture", "halted"}``; 503 once the system stopped
``GET /status``        :func:`~scalper.operator.views.status_document`
``GET /metrics``       Prometheus text format 0.0.4 (:mod:`scalper.operator.metrics`)
``POST /intents``      ``{"intent": {...}, "confidence"?, "reference_price"?}`` -> receipt:
                       202 accepted; 409 refused by the system's state (halt, posture,
                       duplicate id, caps...); 422 refused for the intent itself
``POST /halt``         ``{"reason"}`` -> 200; durable halt of entries; resting entry orders
                       are cancelled (``belief.cancel_entries_on_halt``); stops and exits
                       continue (I1)
``POST /resume``       ``{"reason"}`` -> 200, or 409 with the blocking reasons
``POST /unfreeze``     ``{"symbol", "reason"}`` -> 200 unfrozen, or 409 with why not
                       (``not_frozen``, ``reconcile_not_clean``)
``POST /cancel``       ``{"intent_id", "reason"}`` -> 200 with what was asked of the Router
                       (idempotent); 404 when the journal knows no such intent
=====================  ====================================================================

Every request passes the same checks, in this order:

1. **Host.** Exactly one ``Host`` header naming one of the allowed authorities
   (``127.0.0.1:<port>``, ``localhost:<port>``, ``[::1]:<port>``), else 421 (400 when it
   is missing or repeated). A web page the operator visits can make the browser send
   requests to 127.0.0.1 under an attacker's DNS name ("DNS rebinding"); its Host header
   then names the attacker's domain, and the request is refused before anything is read.
2. **Route.** Unknown path 404; known path, other method 405 with ``Allow``.
3. **Authentication** (POST only): ``Authorization: Bearer <token>`` compared in constant
   time (:mod:`scalper.operator.auth`), else 401 with ``WWW-Authenticate: Bearer``.
   Nothing about an unauthenticated request is journaled: anyone on the host could
   otherwise fill the journal.
4. **System running** (POST only): 503 once the system has stopped.
5. **Body** (POST only): ``Content-Type: application/json`` (415), at most
   ``max_body_bytes`` (413: the ASGI adapter stops reading at the limit, or does not read
   at all when ``Content-Length`` declares more, and the request still passes steps 1-4
   before it is refused), UTF-8 JSON holding one object with no duplicate keys, no
   NaN/Infinity and no pathological nesting (400).
6. **Decoding** with the strict message converter (:data:`scalper.messages.converter`):
   unknown keys, wrong JSON kinds, floats for decimals and every
   :class:`~scalper.core.intents.Intent` validation error become 400 with the offending
   field's dotted path (``intent.quantity: must be positive, got -1``).

Bad input from an *authenticated* operator (steps 5 and 6) is answered 400/413/415 and
journaled as :class:`~scalper.messages.InvalidInput` (``source="operator_api"``, the raw
body truncated to 2 KiB): a rejected command is part of the story of the account.

Operator intents enter the Router with ``source="operator"``: entries meet every gate a
strategy's entries meet, exits meet none (I1). A submission that has been handed to the
Router is not cancelled by the API (the Router answers promptly, and a resubmission with
the same intent id is refused as a duplicate, so retrying after a lost answer is safe).

Binding to anything but loopback is refused unless ``allow_non_loopback`` is set; the
API has no TLS, so the token would cross the network in clear.
"""

import functools
import ipaddress
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import cattrs
import trio
from prometheus_client import generate_latest

from scalper.asgi import bind_address, serve_asgi
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import MAX_INTENT_ID_CHARS, check_text_id
from scalper.core.intents import Intent
from scalper.core.strict_json import loads_strict
from scalper.messages import InvalidInput, canonical_json, converter
from scalper.operator.auth import load_or_create_token, parse_bearer, token_matches
from scalper.operator.metrics import METRICS_CONTENT_TYPE, operator_registry
from scalper.operator.target import OperatedSystem
from scalper.operator.views import status_document

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "MAX_REASON_CHARS",
    "ApiRequest",
    "ApiResponse",
    "CancelRequest",
    "FieldError",
    "HaltRequest",
    "IntentSubmission",
    "OperatorApiHandle",
    "OperatorApp",
    "ResumeRequest",
    "UnfreezeRequest",
    "allowed_hosts_for",
    "check_bind_host",
    "field_errors",
    "serve_operator_api",
]

_log = logging.getLogger(__name__)

#: The operator API's default port.
DEFAULT_PORT: Final = 8765
#: Largest request body accepted (bytes).
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
#: Largest reason text for halt/resume/unfreeze/cancel (characters).
MAX_REASON_CHARS: Final = 500
#: Largest symbol and intent id accepted by unfreeze/cancel (characters).
_MAX_SYMBOL_CHARS: Final = 32
_SYMBOL_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
#: How much of a bad body is journaled.
_RAW_JOURNAL_CHARS: Final = 2048
_SOURCE: Final = "operator_api"

#: Receipt reasons about the intent itself (422); every other refusal is about the
#: system's current state (409): halt, posture, frozen symbol, duplicate id, cooldown, caps.
_UNPROCESSABLE_REASONS: Final = frozenset({"invalid_intent", "no_reference_price", "notional_cap"})

# ASGI callables, typed loosely: messages are plain dicts.
_Scope = Mapping[str, Any]
_Receive = Callable[[], Awaitable[dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]

_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_T = TypeVar("_T")


# --------------------------------------------------------------------------- bodies


def _unit_interval(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


def _positive_or_none(
    _inst: object, attribute: "attrs.Attribute[Decimal | None]", value: Decimal | None
) -> None:
    if value is not None and not value > 0:
        raise CoreValueError(attribute.name, f"must be positive, got {value}")


def _reason(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if not value.strip():
        raise CoreValueError(attribute.name, "must not be empty")
    if len(value) > MAX_REASON_CHARS:
        raise CoreValueError(attribute.name, f"must be at most {MAX_REASON_CHARS} characters")
    if _has_control(value, tab_ok=True):
        # The reason is journaled and shown on the console: no control characters.
        raise CoreValueError(attribute.name, "must not contain control characters")
    if not _utf8_ok(value):
        raise CoreValueError(attribute.name, "must be valid Unicode (no lone surrogates)")


@attrs.frozen
class IntentSubmission:
    """The body of ``POST /intents``.

    Attributes:
        intent: the intent's fields (:class:`~scalper.core.intents.Intent`; decimals as
            strings).
        confidence: the operator's confidence in [0, 1] (entries below the posture's
            minimum are refused).
        reference_price: the price used for a market entry's notional caps.
    """

    intent: Intent
    confidence: float = attrs.field(default=1.0, validator=_unit_interval)
    reference_price: Decimal | None = attrs.field(default=None, validator=_positive_or_none)


@attrs.frozen
class HaltRequest:
    """The body of ``POST /halt``: why entries must stop (journaled)."""

    reason: str = attrs.field(validator=_reason)


@attrs.frozen
class ResumeRequest:
    """The body of ``POST /resume``: why entries may start again (journaled)."""

    reason: str = attrs.field(validator=_reason)


def _symbol(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    # The rule of an intent's symbol: a mistyped one ("btcusdt") is named as the bad field
    # instead of being answered not_frozen.
    if not value or len(value) > _MAX_SYMBOL_CHARS or not set(value) <= _SYMBOL_CHARS:
        raise CoreValueError(
            attribute.name,
            f"must be 1..{_MAX_SYMBOL_CHARS} upper-case letters and digits, got {value!r}",
        )


def _intent_id(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    check_text_id(attribute.name, value)


@attrs.frozen
class UnfreezeRequest:
    """The body of ``POST /unfreeze``: which symbol may take entries again, and why."""

    symbol: str = attrs.field(validator=_symbol)
    reason: str = attrs.field(validator=_reason)


@attrs.frozen
class CancelRequest:
    """The body of ``POST /cancel``: which intent's live orders to cancel, and why."""

    intent_id: str = attrs.field(validator=_intent_id)
    reason: str = attrs.field(validator=_reason)


@attrs.frozen
class FieldError:
    """One decoding error: the dotted path of the field and what is wrong with it."""

    field: str
    message: str

    def describe(self) -> str:
        """``field: message`` (or the message alone for the body itself)."""
        return f"{self.field}: {self.message}" if self.field else self.message


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def field_errors(exc: BaseException, path: str = "") -> list[FieldError]:
    """Flatten a converter or validation error into field errors with dotted paths.

    Args:
        exc: what :data:`scalper.messages.converter` (or a validator) raised.
        path: the path of the value that was being structured.
    """
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return [FieldError(_join(path, key), "unknown field") for key in sorted(exc.extra_fields)]
    if isinstance(exc, cattrs.ClassValidationError):
        out: list[FieldError] = []
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            where = _join(path, note.name)
            if isinstance(sub, KeyError):
                out.append(FieldError(where, "is required"))
            else:
                out.extend(field_errors(sub, where))
        for sub in without:
            out.extend(field_errors(sub, path))
        return out
    if isinstance(exc, cattrs.IterableValidationError):
        out = []
        with_index, rest = exc.group_exceptions()
        for sub, index_note in with_index:
            out.extend(field_errors(sub, _join(path, index_note.index)))
        for sub in rest:
            out.extend(field_errors(sub, path))
        return out
    if isinstance(exc, BaseExceptionGroup):
        return [e for sub in exc.exceptions for e in field_errors(sub, path)]
    if isinstance(exc, CoreValueError):
        return [FieldError(_join(path, exc.field), exc.reason)]
    if isinstance(exc, ValueError):
        return [FieldError(path, str(exc))]
    if isinstance(exc, (AttributeError, TypeError)):
        # cattrs met a JSON kind it cannot structure (a string where an object belongs).
        return [FieldError(path, "has the wrong JSON type")]
    return [FieldError(path, f"{type(exc).__name__}: {exc}")]


# --------------------------------------------------------------------------- HTTP records


@attrs.frozen
class ApiRequest:
    """One HTTP request as the app sees it.

    Attributes:
        method: upper-case method.
        path: the URL path.
        headers: ``(name, value)`` pairs, names lower-case, in arrival order (repeats kept,
            so a repeated Host or Authorization header can be refused).
        body: the raw body (empty when ``oversized``).
        oversized: the body exceeded the limit and was not read.
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    oversized: bool = False

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive)."""
        wanted = name.lower()
        return [v for k, v in self.headers if k == wanted]


@attrs.frozen
class ApiResponse:
    """One HTTP response: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()
    ) -> "ApiResponse":
        """A JSON response (sorted keys, so the same state gives the same bytes)."""
        return cls(status, canonical_json(payload).encode("utf-8"), headers=headers)

    def decoded(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name (``None`` if absent)."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


def _error(status: int, error: str, detail: str, **extra: Any) -> ApiResponse:
    return ApiResponse.json(status, {"error": error, "detail": detail, **extra})


class _BadInputError(Exception):
    """Authenticated bad input: answered with ``response`` and journaled."""

    def __init__(self, response: ApiResponse, message: str) -> None:
        super().__init__(message)
        self.response = response
        self.message = message


# --------------------------------------------------------------------------- hosts


def check_bind_host(host: str, *, allow_non_loopback: bool = False) -> None:
    """Refuse a non-loopback bind address unless explicitly allowed.

    Raises:
        CoreValueError: ``host`` is empty, or not loopback without ``allow_non_loopback``.
    """
    if not host:
        raise CoreValueError("host", "must not be empty")
    if allow_non_loopback or _is_loopback(host):
        return
    raise CoreValueError(
        "host",
        f"{host!r} is not a loopback address; the operator API has no TLS, so binding "
        f"elsewhere needs allow_non_loopback=True (and a TLS proxy in front)",
    )


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _authority(host: str, port: int) -> str:
    host = host.strip("[]").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def allowed_hosts_for(
    port: int, host: str = "127.0.0.1", extra: tuple[str, ...] = ()
) -> frozenset[str]:
    """The Host header values the API accepts when bound to ``host:port``.

    Always the three loopback spellings with the port; the bind address itself when it
    is a specific address (not a wildcard); plus ``extra`` authorities (``name:port``) an
    operator configured for a non-loopback deployment.
    """
    hosts = {_authority(name, port) for name in ("127.0.0.1", "localhost", "::1")}
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard names no authority
        hosts.add(_authority(host, port))
    hosts.update(h.lower() for h in extra)
    return frozenset(hosts)


# --------------------------------------------------------------------------- the app


class OperatorApp:
    """The operator API as an ASGI-3 application (see the module docstring).

    Args:
        system: the running system.
        token: the bearer token mutating endpoints require.
        allowed_hosts: accepted Host header values (``host:port``, lower-case); until
            they are set (:meth:`set_allowed_hosts`) every request is refused with 421.
        max_body_bytes: the largest body accepted.
    """

    def __init__(
        self,
        system: OperatedSystem,
        *,
        token: str,
        allowed_hosts: frozenset[str] = frozenset(),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not token:
            raise CoreValueError("token", "must not be empty")
        if max_body_bytes < 1:
            raise CoreValueError("max_body_bytes", f"must be positive, got {max_body_bytes}")
        self._system = system
        self._token = token
        self._allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self._registry = operator_registry(system)
        self._routes: dict[str, dict[str, Callable[[ApiRequest], Awaitable[ApiResponse]]]] = {
            "/health": {"GET": self._health},
            "/status": {"GET": self._status},
            "/metrics": {"GET": self._metrics},
            "/intents": {"POST": self._intents},
            "/halt": {"POST": self._halt},
            "/resume": {"POST": self._resume},
            "/unfreeze": {"POST": self._unfreeze},
            "/cancel": {"POST": self._cancel},
        }

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The Host header values accepted right now."""
        return self._allowed_hosts

    def set_allowed_hosts(self, hosts: frozenset[str]) -> None:
        """Replace the accepted Host values (the server sets them once the port is bound)."""
        self._allowed_hosts = frozenset(h.lower() for h in hosts)

    # ----------------------------------------------------------------- ASGI

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        """ASGI-3 entry point: ``http`` and ``lifespan`` scopes (websockets are refused)."""
        kind = scope["type"]
        if kind == "http":
            response = await self._read_and_handle(scope, receive)
            headers = [
                (b"content-type", response.content_type.encode("latin-1")),
                (b"cache-control", b"no-store"),
                *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
            ]
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": response.body})
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _read_and_handle(self, scope: _Scope, receive: _Receive) -> ApiResponse:
        headers = tuple(
            (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
            for k, v in scope.get("headers", [])
        )
        refusal = self._host_refusal([v for k, v in headers if k == "host"])
        if refusal is not None:
            # A request for another authority (DNS rebinding) is refused before its body
            # is read.
            return refusal
        oversized = False
        declared = [v for k, v in headers if k == "content-length"]
        try:
            oversized = any(int(v) > self.max_body_bytes for v in declared)
        except ValueError:
            return _error(400, "bad_request", "Content-Length is not a number")
        chunks: list[bytes] = []
        size = 0
        while not oversized:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away; nothing will read the answer.
                return _error(400, "bad_request", "request body incomplete")
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body_bytes:
                # Stop reading: a body over the limit is never buffered whole. The request
                # still goes through routing and authentication, so only an operator's
                # oversized command is journaled.
                oversized = True
                chunks.clear()
                break
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        request = ApiRequest(
            method=str(scope["method"]).upper(),
            path=str(scope["path"]),
            headers=headers,
            body=b"".join(chunks),
            oversized=oversized,
        )
        return await self.handle(request)

    def _too_large(self) -> ApiResponse:
        return _error(413, "payload_too_large", f"the body limit is {self.max_body_bytes} bytes")

    # ----------------------------------------------------------------- pipeline

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request (the checks of the module docstring, in order)."""
        refusal = self._host_refusal(request.header_values("host"))
        if refusal is not None:
            return refusal
        routes = self._routes.get(request.path)
        if routes is None:
            return _error(404, "not_found", f"no endpoint {request.path}")
        handler = routes.get(request.method)
        if handler is None:
            allow = ", ".join(sorted(routes))
            return ApiResponse.json(
                405,
                {"error": "method_not_allowed", "detail": f"use {allow}"},
                headers=(("allow", allow),),
            )
        if request.method == "POST":
            refusal = self._authenticate(request)
            if refusal is not None:
                return refusal
            if self._system.stopped.is_set():
                return _error(503, "system_stopped", self._system.stop_reason or "stopped")
        try:
            return await handler(request)
        except _BadInputError as bad:
            await self._journal_bad_input(request, bad.message)
            return bad.response

    def _host_refusal(self, hosts: list[str]) -> ApiResponse | None:
        if len(hosts) != 1:
            return _error(400, "bad_host", "exactly one Host header is required")
        if hosts[0].strip().lower() not in self._allowed_hosts:
            return _error(421, "misdirected_request", "this Host is not served here")
        return None

    def _authenticate(self, request: ApiRequest) -> ApiResponse | None:
        values = request.header_values("authorization")
        presented = parse_bearer(values[0]) if len(values) == 1 else None
        if token_matches(self._token, presented):
            return None
        return ApiResponse.json(
            401,
            {"error": "unauthorized", "detail": "Authorization: Bearer <token> required"},
            headers=(("www-authenticate", 'Bearer realm="scalper"'),),
        )

    async def _journal_bad_input(self, request: ApiRequest, message: str) -> None:
        raw = request.body[: _RAW_JOURNAL_CHARS * 4].decode("utf-8", "replace")[:_RAW_JOURNAL_CHARS]
        await self._system.journal.append(
            InvalidInput(
                source=_SOURCE,
                error=f"{request.method} {request.path}: {message}",
                raw=raw,
                intent_id=_intent_id_hint(request.body),
            )
        )

    def _json_body(self, request: ApiRequest) -> dict[str, Any]:
        types = request.header_values("content-type")
        media = types[0].split(";", 1)[0].strip().lower() if len(types) == 1 else ""
        if media != "application/json":
            raise _BadInputError(
                _error(415, "unsupported_media_type", "Content-Type must be application/json"),
                f"content type {types!r}",
            )
        if request.oversized or len(request.body) > self.max_body_bytes:
            raise _BadInputError(
                self._too_large(), f"body over the {self.max_body_bytes}-byte limit"
            )
        try:
            text = request.body.decode("utf-8")
            data = loads_strict(text)
        except RecursionError:
            detail = "body is not valid JSON: nested too deeply"
            raise _BadInputError(_error(400, "bad_json", detail), detail) from None
        except (UnicodeDecodeError, ValueError) as exc:
            detail = f"body is not valid JSON: {exc}"
            raise _BadInputError(_error(400, "bad_json", detail), detail) from None
        if not isinstance(data, dict):
            detail = "body must be a JSON object"
            raise _BadInputError(_error(400, "bad_json", detail), detail)
        return data

    def _decode(self, request: ApiRequest, cls: type[_T]) -> _T:
        data = self._json_body(request)
        try:
            return converter.structure(data, cls)
        except Exception as exc:  # noqa: BLE001 - cattrs raises groups of many kinds
            errors = field_errors(exc) or [FieldError("", str(exc))]
            detail = "; ".join(e.describe() for e in errors)
            response = _error(
                400,
                "invalid_field",
                detail,
                field=errors[0].field,
                errors=[{"field": e.field, "message": e.message} for e in errors],
            )
            raise _BadInputError(response, detail) from None

    # ----------------------------------------------------------------- endpoints

    async def _health(self, _request: ApiRequest) -> ApiResponse:
        system = self._system
        state = system.journal.state
        running = not system.stopped.is_set()
        payload: dict[str, Any] = {
            "ok": running,
            "posture": system.belief.posture.mode.value,
            "halted": state.halted,
        }
        if not running:
            payload["stop_reason"] = system.stop_reason
        return ApiResponse.json(200 if running else 503, payload)

    async def _status(self, _request: ApiRequest) -> ApiResponse:
        return ApiResponse.json(200, status_document(self._system))

    async def _metrics(self, _request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, generate_latest(self._registry), content_type=METRICS_CONTENT_TYPE)

    async def _intents(self, request: ApiRequest) -> ApiResponse:
        body = self._decode(request, IntentSubmission)
        receipt = await self._system.submit(
            body.intent,
            confidence=body.confidence,
            reference_price=body.reference_price,
            source="operator",
        )
        if receipt.accepted:
            status = 202
        elif receipt.reason in _UNPROCESSABLE_REASONS:
            status = 422
        else:
            status = 409
        return ApiResponse.json(status, converter.unstructure(receipt))

    async def _halt(self, request: ApiRequest) -> ApiResponse:
        body = self._decode(request, HaltRequest)
        await self._system.halt(body.reason)
        state = self._system.journal.state
        return ApiResponse.json(
            200, {"halted": state.halted, "halts": dict(sorted(state.halts.items()))}
        )

    async def _resume(self, request: ApiRequest) -> ApiResponse:
        body = self._decode(request, ResumeRequest)
        result = await self._system.resume(body.reason)
        state = self._system.journal.state
        payload = {
            "resumed": result.resumed,
            "blocking": list(result.blocking),
            "halted": state.halted,
            "halts": dict(sorted(state.halts.items())),
        }
        return ApiResponse.json(200 if result.resumed else 409, payload)

    async def _unfreeze(self, request: ApiRequest) -> ApiResponse:
        body = self._decode(request, UnfreezeRequest)
        result = await self._system.unfreeze(body.symbol, body.reason)
        state = self._system.journal.state
        payload = {
            "unfrozen": result.done,
            "reason": result.reason,
            "symbol": body.symbol,
            "frozen_symbols": dict(sorted(state.frozen_symbols.items())),
        }
        return ApiResponse.json(200 if result.done else 409, payload)

    async def _cancel(self, request: ApiRequest) -> ApiResponse:
        body = self._decode(request, CancelRequest)
        result = await self._system.cancel(body.intent_id, body.reason)
        if not result.known:
            # The request still went to the Router (harmless: it has nothing to cancel).
            return _error(
                404,
                "unknown_intent",
                f"the journal knows no intent {body.intent_id!r}",
                intent_id=body.intent_id,
            )
        return ApiResponse.json(200, converter.unstructure(result))


def _intent_id_hint(body: bytes) -> str:
    """The intent id a bad ``POST /intents`` or ``/cancel`` body meant, if readable.

    The journal link of the refusal (``intent.intent_id``, else a top-level ``intent_id``).
    """
    try:
        data = loads_strict(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    intent = data.get("intent")
    value = intent.get("intent_id") if isinstance(intent, dict) else data.get("intent_id")
    if not isinstance(value, str):
        return ""
    value = value[:MAX_INTENT_ID_CHARS]
    if _has_control(value, tab_ok=False) or not _utf8_ok(value):
        # The journal's id column refuses such text; the raw body still carries it.
        return ""
    return value


def _has_control(value: str, *, tab_ok: bool) -> bool:
    return any((ord(c) < 32 and not (tab_ok and c == "\t")) or ord(c) == 127 for c in value)


def _utf8_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON)
        return False
    return True


# --------------------------------------------------------------------------- serving


@attrs.frozen
class OperatorApiHandle:
    """A running operator API: where it listens and how to stop it.

    Attributes:
        host: the bound address.
        port: the bound port (the real one when 0 was asked for).
        url: ``http://host:port``.
        token_path: the token file clients read the bearer token from.
        app: the ASGI app (its allowed hosts are set).
        stop_event: set to stop serving (see :meth:`stop`).
    """

    host: str
    port: int
    url: str
    token_path: Path
    app: OperatorApp
    stop_event: trio.Event

    def stop(self) -> None:
        """Stop serving (in-flight requests get hypercorn's graceful timeout)."""
        self.stop_event.set()


async def serve_operator_api(
    system: OperatedSystem,
    *,
    token_path: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    allow_non_loopback: bool = False,
    extra_hosts: tuple[str, ...] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    graceful_timeout_s: float = 2.0,
    task_status: trio.TaskStatus[OperatorApiHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the operator API for ``system`` until cancelled or the handle is stopped.

    Use with ``handle = await nursery.start(serve_operator_api, system, token_path=...)``.

    Args:
        system: the running system.
        token_path: the bearer token file (created mode 0600 on first start).
        host: the bind address; loopback unless ``allow_non_loopback``.
        port: the port (0 picks a free one; the handle says which).
        allow_non_loopback: allow a non-loopback bind (there is no TLS).
        extra_hosts: further accepted Host header values (``name:port``).
        max_body_bytes: the largest request body accepted.
        graceful_timeout_s: how long in-flight requests may finish on stop.
        task_status: reports the :class:`OperatorApiHandle` once the socket listens.

    Raises:
        CoreValueError: a non-loopback ``host`` without ``allow_non_loopback``, or a port
            outside 0..65535.
        TokenFileError: the token file exists but is not safe to use.
    """
    check_bind_host(host, allow_non_loopback=allow_non_loopback)
    if not 0 <= port <= 65535:
        raise CoreValueError("port", f"must be in 0..65535, got {port}")
    path = Path(token_path)
    # File I/O off the trio thread (it may fsync on first start).
    token = await trio.to_thread.run_sync(load_or_create_token, path)
    app = OperatorApp(system, token=token, max_body_bytes=max_body_bytes)
    stop_event = trio.Event()

    async with trio.open_nursery() as nursery:
        bound_port: int = await nursery.start(
            functools.partial(
                serve_asgi,
                app,
                host=host,
                port=port,
                graceful_timeout_s=graceful_timeout_s,
                errorlog=_log,
                shutdown_trigger=stop_event.wait,
                then_cancel=nursery.cancel_scope,
            )
        )
        app.set_allowed_hosts(allowed_hosts_for(bound_port, host, extra_hosts))
        task_status.started(
            OperatorApiHandle(
                host=host,
                port=bound_port,
                url=f"http://{bind_address(host)}:{bound_port}",
                token_path=path,
                app=app,
                stop_event=stop_event,
            )
        )
