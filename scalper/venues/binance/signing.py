"""Binance request signing: the exact bytes, the HMAC, and nothing that leaks the secret.

Theory of operation
-------------------

Binance authenticates SIGNED endpoints (TRADE and USER_DATA) with
``signature = hex(HMAC-SHA256(secret, totalParams))`` where ``totalParams`` is the query
string concatenated with the form body, with no ``&`` between them. The server recomputes
the HMAC over the bytes it *received*, so the one rule that matters is: **sign exactly the
string you send**. This module therefore owns both the encoding and the signing, and the
caller never re-encodes a signed string.

Rules:

* Parameters are an ordered list of ``(key, value)`` string pairs. Order is preserved (the
  docs allow any order, but the signature covers the order sent).
* Keys and values are percent-encoded with only RFC 3986 unreserved characters left bare,
  so the JSON lists of batch endpoints (``["id1","id2"]``) and non-ASCII symbols (UTF-8
  first, as the 2025-10-09 change log requires) go out unambiguously.
* :func:`sign` appends ``recvWindow``, ``timestamp`` and, last, ``signature`` (Binance wants
  the signature last). The timestamp and the secret are *arguments*: this module reads no
  clock and holds no key store.
* :func:`verify_signature` is the server side of the same rule, for the loopback simulator:
  strip the trailing ``signature`` parameter, recompute over the rest, compare in constant
  time.
* Secrets never appear in a ``repr``, an exception message or a log line:
  :class:`ApiCredentials` redacts itself, and :class:`EncodedRequest` (in ``wire``) redacts
  the signature and the API key.

Invariants served: none of I1-I10 directly; this is the "secrets never appear in logs"
house rule and the precondition for every signed request the reliability layer sends.
"""

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable

import attrs

from scalper.core.errors_base import CoreValueError

__all__ = [
    "MAX_RECV_WINDOW_MS",
    "ApiCredentials",
    "SigningError",
    "decode_params",
    "encode_params",
    "hmac_signature",
    "redact_query",
    "sign",
    "verify_signature",
]

#: Binance's documented ceiling for ``recvWindow`` (spot and portfolio-margin pages).
MAX_RECV_WINDOW_MS = 60_000

# RFC 3986 unreserved characters (besides alphanumerics) stay bare; everything else is %XX.
_SAFE = "-_.~"
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_SIGNATURE_PARAM_RE = re.compile(r"(signature=)[^&]*", re.IGNORECASE)


class SigningError(CoreValueError):
    """Bad input to a signing function. The message names the field, never the secret."""


@attrs.frozen(repr=False)
class ApiCredentials:
    """An API key and its HMAC secret.

    The ``repr`` shows only the first four characters of the key and never the secret, so
    a credentials object that ends up in a log line or a traceback leaks nothing useful.
    """

    api_key: str
    secret: bytes

    def __attrs_post_init__(self) -> None:
        if not self.api_key:
            raise SigningError("api_key", "must be a non-empty string")
        if any(c in self.api_key for c in "\r\n"):
            raise SigningError("api_key", "must not contain line breaks")
        if type(self.secret) is not bytes or not self.secret:
            raise SigningError("secret", "must be non-empty bytes")

    def __repr__(self) -> str:
        return f"ApiCredentials(api_key='{self.api_key[:4]}…', secret=<redacted>)"


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe=_SAFE, encoding="utf-8")


def encode_params(params: Iterable[tuple[str, str]]) -> str:
    """Percent-encode ordered ``(key, value)`` pairs into ``k1=v1&k2=v2``.

    Raises:
        SigningError: if a key is empty or a key or value is not a string.
    """
    return "&".join(_encode_pair(i, pair) for i, pair in enumerate(params))


def _encode_pair(i: int, pair: object) -> str:
    # Typed callers cannot get this wrong; untyped ones (configs, tests) get a named error.
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise SigningError(f"params[{i}]", "must be a (key, value) pair")
    key, value = pair
    if type(key) is not str or not key:
        raise SigningError(f"params[{i}]", "key must be a non-empty string")
    if type(value) is not str:
        raise SigningError(f"params[{i}]", f"value of {key!r} must be a string")
    return f"{_quote(key)}={_quote(value)}"


def decode_params(encoded: str) -> list[tuple[str, str]]:
    """Split an encoded query string or form body back into ordered pairs.

    The inverse of :func:`encode_params` (and tolerant of ``+`` for spaces, as form bodies
    from other clients use). Blank values are kept: Binance treats ``orderId=`` as present.
    """
    return urllib.parse.parse_qsl(encoded, keep_blank_values=True, encoding="utf-8")


def hmac_signature(payload: str, secret: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``payload`` (UTF-8) under ``secret``.

    Raises:
        SigningError: if the secret is empty or not bytes (the message never shows it).
    """
    if type(secret) is not bytes or not secret:
        raise SigningError("secret", "must be non-empty bytes")
    if type(payload) is not str:
        raise SigningError("payload", "must be a string")
    return hmac.new(secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    params: Iterable[tuple[str, str]],
    secret: bytes,
    timestamp_ms: int,
    recv_window_ms: int,
) -> str:
    """Encode ``params``, append ``recvWindow`` and ``timestamp``, and sign the result.

    Returns the full string to send (as the query string for GET/DELETE or as the form body
    for POST/PUT): ``<params>&recvWindow=<w>&timestamp=<t>&signature=<hex>``.

    Raises:
        SigningError: on a non-positive timestamp, a recvWindow outside 1..60000 ms, a
            caller-supplied ``timestamp``/``recvWindow``/``signature`` parameter (those
            belong to the signer), or malformed params.
    """
    if type(timestamp_ms) is not int or timestamp_ms <= 0:
        raise SigningError("timestamp_ms", "must be a positive integer of milliseconds")
    if type(recv_window_ms) is not int or not 1 <= recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise SigningError("recv_window_ms", f"must be an integer in 1..{MAX_RECV_WINDOW_MS}")
    pairs = list(params)
    for key, _ in pairs:
        if str(key).lower() in ("timestamp", "recvwindow", "signature"):
            raise SigningError("params", f"{key!r} is added by the signer, not the caller")
    pairs.append(("recvWindow", str(recv_window_ms)))
    pairs.append(("timestamp", str(timestamp_ms)))
    payload = encode_params(pairs)
    return f"{payload}&signature={hmac_signature(payload, secret)}"


def verify_signature(query: str, body: str, secret: bytes) -> bool:
    """Server-side check of a signed request, as Binance does it.

    The ``signature`` parameter must be the last parameter of either the query string or the
    body; the HMAC is recomputed over ``query + body`` with that parameter removed and
    compared in constant time (hex case-insensitive, as the docs allow).
    """
    for part_name in ("query", "body"):
        part = query if part_name == "query" else body
        head, sep, sig = part.rpartition("signature=")
        if not sep or "&" in sig or not _HEX64_RE.match(sig):
            continue
        if head and not head.endswith("&"):
            continue
        head = head[:-1] if head.endswith("&") else head
        total = head + body if part_name == "query" else query + head
        expected = hmac_signature(total, secret)
        return hmac.compare_digest(expected, sig.lower())
    return False


def redact_query(encoded: str) -> str:
    """Replace the value of any ``signature=`` parameter with ``<redacted>``."""
    return _SIGNATURE_PARAM_RE.sub(r"\1<redacted>", encoded)
