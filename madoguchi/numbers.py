"""予約管理番号 (reservation numbers): 11 digits and a Damm check digit (R1.4).

The Damm algorithm catches every single-digit error and every swap of two adjacent digits, the two
mistakes people make when they read a number off a notice, so a mistyped number is refused before
any look-up.
"""

from __future__ import annotations

import secrets

from . import normalize

LENGTH = 12

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class InvalidReservationNumber(ValueError):
    """The text is not a well-formed 予約管理番号; ``reason`` is 'length' or 'check_digit'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _damm(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][int(ch)]
    return interim


def check_digit(body: str) -> str:
    return str(_damm(body))


def make(body: str) -> str:
    if len(body) != LENGTH - 1 or not body.isdigit():
        raise ValueError("a reservation number body has 11 digits")
    return body + check_digit(body)


def generate() -> str:
    """A random, valid number (the city's roster normally supplies them; demo data uses this)."""
    return make("".join(secrets.choice("0123456789") for _ in range(LENGTH - 1)))


def parse(text: str) -> str:
    """Normalise what a person typed or a scanner sent; raise InvalidReservationNumber if wrong."""
    value = normalize.digits(text)
    if len(value) != LENGTH or not value.isascii() or not value.isdigit():
        raise InvalidReservationNumber("length")
    if _damm(value) != 0:
        raise InvalidReservationNumber("check_digit")
    return value


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except InvalidReservationNumber:
        return False
    return True


def display(number: str) -> str:
    """Grouped for reading aloud and on paper: 1234-5678-9012."""
    return f"{number[0:4]}-{number[4:8]}-{number[8:12]}"
