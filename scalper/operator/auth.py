"""The operator API's bearer token: generated once, kept in an owner-only file.

Theory of operation
-------------------

Mutating operator endpoints (submit, halt, resume) need ``Authorization: Bearer <token>``.
The token is 32 random bytes from :mod:`secrets` (43 URL-safe characters), generated on
the first start into ``token_path`` and read back on every later start, so scripts and
the operator's shell keep working across restarts.

The file is the secret, so its handling is strict:

* **Creation is atomic and private.** ``os.open(O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)``
  either creates a new file that only its owner can read or fails because one exists; a
  concurrent start that loses the race reads the winner's token. ``fchmod`` then sets the
  mode exactly (the umask may only remove bits, never add them, but an exotic umask could
  leave it unreadable by its owner).
* **An existing file must be private.** It is opened without following symlinks and
  checked on the open descriptor (no check-then-open race): a regular file, owned by this
  user, with no group or other permission bits. Anything else is refused with
  :class:`TokenFileError` naming the file and the fix; it is never silently repaired,
  because a token that others could read must be assumed leaked.
* **Its content must be a token** (URL-safe base64, at least 32 characters): an empty or
  truncated file (a crash between create and write) is refused, not used.

Comparison is constant-time (:func:`hmac.compare_digest` over UTF-8 bytes), so the time a
refusal takes does not reveal how much of a guess was right.
"""

import hmac
import os
import re
import secrets
import stat
from pathlib import Path

__all__ = [
    "TOKEN_BYTES",
    "TokenFileError",
    "load_or_create_token",
    "parse_bearer",
    "token_matches",
]

#: Random bytes in a generated token (43 URL-safe characters).
TOKEN_BYTES = 32

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,512}")
_MAX_FILE_BYTES = 4096
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class TokenFileError(RuntimeError):
    """The token file cannot be used safely; the message names the file and the fix."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"operator token file {path}: {problem}")
        self.path = path
        self.problem = problem


def load_or_create_token(path: str | os.PathLike[str]) -> str:
    """Return the operator token, generating it into ``path`` (mode 0600) on first use.

    Args:
        path: the token file; its parent directory is created (mode 0700) if missing.

    Returns:
        The token.

    Raises:
        TokenFileError: the existing file is readable by group or others, not a regular
            file (a symlink included), owned by another user, or holds no valid token.
    """
    token_path = Path(path)
    if not token_path.parent.exists():
        token_path.parent.mkdir(parents=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    try:
        fd = os.open(token_path, flags, 0o600)
    except FileExistsError:
        return _read_token(token_path)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        os.fchmod(fd, 0o600)
        data = (token + "\n").encode("ascii")
        while data:
            written = os.write(fd, data)
            data = data[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def _read_token(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError as exc:
        # ELOOP is what O_NOFOLLOW answers for a symlink.
        raise TokenFileError(
            path, f"cannot be opened safely ({exc.strerror}); is it a symlink?"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenFileError(path, "is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise TokenFileError(
                path,
                f"is accessible by group or others (mode {mode:04o}); the token must be "
                f"considered leaked: delete the file to have a new token generated, or "
                f"run chmod 600 on it if you are sure it was not read",
            )
        getuid = getattr(os, "getuid", None)
        if getuid is not None and info.st_uid != getuid():
            raise TokenFileError(path, f"is owned by uid {info.st_uid}, not by this user")
        raw = os.read(fd, _MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_FILE_BYTES:
        raise TokenFileError(path, f"is larger than {_MAX_FILE_BYTES} bytes; not a token file")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenFileError(path, "does not hold a valid token (not ASCII)") from None
    if not _TOKEN_RE.fullmatch(token):
        raise TokenFileError(
            path,
            "does not hold a valid token (empty, truncated or edited); delete it to have a "
            "new one generated",
        )
    return token


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``.

    The scheme is case-insensitive (RFC 7235); anything but exactly one scheme and one
    token is ``None``.
    """
    if header is None:
        return None
    parts = header.strip().split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a presented token with the expected one."""
    if presented is None:
        return False
    # compare_digest refuses non-ASCII str; bytes make every presented value comparable.
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8", "replace"))
