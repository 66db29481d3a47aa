"""Loading the Binance API key and secret from the environment or from secret files.

Theory of operation
-------------------

The key and secret reach the process in one of two ways per value, never both:

* ``SCALPER_API_KEY`` / ``SCALPER_API_SECRET``: the value itself, in the environment;
* ``SCALPER_API_KEY_FILE`` / ``SCALPER_API_SECRET_FILE`` (or the ``key_file`` /
  ``secret_file`` arguments, which win over the environment): a path to a file holding it
  (Docker and systemd credentials work this way). Surrounding whitespace, such as the
  trailing newline an editor adds, is stripped.

Rules:

* **Ambiguity is an error.** Setting both a value and a file for the same credential
  raises: silently preferring one would hide a stale secret lying around.
* **Secret files must be private.** A file that is readable or writable by its group or
  by others (any bit of ``0o077``) is refused with :class:`InsecureSecretFileError`; the fix
  is ``chmod 600``. The check is skipped on Windows, whose permission bits do not mean this.
* **Nothing secret is ever rendered.** Errors name the variable or the path, never the
  value; :class:`~scalper.venues.binance.signing.ApiCredentials` redacts its own ``repr``.
  An error that wraps an ``OSError`` keeps only its ``strerror`` (no file content exists in
  it) and is raised ``from None``.

This is the house rule "secrets never appear in logs, journal, metrics or reports"; no
invariant of I1-I10 depends on it directly.
"""

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from scalper.core.errors_base import CoreValueError
from scalper.venues.binance.signing import ApiCredentials, SigningError

__all__ = [
    "API_KEY_ENV",
    "API_KEY_FILE_ENV",
    "API_SECRET_ENV",
    "API_SECRET_FILE_ENV",
    "CredentialsError",
    "InsecureSecretFileError",
    "load_credentials",
]

API_KEY_ENV: Final = "SCALPER_API_KEY"
API_SECRET_ENV: Final = "SCALPER_API_SECRET"  # noqa: S105 - a variable name, not a secret
API_KEY_FILE_ENV: Final = "SCALPER_API_KEY_FILE"
API_SECRET_FILE_ENV: Final = "SCALPER_API_SECRET_FILE"  # noqa: S105 - a variable name

#: Permission bits a secret file must not have: anything for group or others.
_PRIVATE_MASK: Final = 0o077
#: Larger than any key or secret; a bigger file is the wrong file.
_MAX_SECRET_FILE_BYTES: Final = 4096


class CredentialsError(CoreValueError):
    """The API key or secret is missing, ambiguous or unreadable.

    ``field`` names the environment variable (or argument) at fault; the message never
    contains a key or secret.
    """


class InsecureSecretFileError(CredentialsError):
    """A secret file is accessible to its group or to others (``chmod 600`` it).

    Attributes:
        path: the offending file.
        mode: its permission bits.
    """

    def __init__(self, field: str, path: Path, mode: int) -> None:
        super().__init__(
            field,
            f"{path} has mode {mode:04o}; it must not be accessible to group or others (chmod 600)",
        )
        self.path = path
        self.mode = mode


def _read_secret_file(field: str, path: Path) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise CredentialsError(field, f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CredentialsError(field, f"{path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if os.name != "nt" and mode & _PRIVATE_MASK:
        raise InsecureSecretFileError(field, path, mode)
    if info.st_size > _MAX_SECRET_FILE_BYTES:
        raise CredentialsError(field, f"{path} is larger than {_MAX_SECRET_FILE_BYTES} bytes")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(field, f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise CredentialsError(field, f"{path} does not hold ASCII text") from None
    return text.strip()


def _resolve(
    env: Mapping[str, str], value_var: str, file_var: str, file_arg: str | Path | None
) -> str:
    """The credential from exactly one source, stripped and non-empty."""
    inline = env.get(value_var)
    file_source: tuple[str, Path] | None = None
    if file_arg is not None:
        file_source = (file_var.removeprefix("SCALPER_").lower(), Path(file_arg))
    elif env.get(file_var):
        file_source = (file_var, Path(env[file_var]))
    if inline is not None and file_source is not None:
        raise CredentialsError(
            value_var, f"both {value_var} and {file_source[0]} are set; keep only one"
        )
    if file_source is not None:
        value = _read_secret_file(*file_source)
        field = file_source[0]
    elif inline is not None:
        value = inline.strip()
        field = value_var
    else:
        raise CredentialsError(value_var, f"not set (set {value_var} or {file_var})")
    if not value:
        raise CredentialsError(field, "is empty")
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise CredentialsError(field, "must be printable ASCII without whitespace")
    return value


def load_credentials(
    env: Mapping[str, str],
    *,
    key_file: str | Path | None = None,
    secret_file: str | Path | None = None,
) -> ApiCredentials:
    """Read the API key and secret (see the module docstring for the sources and rules).

    Args:
        env: the environment to read (pass ``os.environ``; tests pass a dict).
        key_file: a file holding the API key; overrides ``SCALPER_API_KEY_FILE``.
        secret_file: a file holding the secret; overrides ``SCALPER_API_SECRET_FILE``.

    Returns:
        The credentials; their ``repr`` shows four characters of the key and no secret.

    Raises:
        CredentialsError: a value is missing, empty, set twice or unreadable.
        InsecureSecretFileError: a secret file is accessible to group or others.
    """
    api_key = _resolve(env, API_KEY_ENV, API_KEY_FILE_ENV, key_file)
    secret = _resolve(env, API_SECRET_ENV, API_SECRET_FILE_ENV, secret_file)
    try:
        return ApiCredentials(api_key=api_key, secret=secret.encode("ascii"))
    except SigningError as exc:
        raise CredentialsError(exc.field, exc.reason) from None
