"""Tests for madoguchi/data/koto_venue_routes.tsv (町丁目 -> 交付会場 routing table).

The expected table below was transcribed independently from the 004 別紙 table
(/work/shared/seeds/004_a5392a5afc0ce86b.txt, lines 15-139), reading the source
row by row (left, middle, right entry of each text line), whereas the TSV was
written column by column.  Five left-column cells of the source say only
"本庁舎" with no town/chome (lines 65, 83, 117, 119, 121); they cannot be
resolved from the source and are absent from both.
"""

import csv
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TSV_PATH = REPO_ROOT / "madoguchi" / "data" / "koto_venue_routes.tsv"

VENUES = {"honchosha", "sogo", "toyosu"}

H, S, T = "honchosha", "sogo", "toyosu"

# Source line number -> entries on that line (left, middle, right).
# Repeated (town, chome, venue) entries of the source are listed once only
# (first occurrence); the repeats are noted in comments.
EXPECTED = [
    # line 15
    ("清澄", 1, H),
    ("塩浜", 1, T),
    ("北砂", 1, S),
    # line 17
    ("清澄", 2, H),
    ("塩浜", 2, T),
    ("北砂", 2, S),
    # line 19
    ("清澄", 3, H),
    ("枝川", 1, T),
    ("北砂", 3, S),
    # line 21
    ("常盤", 1, H),
    ("枝川", 2, T),
    ("北砂", 4, S),
    # line 23
    ("常盤", 2, H),
    ("枝川", 3, T),
    ("北砂", 5, S),
    # line 25
    ("新大橋", 1, H),
    ("豊洲", 1, T),
    ("北砂", 6, S),
    # line 27
    ("新大橋", 2, H),
    ("豊洲", 2, T),
    ("北砂", 7, S),
    # line 29
    ("新大橋", 3, H),
    ("豊洲", 3, T),
    ("東砂", 1, S),
    # line 31
    ("森下", 1, H),
    ("豊洲", 4, T),
    ("東砂", 2, S),
    # line 33
    ("森下", 2, H),
    ("豊洲", 5, T),
    ("東砂", 3, S),
    # line 35
    ("森下", 3, H),
    ("豊洲", 6, T),
    ("東砂", 4, S),
    # line 37
    ("森下", 4, H),
    ("東雲", 1, T),
    ("東砂", 5, S),
    # line 39
    ("森下", 5, H),
    ("東雲", 2, T),
    ("南砂", 1, H),
    # line 41
    ("平野", 1, H),
    ("有明", 1, T),
    ("南砂", 2, H),
    # line 43
    ("平野", 2, H),
    ("有明", 2, T),
    ("南砂", 5, H),
    # line 45
    ("平野", 3, H),
    ("有明", 3, T),
    ("東砂", 6, H),
    # line 47
    ("平野", 4, H),
    ("有明", 4, T),
    ("東砂", 7, H),
    # line 49
    ("三好", 1, H),
    ("辰巳", 1, T),
    ("東砂", 8, H),
    # line 51 (right: 南砂 2 本庁舎 again -> repeat of line 41)
    ("三好", 2, H),
    ("辰巳", 2, T),
    # line 53
    ("三好", 3, H),
    ("辰巳", 3, T),
    ("南砂", 3, H),
    # line 55
    ("三好", 4, H),
    ("潮見", 1, T),
    ("南砂", 4, H),
    # line 57
    ("白河", 1, H),
    ("潮見", 2, T),
    ("南砂", 6, H),
    # line 59
    ("白河", 2, H),
    ("青海", 1, T),
    ("南砂", 7, H),
    # line 61
    ("白河", 3, H),
    ("青海", 2, T),
    ("新砂", 1, H),
    # line 63
    ("白河", 4, H),
    ("青海", 3, T),
    ("新砂", 2, H),
    # line 65 (left: bare "本庁舎", no town/chome -> left out)
    ("青海", 4, T),
    ("新砂", 3, H),
    # line 67
    ("佐賀", 1, H),
    ("木場", 1, H),
    ("新木場", 1, H),
    # line 69
    ("佐賀", 2, H),
    ("木場", 2, H),
    ("新木場", 2, H),
    # line 71
    ("永代", 1, H),
    ("木場", 3, H),
    ("新木場", 3, H),
    # line 73
    ("永代", 2, H),
    ("木場", 4, H),
    ("新木場", 4, H),
    # line 75
    ("福住", 1, H),
    ("木場", 5, H),
    ("夢の島", 1, H),
    # line 77
    ("福住", 2, H),
    ("木場", 6, H),
    ("夢の島", 2, H),
    # line 79
    ("深川", 1, H),
    ("東陽", 1, H),
    ("夢の島", 3, H),
    # line 81
    ("深川", 2, H),
    ("東陽", 2, H),
    ("若洲", 1, H),
    # line 83 (left: bare "本庁舎" -> left out)
    ("東陽", 3, H),
    ("若洲", 2, H),
    # line 85
    ("門前仲町", 1, H),
    ("東陽", 4, H),
    ("若洲", 3, H),
    # line 87
    ("門前仲町", 2, H),
    ("東陽", 5, H),
    # line 89
    ("富岡", 1, H),
    ("東陽", 6, H),
    # line 91
    ("富岡", 2, H),
    ("東陽", 7, H),
    # line 93 (middle: 南砂 2 本庁舎 again -> repeat of line 41)
    ("牡丹", 1, H),
    # line 95 (middle: 新砂 1 本庁舎 again -> repeat of line 61)
    ("牡丹", 2, H),
    # line 97
    ("牡丹", 3, H),
    ("海の森", 1, H),
    # line 99
    ("古石場", 1, H),
    ("海の森", 2, H),
    # line 101
    ("古石場", 2, H),
    ("海の森", 3, H),
    # line 103
    ("古石場", 3, H),
    ("亀戸", 1, S),
    # line 105
    ("越中島", 1, H),
    ("亀戸", 2, S),
    # line 107
    ("越中島", 2, H),
    ("亀戸", 3, S),
    # line 109
    ("越中島", 3, H),
    ("亀戸", 4, S),
    # line 111
    ("千石", 1, H),
    ("亀戸", 5, S),
    # line 113
    ("千石", 2, H),
    ("亀戸", 6, S),
    # line 115
    ("千石", 3, H),
    ("亀戸", 7, S),
    # line 117 (left: bare "本庁舎" -> left out)
    ("亀戸", 8, S),
    # line 119 (left: bare "本庁舎" -> left out)
    ("亀戸", 9, S),
    # line 121 (left: bare "本庁舎" -> left out)
    ("大島", 1, S),
    # line 123
    ("扇橋", 1, H),
    ("大島", 2, S),
    # line 125
    ("扇橋", 2, H),
    ("大島", 3, S),
    # line 127
    ("扇橋", 3, H),
    ("大島", 4, S),
    # line 129
    ("猿江", 1, H),
    ("大島", 5, S),
    # line 131
    ("猿江", 2, H),
    ("大島", 6, S),
    # line 133
    ("住吉", 1, H),
    ("大島", 7, S),
    # line 135
    ("住吉", 2, H),
    ("大島", 8, S),
    # line 137
    ("毛利", 1, H),
    ("大島", 9, S),
    # line 139
    ("毛利", 2, H),
]

