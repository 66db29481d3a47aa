"""Loading, checking and showing the system's configuration.

:class:`~scalper.system.SystemConfig` nests one frozen attrs config class per module; this
module fills it from three layers, later ones winning key by key:

1. the defaults written in the config classes;
2. an optional TOML file (stdlib :mod:`tomllib`);
3. ``SCALPER_*`` environment variables.

Rules:

* **Strict.** Every key must name a field: an unknown key in the file, or an environment
  variable under ``SCALPER_`` that maps to no field, is an error rather than a silently
  ignored typo (a misspelt ``max_notional`` must not leave the default cap in force).
  Types are strict too: an integer field refuses ``5.7`` instead of truncating it, a
  Decimal refuses a float (binary floats cannot say ``0.1``), booleans are booleans.
* **The classes stay the judges.** The file and environment are merged into one plain
  tree and structured with a strict cattrs converter that keeps cattrs' attrs-class
  handling, so each class's own converters and validators run exactly as in code.
* **One error type.** Whatever goes wrong surfaces as :class:`ConfigError` naming the full
  key path (``router.max_notional``), the expected type and, where it is known, the
  environment variable or file that supplied the value.
* **No secrets in files.** Config files get copied, diffed and pasted into tickets; API
  credentials come from the environment or secret files (handled by the venue layer), so
  a secret-looking key anywhere in the TOML is refused. ``SCALPER_API_KEY``,
  ``SCALPER_API_SECRET``, ``SCALPER_API_KEY_FILE`` and ``SCALPER_API_SECRET_FILE`` are
  ignored here for the same reason.
* **Environment naming.** ``SCALPER_`` + the key path in upper case, levels joined by a
  double underscore: ``SCALPER_ROUTER__MAX_NOTIONAL=500``, ``SCALPER_SEED=7``. Field names
  match case-insensitively. Values are converted by the target field's type: integers,
  floats, booleans (``true``/``false``/``1``/``0``), Decimals (as written), strings
  (verbatim), enums (by value, any case) and arrays as comma-separated lists
  (``SCALPER_SYMBOLS=BTCUSDT,ETHUSDT``; empty for an empty array). Table-valued fields
  (mappings) take one entry per variable, the entry's key as the next level:
  ``SCALPER_ORPHANS__SYMBOL_ACTIONS__BTCUSDT=FREEZE``; string keys are used verbatim,
  enum keys match in any case.
* **Tables replace.** A mapping given in the file replaces the default mapping whole (so a
  default entry can be removed); environment entries are merged into the file's mapping.

:func:`render_config` prints the effective configuration back as TOML (any field whose
name contains ``secret``, ``key`` or ``token`` shown as ``***``); loading that text gives an
equal :class:`~scalper.system.SystemConfig`.
"""

import enum
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn

from scalper.core.errors_base import CoreValueError
from scalper.system import SystemConfig

__all__ = [
    "CREDENTIAL_ENV_VARS",
    "ENV_PREFIX",
    "ConfigError",
    "load_config",
    "render_config",
]

#: Environment variables under this prefix configure scalper.
ENV_PREFIX = "SCALPER_"

#: Credentials are read by the venue layer, never by the config loader.
CREDENTIAL_ENV_VARS = frozenset(
    {"SCALPER_API_KEY", "SCALPER_API_SECRET", "SCALPER_API_KEY_FILE", "SCALPER_API_SECRET_FILE"}
)

# Keys that look like credentials. Deliberately narrower than the render redaction rule:
# refusing a file is loud, so a plain "key" substring (e.g. a future "listen_key_refresh_s")
# must not trip it, while anything called a secret, token, password or API/private key does.
_SECRET_KEY_RE = re.compile(
    r"secret|token|passw(or)?d|passphrase|(^|_)(api|private)_?key($|_)|^key$"
)
_REDACT_WORDS = ("secret", "key", "token")
_REDACTED = "***"
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}

Path = tuple[str | int, ...]


