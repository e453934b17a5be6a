"""parse_duration / format_duration: Go durations with the units h, m, s and ms."""

from __future__ import annotations

import datetime
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentops.api.common import DURATION_PATTERN, format_duration, parse_duration

td = datetime.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", td(0)),
        ("0ms", td(0)),
        ("90s", td(seconds=90)),
        ("15m", td(minutes=15)),
        ("4h", td(hours=4)),
        ("48h", td(hours=48)),
        ("168h", td(days=7)),
        ("1h30m", td(hours=1, minutes=30)),
        ("1h30m15s250ms", td(hours=1, minutes=30, seconds=15, milliseconds=250)),
        ("250ms", td(milliseconds=250)),
        ("1.5h", td(minutes=90)),
        ("0.5s", td(milliseconds=500)),
        ("1.5ms", td(microseconds=1500)),
        ("1m1m", td(minutes=2)),  # Go adds repeated units up, so do we
        ("2562047h", td(hours=2562047)),
    ],
)
def test_parses(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "15",
        "1d",
        "1w",
        "-5m",
        "+5m",
        "5 m",
        " 5m",
        "5m ",
        "1h 30m",
        "5M",
        "1us",
        "1ns",
        ".5h",
        "5.h",
        "1e3s",
        "h",
        "PT15M",
        "2562048h",  # beyond Go's int64 nanoseconds
        "9" * 30 + "h",
        "1h" * 17,  # longer than the 32 characters the CRD allows
    ],
)
def test_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_refuses_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_duration(15)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (td(0), "0s"),
        (td(seconds=90), "1m30s"),
        (td(hours=1, minutes=30), "1h30m"),
        (td(days=2), "48h"),
        (td(seconds=1, milliseconds=250), "1.25s"),
        (td(microseconds=1), "0.000001s"),
        (td(hours=1, seconds=5), "1h5s"),
    ],
)
def test_formats(delta: datetime.timedelta, text: str) -> None:
    assert format_duration(delta) == text


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(td(seconds=-1))


@given(st.timedeltas(min_value=td(0), max_value=td(days=100_000)))
def test_round_trip(delta: datetime.timedelta) -> None:
    text = format_duration(delta)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration(text) == delta


_UNITS = {"h": td(hours=1), "m": td(minutes=1), "s": td(seconds=1), "ms": td(milliseconds=1)}


@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from(sorted(_UNITS))), min_size=1, max_size=5))
def test_sum_of_terms(terms: list[tuple[int, str]]) -> None:
    text = "".join(f"{value}{unit}" for value, unit in terms)
    assert parse_duration(text) == sum((value * _UNITS[unit] for value, unit in terms), td(0))


@given(st.from_regex(DURATION_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 32))
def test_everything_the_pattern_admits_parses_or_overflows(text: str) -> None:
    try:
        delta = parse_duration(text)
    except ValueError as exc:
        assert "out of range" in str(exc)
    else:
        assert delta >= td(0)


@given(st.text(max_size=12))
def test_anything_else_is_refused_with_value_error(text: str) -> None:
    if re.fullmatch(DURATION_PATTERN, text):
        parse_duration(text)
    else:
        with pytest.raises(ValueError):
            parse_duration(text)