# (town, chome) pairs that the source maps to more than one venue.
EXPECTED_AMBIGUOUS: set[tuple[str, int]] = set()


def _read_rows():
    lines = [line for line in TSV_PATH.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    assert reader.fieldnames == ["town", "chome", "venue"]
    return [(r["town"], int(r["chome"]), r["venue"]) for r in reader]


def test_venue_table_matches_source_exactly():
    """R3.2: every 町丁目 -> venue triple of the 004 別紙 table is in the TSV,
    and the TSV has no row that is not in the table."""
    assert len(EXPECTED) == len(set(EXPECTED)), "expected table has duplicates"
    rows = _read_rows()
    assert len(rows) == len(set(rows)), "TSV has duplicate rows"
    expected, actual = set(EXPECTED), set(rows)
    missing = sorted(expected - actual)
    extra = sorted(actual - expected)
    assert not missing, f"rows missing from TSV: {missing}"
    assert not extra, f"rows in TSV not in source: {extra}"
    assert len(rows) == 153


def test_venue_codes_are_known():
    venues = {venue for _, _, venue in _read_rows()}
    assert venues <= VENUES, venues - VENUES


def test_no_empty_town_or_nonpositive_chome():
    for town, chome, _ in _read_rows():
        assert town.strip() != "" and town == town.strip()
        assert " " not in town and "\u3000" not in town
        assert chome > 0


def test_ambiguous_addresses():
    venues_by_address = defaultdict(set)
    for town, chome, venue in _read_rows():
        venues_by_address[(town, chome)].add(venue)
    ambiguous = {addr for addr, vs in venues_by_address.items() if len(vs) > 1}
    assert ambiguous == EXPECTED_AMBIGUOUS
