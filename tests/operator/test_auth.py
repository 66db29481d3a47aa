"""The operator token file: created private, read back, refused when it cannot be trusted."""

import os
import stat
from pathlib import Path

import pytest

from scalper.operator.auth import (
    TokenFileError,
    load_or_create_token,
    parse_bearer,
    token_matches,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_generates_a_private_token_and_later_starts_read_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "operator.token"
    token = load_or_create_token(path)
    assert len(token) >= 43
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) & 0o077 == 0  # the directory made for it is private too
    assert path.read_text().strip() == token
    assert load_or_create_token(path) == token
    # Two fresh files never share a token.
    assert load_or_create_token(tmp_path / "other.token") != token


def test_a_permissive_umask_still_gives_an_owner_only_file(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_token(tmp_path / "t")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "t") == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_a_token_file_others_can_access_is_refused_not_repaired(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "t"
    load_or_create_token(path)
    path.chmod(mode)
    with pytest.raises(TokenFileError, match=f"mode {mode:04o}") as info:
        load_or_create_token(path)
    assert str(path) in str(info.value)
    assert "leaked" in str(info.value)
    assert mode_of(path) == mode  # left for the operator to decide


def test_a_symlinked_token_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    load_or_create_token(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(TokenFileError, match="symlink"):
        load_or_create_token(link)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.mkdir(mode=0o700)
    with pytest.raises(TokenFileError, match="not a regular file"):
        load_or_create_token(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"short\n", b"has spaces in the middle of the token text!!\n", b"\xff" * 40],
)
def test_an_empty_truncated_or_edited_token_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "t"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(TokenFileError, match="valid token"):
        load_or_create_token(path)


def test_bearer_parsing() -> None:
    assert parse_bearer("Bearer abc") == "abc"
    assert parse_bearer("bearer abc") == "abc"
    assert parse_bearer("  BEARER   abc  ") == "abc"
    for bad in (None, "", "Bearer", "Basic abc", "Bearer a b", "abc"):
        assert parse_bearer(bad) is None


def test_token_comparison() -> None:
    token = "A" * 43
    assert token_matches(token, token)
    assert not token_matches(token, None)
    assert not token_matches(token, "")
    assert not token_matches(token, token[:-1])  # a prefix is not the token
    assert not token_matches(token, token + "A")
    assert not token_matches(token, "Ä" * 43)  # non-ASCII is compared, not an error
