"""予約管理番号 check digit (R1.4)."""

from __future__ import annotations

import random

import pytest

from madoguchi import numbers
from madoguchi.numbers import InvalidReservationNumber

SAMPLE = 400


@pytest.fixture(scope="module")
def many() -> list[str]:
    rng = random.Random(20260401)
    made = [numbers.make("".join(rng.choice("0123456789") for _ in range(11))) for _ in range(SAMPLE)]
    generated = [numbers.generate() for _ in range(SAMPLE)]
    # Edge bodies: all zeros, all nines, every repeated digit.
    edges = [numbers.make(d * 11) for d in "0123456789"]
    return made + generated + edges


def _reason(text: str) -> str | None:
    try:
        numbers.parse(text)
    except InvalidReservationNumber as exc:
        return exc.reason
    return None


def test_generated_numbers_are_valid(many):
    """R1.4: every generated number is 12 ASCII digits and passes its check digit."""
    assert len(set(many)) > 2 * SAMPLE - 5  # really many different numbers
    for number in many:
        assert len(number) == numbers.LENGTH == 12
        assert number.isascii() and number.isdigit()
        assert numbers.is_valid(number)
        assert numbers.parse(number) == number
        assert numbers.check_digit(number[:-1]) == number[-1]


def test_every_single_digit_substitution_is_rejected(many):
    """R1.4: a mistyped number (any one digit wrong) is rejected before any look-up."""
    checked = 0
    for number in many:
        for i, original in enumerate(number):
            for digit in "0123456789":
                if digit == original:
                    continue
                typo = number[:i] + digit + number[i + 1 :]
                assert _reason(typo) == "check_digit", (number, typo)
                assert not numbers.is_valid(typo)
                checked += 1
    assert checked == len(many) * 12 * 9


def test_every_adjacent_transposition_is_rejected(many):
    """R1.4: two neighbouring digits swapped (when they differ) are rejected."""
    checked = 0
    for number in many:
        for i in range(numbers.LENGTH - 1):
            a, b = number[i], number[i + 1]
            if a == b:
                continue
            swapped = number[:i] + b + a + number[i + 2 :]
            assert _reason(swapped) == "check_digit", (number, swapped)
            checked += 1
    assert checked > len(many) * 8


def test_damm_table_detects_every_error_from_any_state():
    """R1.4: the check table itself guarantees detection, whatever digits came before: each row and
    column is a permutation (single errors propagate) and a[a[c][x]][y] = a[a[c][y]][x] only if x = y
    (adjacent swaps), with a zero diagonal."""
    table = numbers._DAMM
    digits = range(10)
    for state in digits:
        assert sorted(table[state]) == list(digits)
        assert sorted(table[row][state] for row in digits) == list(digits)
        assert table[state][state] == 0
        for x in digits:
            for y in digits:
                if x != y:
                    assert table[table[state][x]][y] != table[table[state][y]][x], (state, x, y)


@pytest.mark.parametrize(
    "typed",
    [
        "{n}",
        "{d}",
        "{g0} {g1} {g2}",
        "{g0}\u3000{g1}\u3000{g2}",
        " {n} ",
        "{w}",
        "{wg0}－{wg1}－{wg2}",
        "{g0}‐{g1}−{g2}",
        "{g0}ー{g1}ー{g2}",
        "{g0}\t{g1}\n{g2}",
    ],
)
def test_full_width_digits_spaces_and_hyphens_are_accepted(many, typed):
    """R1.4: the number as people type or scan it — full width, spaces, hyphens — is accepted."""
    full = str.maketrans("0123456789", "０１２３４５６７８９")
    for number in many[:50]:
        groups = [number[0:4], number[4:8], number[8:12]]
        text = typed.format(
            n=number,
            d=numbers.display(number),
            w=number.translate(full),
            g0=groups[0],
            g1=groups[1],
            g2=groups[2],
            wg0=groups[0].translate(full),
            wg1=groups[1].translate(full),
            wg2=groups[2].translate(full),
        )
        assert numbers.parse(text) == number, text
        assert numbers.is_valid(text)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "12345678901", "1234567890123", "1234-5678-901", "1234567890ab", "予約番号", "١٢٣٤٥٦٧٨٩٠١٢"],
)
def test_wrong_length_or_not_digits_gives_reason_length(text):
    """R1.4: a number of the wrong length (or not made of digits) is refused with reason 'length'."""
    assert _reason(text) == "length"
    assert not numbers.is_valid(text)


def test_one_digit_too_many_or_too_few_is_rejected(many):
    """R1.4: a dropped or doubled digit is refused (length), never looked up."""
    for number in many[:100]:
        assert _reason(number[:-1]) == "length"
        assert _reason(number[1:]) == "length"
        assert _reason(number + number[-1]) == "length"
        assert _reason(number[:5] + number[5] + number[5:]) == "length"


def test_make_rejects_a_bad_body():
    with pytest.raises(ValueError):
        numbers.make("1234567890")
    with pytest.raises(ValueError):
        numbers.make("1234567890a")
    assert numbers.make("12345678901") == "12345678901" + numbers.check_digit("12345678901")


def test_display_groups_four_four_four(many):
    """R1.4: the number is shown 4-4-4 for reading aloud, and the grouped form parses back."""
    assert numbers.display("123456789012") == "1234-5678-9012"
    for number in many[:100]:
        shown = numbers.display(number)
        assert [len(part) for part in shown.split("-")] == [4, 4, 4]
        assert shown.replace("-", "") == number
        assert numbers.parse(shown) == number
