from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clair_common.config import format_go_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("+0", timedelta(0)),
        ("6h", timedelta(hours=6)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1m30.5s", timedelta(seconds=90.5)),
        (".5s", timedelta(milliseconds=500)),
        ("1.s", timedelta(seconds=1)),
        ("-2m", timedelta(minutes=-2)),
        ("10us", timedelta(microseconds=10)),
        ("10\u00b5s", timedelta(microseconds=10)),
        ("10\u03bcs", timedelta(microseconds=10)),
        ("1500ns", timedelta(microseconds=1)),  # below microsecond resolution: truncated
        ("1h1h", timedelta(hours=2)),
        ("2562047h", timedelta(hours=2562047)),
    ],
)
def test_parse_go_duration(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "6", "6x", "h", "1.5", "-", ".s", "1h 30m", " 6h", "6H", "1e3s", "9999999999h", "0.0"],
)
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r'^invalid duration "'):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=6), "6h0m0s"),
        (timedelta(hours=1, minutes=30), "1h30m0s"),
        (timedelta(minutes=1, seconds=30.5), "1m30.5s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(microseconds=2), "2\u00b5s"),
        (timedelta(hours=-6), "-6h0m0s"),
        (timedelta(days=2), "48h0m0s"),
    ],
)
def test_format_go_duration_matches_go(value: timedelta, expected: str) -> None:
    assert format_go_duration(value) == expected


@given(st.timedeltas(min_value=timedelta(days=-10_000), max_value=timedelta(days=10_000)))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert parse_go_duration(format_go_duration(value)) == value
