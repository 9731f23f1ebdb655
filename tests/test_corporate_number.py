"""法人番号 check digits (DESIGN §4)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.corporate_number import (
    CorporateNumberError,
    check_digit,
    corporate_number,
    validate_corporate_number,
)


@pytest.mark.parametrize("number", ["4011001098993", "2120901007402"])
def test_published_numbers_are_valid(number):
    assert validate_corporate_number(number) == number
    assert corporate_number(number[1:]) == number


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "01100109899",
        "0110010989931",
        "01100109899a",
        "０１１００１０９８９９３",
        "01100109899 ",
    ],
)
def test_registered_numbers_must_be_12_ascii_digits(bad):
    with pytest.raises(CorporateNumberError) as info:
        check_digit(bad)
    assert info.value.code == "CORPORATE_NUMBER_INVALID"


@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.integers(1, 9))
def test_any_wrong_check_digit_is_refused(registered, shift):
    good = corporate_number(registered)
    assert 1 <= int(good[0]) <= 9
    wrong = str((int(good[0]) + shift - 1) % 9 + 1) + registered
    if wrong == good:
        return
    with pytest.raises(CorporateNumberError):
        validate_corporate_number(wrong)


@given(
    st.text(alphabet="0123456789", min_size=12, max_size=12), st.integers(0, 11), st.integers(1, 9)
)
def test_a_single_changed_digit_changes_the_check_digit_or_is_caught(registered, pos, delta):
    # The weights 1 and 2 are both invertible mod 9, so changing one digit by
    # anything but 9 changes the sum mod 9 — except 0<->9 at a weight-1 place.
    digits = list(registered)
    new = (int(digits[pos]) + delta) % 10
    digits[pos] = str(new)
    changed = "".join(digits)
    weight = 1 if (12 - pos) % 2 else 2
    diff = (new - int(registered[pos])) * weight
    assert (check_digit(changed) == check_digit(registered)) == (diff % 9 == 0)