class ConfigError(ValueError):
    """The configuration cannot be loaded; the message says where and what was expected.

    Attributes:
        path: the dotted key path at fault (``router.max_notional``; empty for the file).
        expected: what the key takes (``integer``, ``decimal as a string``, ...), or empty.
        source: where the value came from (an environment variable or the file), or empty.
        reason: the problem, without path, source or expectation.
    """

    def __init__(self, path: str, reason: str, *, expected: str = "", source: str = "") -> None:
        where = f"{source}: " if source else ""
        what = f"{path}: " if path else ""
        hint = f" (expected {expected})" if expected else ""
        super().__init__(f"{where}{what}{reason}{hint}")
        self.path = path
        self.expected = expected
        self.source = source
        self.reason = reason


# --------------------------------------------------------------------------- types


def _is_attrs_class(tp: Any) -> bool:
    return isinstance(tp, type) and attrs.has(tp)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _tuple_item(tp: Any) -> Any | None:
    """The item type of ``tuple[X, ...]``, else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _mapping_args(tp: Any) -> tuple[Any, Any] | None:
    origin = typing.get_origin(tp)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        key, value = typing.get_args(tp)
        return key, value
    return None


def _field_types(cls: type) -> dict[str, Any]:
    # Resolves string annotations too; attrs fields keep declaration order.
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in attrs.fields(cls)}


def _describe(tp: Any) -> str:
    """A human name for what a key of type ``tp`` takes."""
    if tp is bool:
        return "boolean (true or false)"
    if tp is int:
        return "integer"
    if tp is float:
        return "number"
    if tp is str:
        return "string"
    if tp is Decimal:
        return 'decimal as a string or integer, e.g. "100.5"'
    if _is_enum(tp):
        return "one of " + ", ".join(str(m.value) for m in tp)
    if (item := _tuple_item(tp)) is not None:
        return f"array of {_describe(item)}"
    if (kv := _mapping_args(tp)) is not None:
        return f"table of {_describe(kv[0])} to {_describe(kv[1])}"
    if _is_attrs_class(tp):
        return f"table ({tp.__name__})"
    return getattr(tp, "__name__", repr(tp))


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# --------------------------------------------------------------------------- converter


def _structure_int(value: Any, _tp: type) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _structure_float(value: Any, _tp: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{value!r} is out of the float range") from None


def _structure_bool(value: Any, _tp: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _structure_str(value: Any, tp: type) -> str:
    if _is_enum(tp):
        return _enum_hook(tp)(value, tp)  # type: ignore[return-value]  # a StrEnum is a str
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _structure_decimal(value: Any, _tp: type) -> Decimal:
    # Floats are refused: a TOML 0.1 is already the binary approximation of 0.1.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"expected a decimal string or an integer, got {value!r}")
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"must be finite, got {value!r}")
    return out


def _enum_hook(tp: type[enum.Enum]) -> Callable[[Any, Any], enum.Enum]:
    def structure(value: Any, _tp: Any) -> enum.Enum:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        try:
            return tp(value)
        except ValueError:
            raise ValueError(f"unknown value {value!r}") from None

    return structure


def _tuple_hook(
    converter: cattrs.Converter,
) -> Callable[[Any], Callable[[Any, Any], tuple[Any, ...]]]:
    def factory(tp: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        item: Any = _tuple_item(tp)

        def structure(value: Any, _tp: Any) -> tuple[Any, ...]:
            # cattrs would iterate a string character by character; TOML arrays are lists.
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected an array, got {value!r}")
            out: list[Any] = []
            errors: list[Exception] = []
            for index, element in enumerate(value):
                try:
                    out.append(converter.structure(element, item))
                except Exception as exc:  # noqa: BLE001  # collected, re-raised as a group
                    exc.__notes__ = [
                        *getattr(exc, "__notes__", []),
                        IterableValidationNote(f"Structuring {tp} @ index {index}", index, item),
                    ]
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
            return tuple(out)

        return structure

    return factory


class _NotATableError(TypeError):
    """A config class was given something other than a table."""


def _attrs_hook(
    converter: cattrs.Converter,
) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        # cattrs' own structuring for attrs classes (so converters and validators run),
        # behind a shape check that tells "not a table" apart from a validator's verdict.
        generated = make_dict_structure_fn(tp, converter)

        def structure(value: Any, _tp: Any) -> Any:
            if not isinstance(value, Mapping):
                raise _NotATableError(f"expected a table, got {value!r}")
            return generated(value, tp)

        return structure

    return factory


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    # Class hooks dispatch by MRO, so the str hook also receives StrEnum types (it handles
    # them); the generic factories below would never see them.
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(Decimal, _structure_decimal)
    converter.register_structure_hook_factory(_is_enum, _enum_hook)
    converter.register_structure_hook_factory(
        lambda tp: _tuple_item(tp) is not None, _tuple_hook(converter)
    )
    converter.register_structure_hook_factory(_is_attrs_class, _attrs_hook(converter))
    return converter


_CONVERTER = _make_converter()


# --------------------------------------------------------------------------- errors


def _class_error(exc: Exception, cls: type, path: Path, sources: Mapping[Path, str]) -> ConfigError:
    """A constructor or validator error of ``cls``: find the field it names, if any."""
    types_ = _field_types(cls)
    name: str | None = None
    if isinstance(exc, CoreValueError) and exc.field in types_:
        name = exc.field
    else:
        # attrs and the plain validators lead with the field name ("'x' must be ...").
        words = str(exc).split(maxsplit=1)
        first = words[0].strip("'\":") if words else ""
        if first in types_:
            name = first
    full = (*path, name) if name else path
    reason = exc.reason if isinstance(exc, CoreValueError) and name else str(exc)
    expected = _describe(types_[name]) if name else _describe(cls)
    return ConfigError(
        _dotted(full), reason, expected=expected, source=_source(full, sources, table=path)
    )


def _source(path: Path, sources: Mapping[Path, str], table: Path | None = None) -> str:
    """Where the value at ``path`` came from.

    The environment variable that set it (or an ancestor table), else the file. For a
    class-level verdict (``table`` given: a cross-field rule), every source that set a key
    in that table, since any of them may be the culprit.
    """
    for n in range(len(path), 0, -1):
        if path[:n] in sources:
            return sources[path[:n]]
    found = [sources[()]] if () in sources else []
    if table is not None:
        found += sorted(v for k, v in sources.items() if k and k[: len(table)] == table)
    return " / ".join(found)


def _flatten(
    exc: BaseException, path: Path, tp: Any, sources: Mapping[Path, str]
) -> Iterator[ConfigError]:
    """Turn cattrs' nested validation errors into ConfigErrors with full paths."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            step: str | int = note.name if isinstance(note, AttributeValidationNote) else note.index
            yield from _flatten(sub, (*path, step), note.type, sources)
        for sub in without:
            yield from _flatten(sub, path, tp, sources)
    elif isinstance(exc, ForbiddenExtraKeysError):
        allowed = ", ".join(_field_types(exc.cl)) if _is_attrs_class(exc.cl) else ""
        for extra in sorted(exc.extra_fields):
            full = (*path, extra)
            yield ConfigError(
                _dotted(full),
                "unknown key",
                expected=f"one of the keys {allowed}" if allowed else "",
                source=_source(full, sources),
            )
    elif isinstance(exc, _NotATableError):
        yield ConfigError(
            _dotted(path),
            "wrong type: not a table",
            expected=_describe(tp),
            source=_source(path, sources),
        )
    elif _is_attrs_class(tp) and isinstance(exc, ValueError | TypeError):
        yield _class_error(exc, tp, path, sources)
    elif isinstance(exc, KeyError):
        yield ConfigError(_dotted(path), "required key missing", expected=_describe(tp))
    elif isinstance(exc, AttributeError) and _mapping_args(tp) is not None:
        # cattrs calls .items() on whatever it was given for a mapping.
        yield ConfigError(
            _dotted(path), "wrong type", expected=_describe(tp), source=_source(path, sources)
        )
    elif isinstance(exc, TypeError):
        yield ConfigError(
            _dotted(path),
            f"wrong type: {exc}",
            expected=_describe(tp),
            source=_source(path, sources),
        )
    else:
        yield ConfigError(
            _dotted(path),
            f"invalid value: {exc}",
            expected=_describe(tp),
            source=_source(path, sources),
        )


