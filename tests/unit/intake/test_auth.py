"""intake.auth: bearer tokens from files, current and previous, reloaded when the files change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from incidentops.intake.auth import AuthResult, Tokens


def write(path: Path, text: str) -> None:
    """Replace the file as the kubelet does a Secret volume: write aside, then rename over it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    current, previous = tmp_path / "token", tmp_path / "previous"
    write(current, "s3cret-current\n")
    write(previous, "s3cret-previous")
    return current, previous


def test_current_and_previous_tokens_are_accepted(files: tuple[Path, Path]) -> None:
    tokens = Tokens(*files)
    assert tokens.check("Bearer s3cret-current") is AuthResult.OK
    assert tokens.check("Bearer s3cret-previous") is AuthResult.OK
    assert tokens.check("bearer   s3cret-current ") is AuthResult.OK, "scheme case and spaces do not matter"


@pytest.mark.parametrize(
    ("header", "result"),
    [
        (None, AuthResult.MISSING),
        ("", AuthResult.MISSING),
        ("Bearer", AuthResult.MISSING),
        ("Bearer ", AuthResult.MISSING),
        ("Basic czNjcmV0LWN1cnJlbnQ=", AuthResult.MISSING),
        ("s3cret-current", AuthResult.MISSING),
        ("Bearer s3cret", AuthResult.INVALID),
        ("Bearer s3cret-current-and-more", AuthResult.INVALID),
        ("Bearer S3CRET-CURRENT", AuthResult.INVALID),
        ("Bearer \udcff", AuthResult.INVALID),
    ],
)
def test_wrong_or_missing_tokens(files: tuple[Path, Path], header: str | None, result: AuthResult) -> None:
    assert Tokens(*files).check(header) is result


def test_rotation_takes_effect_without_a_restart(files: tuple[Path, Path]) -> None:
    current, previous = files
    tokens = Tokens(current, previous)
    assert tokens.check("Bearer s3cret-current") is AuthResult.OK
    # Rotate: the old current becomes previous, a new current appears.
    write(previous, "s3cret-current")
    write(current, "s3cret-next")
    assert tokens.check("Bearer s3cret-next") is AuthResult.OK
    assert tokens.check("Bearer s3cret-current") is AuthResult.OK, "senders with the old token still get in"
    assert tokens.check("Bearer s3cret-previous") is AuthResult.INVALID, "the token before that is gone"
    # The rotation ends: previous emptied.
    write(previous, "")
    assert tokens.check("Bearer s3cret-current") is AuthResult.INVALID
    assert tokens.check("Bearer s3cret-next") is AuthResult.OK


def test_no_readable_token_is_unavailable_not_open(tmp_path: Path) -> None:
    tokens = Tokens(tmp_path / "missing")
    assert tokens.configured and not tokens.available()
    assert tokens.check("Bearer anything") is AuthResult.UNAVAILABLE
    assert tokens.check(None) is AuthResult.UNAVAILABLE
    write(tmp_path / "missing", "")
    assert tokens.check("Bearer ") is AuthResult.UNAVAILABLE, "an empty file is no token"
    write(tmp_path / "missing", "late")
    assert tokens.check("Bearer late") is AuthResult.OK, "a file that appears later is picked up"
    assert tokens.available()


def test_only_the_previous_file_configured_still_works(tmp_path: Path) -> None:
    write(tmp_path / "previous", "old")
    tokens = Tokens(tmp_path / "current-missing", tmp_path / "previous")
    assert tokens.check("Bearer old") is AuthResult.OK


def test_unchanged_files_are_not_read_again(files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens(*files)
    tokens.check("Bearer s3cret-current")
    reads = 0
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        nonlocal reads
        reads += 1
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    for _ in range(100):
        tokens.check("Bearer s3cret-current")
    assert reads == 0


def test_no_files_means_not_configured() -> None:
    assert not Tokens(None, None).configured


def test_a_missing_or_empty_previous_file_is_the_normal_case_and_not_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "token", "s3cret")
    tokens = Tokens(tmp_path / "token", tmp_path / "previous")
    with caplog.at_level(logging.DEBUG, logger="incidentops.intake"):
        assert tokens.check("Bearer s3cret") is AuthResult.OK
        write(tmp_path / "previous", "")
        assert tokens.check("Bearer s3cret") is AuthResult.OK
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_missing_current_file_is_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tokens = Tokens(tmp_path / "token", tmp_path / "previous")
    with caplog.at_level(logging.WARNING, logger="incidentops.intake"):
        for _ in range(3):
            assert tokens.check("Bearer x") is AuthResult.UNAVAILABLE
    expected = f"cannot read token file {tmp_path / 'token'}: No such file or directory"
    assert [r.getMessage() for r in caplog.records] == [expected]


def test_an_oversized_previous_file_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "token", "s3cret")
    write(tmp_path / "previous", "x" * 5000)
    with caplog.at_level(logging.WARNING, logger="incidentops.intake"):
        assert Tokens(tmp_path / "token", tmp_path / "previous").check("Bearer " + "x" * 5000) is AuthResult.INVALID
    assert "larger than" in caplog.text
