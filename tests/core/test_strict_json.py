"""loads_strict: the JSON every journal row, replayed payload and API body is read with."""

import json

import pytest

from scalper.core.strict_json import StrictJsonError, loads_strict


def test_plain_json_parses_like_the_standard_library() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {"c": -0.0}}'
    assert loads_strict(text) == json.loads(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(constant: str) -> None:
    with pytest.raises(StrictJsonError, match=f"contains {constant}, which is not JSON"):
        loads_strict(f'{{"price": {constant}}}')


def test_a_number_that_overflows_a_double_is_refused() -> None:
    assert json.loads("[1e999]") == [float("inf")]  # what the standard parser would do
    with pytest.raises(StrictJsonError, match="1e999 overflows to infinity"):
        loads_strict("[1e999]")


def test_a_repeated_key_is_refused_at_any_depth() -> None:
    with pytest.raises(StrictJsonError, match="'qty' appears twice"):
        loads_strict('{"order": {"qty": "1", "qty": "100"}}')


def test_other_bad_json_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="Expecting") as info:
        loads_strict('{"a": }')
    assert not isinstance(info.value, StrictJsonError)