# --------------------------------------------------------------------------- layers


def _plain(value: Any) -> Any:
    """A config value as the plain tree a TOML file would give (the converter's input)."""
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _overlay(base: dict[str, Any], top: Mapping[str, Any], cls: type) -> None:
    """Merge ``top`` into ``base`` in place: config tables merge by key, the rest replaces.

    A mapping-valued field (``symbol_actions``, ``by_reason``, ...) is replaced whole, so a
    file can remove a default entry. Keys that name no field are copied for the converter
    to reject with their path.
    """
    types_ = _field_types(cls)
    for key, value in top.items():
        tp = types_.get(key)
        below = base.get(key)
        if (
            isinstance(tp, type)
            and attrs.has(tp)
            and isinstance(value, Mapping)
            and isinstance(below, dict)
        ):
            _overlay(below, value, tp)
        else:
            base[key] = value


# --------------------------------------------------------------------------- file


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    source = f"config file {os.fspath(path)}"
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries the line and column.
        raise ConfigError("", f"invalid TOML: {exc}", source=source) from None
    except OSError as exc:
        raise ConfigError("", f"cannot read: {exc.strerror or exc}", source=source) from None
    _refuse_secrets(data, (), source)
    return data


def _refuse_secrets(node: Any, path: Path, source: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            here = (*path, key)
            if _SECRET_KEY_RE.search(key.lower().replace("-", "_")):
                raise ConfigError(
                    _dotted(here),
                    "secrets are not accepted in config files; set credentials in the "
                    "environment (SCALPER_API_KEY, SCALPER_API_SECRET) or point "
                    "SCALPER_API_KEY_FILE / SCALPER_API_SECRET_FILE at secret files",
                    source=source,
                )
            _refuse_secrets(value, here, source)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _refuse_secrets(item, (*path, index), source)


# --------------------------------------------------------------------------- environment


def _env_source(var: str) -> str:
    return f"environment variable {var}"


def _env_scalar(tp: Any, raw: str, path: Path, var: str) -> Any:
    """Turn one environment string into the plain value the converter expects for ``tp``."""

    def bad(why: str) -> ConfigError:
        return ConfigError(_dotted(path), why, expected=_describe(tp), source=_env_source(var))

    if tp is bool:
        word = raw.strip().lower()
        if word not in _BOOL_WORDS:
            raise bad(f"not a boolean: {raw!r}")
        return _BOOL_WORDS[word]
    if tp is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise bad(f"not an integer: {raw!r}") from None
    if tp is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise bad(f"not a number: {raw!r}") from None
    if tp is Decimal:
        return raw.strip()  # the Decimal hook parses and checks it
    if tp is str:
        return raw
    if _is_enum(tp):
        word = raw.strip()
        matches = [m.value for m in tp if str(m.value).lower() == word.lower()]
        return matches[0] if len(matches) == 1 else word
    if (item := _tuple_item(tp)) is not None:
        parts = [p.strip() for p in raw.split(",")]
        return [_env_scalar(item, p, (*path, i), var) for i, p in enumerate(x for x in parts if x)]
    if _is_attrs_class(tp) or _mapping_args(tp) is not None:
        prefix = ENV_PREFIX + "__".join(str(p).upper() for p in path)
        raise bad(f"is a table; set its keys with {prefix}__<KEY>")
    raise bad(f"cannot be set from the environment (type {tp!r})")


def _env_target(var: str) -> tuple[Path, Any]:
    """The key path and type an environment variable name addresses."""
    segments = var[len(ENV_PREFIX) :].split("__")
    tp: Any = SystemConfig
    path: Path = ()
    for segment in segments:
        if _is_attrs_class(tp):
            fields = _field_types(tp)
            name = segment.lower()
            if name not in fields:
                raise ConfigError(
                    _dotted((*path, name)),
                    "unknown key (the variable maps to no config field)",
                    expected="one of the keys " + ", ".join(fields),
                    source=_env_source(var),
                )
            path, tp = (*path, name), fields[name]
        elif (kv := _mapping_args(tp)) is not None:
            key_type, value_type = kv
            key = segment
            if _is_enum(key_type):
                matches = [m.value for m in key_type if str(m.value).lower() == segment.lower()]
                if not matches:
                    raise ConfigError(
                        _dotted((*path, segment)),
                        "unknown key",
                        expected=_describe(key_type),
                        source=_env_source(var),
                    )
                key = matches[0]
            if not key:
                raise ConfigError(_dotted(path), "empty key", source=_env_source(var))
            path, tp = (*path, key), value_type
        else:
            raise ConfigError(
                _dotted((*path, segment.lower())),
                f"unknown key: {_dotted(path)} is not a table",
                expected=_describe(tp),
                source=_env_source(var),
            )
    return path, tp


def _apply_env(data: dict[str, Any], env: Mapping[str, str], sources: dict[Path, str]) -> None:
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in CREDENTIAL_ENV_VARS:
            continue
        path, tp = _env_target(var)
        value = _env_scalar(tp, env[var], path, var)
        node = data
        for part in path[:-1]:
            child = node.get(str(part))
            if not isinstance(child, dict):
                child = node[str(part)] = {}
            node = child
        node[str(path[-1])] = value
        sources[path] = _env_source(var)


# --------------------------------------------------------------------------- load


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> SystemConfig:
    """Load the system config: defaults, then the TOML file, then ``SCALPER_*`` variables.

    Args:
        path: a TOML file, or None for none.
        env: the environment to read ``SCALPER_*`` overrides from (pass ``os.environ``);
            None reads none, so library callers never pick up the process environment by
            accident.

    Returns:
        The validated, frozen :class:`~scalper.system.SystemConfig`.

    Raises:
        ConfigError: unreadable or invalid TOML, a secret in the file, an unknown key or
            environment variable, a wrong type or a value the config classes reject.
    """
    # Layers go onto the defaults as a plain tree, so a partial table keeps the defaults of
    # its *parent*: SystemConfig's posture default (base_max_notional 1000) must survive a
    # file that only sets [posture] boot_mode.
    data: dict[str, Any] = _plain(SystemConfig())
    sources: dict[Path, str] = {}
    if path is not None:
        _overlay(data, _read_toml(path), SystemConfig)
        sources[()] = f"config file {os.fspath(path)}"
    _apply_env(data, env or {}, sources)
    try:
        return _CONVERTER.structure(data, SystemConfig)
    except (BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        errors = list(_flatten(exc, (), SystemConfig, sources))
        first = errors[0]
        if len(errors) > 1:
            # Report every problem at once: fixing a config one error per run is tedious.
            first.args = ("\n".join([str(first), *(f"also {e}" for e in errors[1:])]),)
        raise first from None


# --------------------------------------------------------------------------- render


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY_RE.match(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return _toml_value(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # always has a "." or an exponent, and reads back exactly
    if isinstance(value, Decimal):
        return _toml_string(str(value))
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML: {value!r}")


def _is_table(value: Any) -> bool:
    return attrs.has(type(value)) or isinstance(value, Mapping)


def _entries(value: Any) -> list[tuple[str, Any, bool]]:
    """(key, value, is_attrs_field) for a config instance or a mapping."""
    if attrs.has(type(value)):
        return [(f.name, getattr(value, f.name), True) for f in attrs.fields(type(value))]
    return [(str(k.value if isinstance(k, enum.Enum) else k), v, False) for k, v in value.items()]


def _render_table(value: Any, header: tuple[str, ...], lines: list[str]) -> None:
    entries = _entries(value)
    scalars = [e for e in entries if not _is_table(e[1])]
    # A config class with only sub-tables needs no header of its own; a mapping always
    # gets one, so an empty mapping reads back empty rather than as the default.
    if header and (scalars or not attrs.has(type(value))):
        if lines:
            lines.append("")
        lines.append("[" + ".".join(_toml_key(k) for k in header) + "]")
    for key, item, is_field in scalars:
        redact = is_field and any(word in key.lower() for word in _REDACT_WORDS)
        shown = _toml_string(_REDACTED) if redact else _toml_value(item)
        lines.append(f"{_toml_key(key)} = {shown}")
    # Sub-tables after the scalars: TOML puts every key after a header into that table.
    for key, item, _is_field in entries:
        if _is_table(item):
            _render_table(item, (*header, key), lines)


def render_config(config: SystemConfig) -> str:
    """The effective configuration as TOML, secrets redacted.

    Decimals are quoted strings (exact), enums their values, tuples arrays, nested configs
    and mappings tables. A field whose name contains ``secret``, ``key`` or ``token`` shows
    ``***``. :func:`load_config` of the output gives an equal config.
    """
    lines: list[str] = []
    _render_table(config, (), lines)
    return "\n".join(lines) + "\n"
