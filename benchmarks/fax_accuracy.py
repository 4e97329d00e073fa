"""Run the FAX reader over the corpus from ``fax_corpus.py`` and print how well it reads (issue 6, item 5).

Per field: the share read right, the share sent to a person (reject rate), and the share right among
those the reader accepted on its own. Speed: pages per second on one core (the process is pinned to
one CPU and OpenCV to one thread; the classifier is trained before the clock starts).

Usage: ``python benchmarks/fax_accuracy.py --corpus /tmp/madoguchi-fax-corpus [--markdown out.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from madoguchi.fax import digits, reader  # noqa: E402

TARGETS = {
    "number": "100 %",
    "marks": "≥ 99.5 %",
    "digits accepted": "≥ 99 % right",
    "speed": "≥ 1 page/s on one core",
}


class Tally:
    def __init__(self) -> None:
        self.total = self.right = self.accepted = self.accepted_right = 0

    def add(self, right: bool, accepted: bool) -> None:
        self.total += 1
        self.right += right
        self.accepted += accepted
        self.accepted_right += right and accepted

    def share(self, part: int, whole: int) -> str:
        return f"{100 * part / whole:.2f} %" if whole else "–"

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.total} | {self.share(self.right, self.total)} | "
            f"{self.share(self.total - self.accepted, self.total)} | {self.share(self.accepted_right, self.accepted)} |"
        )


def evaluate(corpus: Path) -> tuple[dict[str, Tally], Counter, dict]:
    truth = json.loads((corpus / "truth.json").read_text())
    tallies = {name: Tally() for name in ("number", "rotation", "marks", "digits", "phone (whole)")}
    by_style: dict[str, Tally] = {}
    statuses: Counter = Counter()
    inks: dict[bool, list[float]] = {True: [], False: []}  # box ink by truth: marked / blank
    pages = 0
    elapsed = 0.0
    for item in truth["files"]:
        data = (corpus / item["file"]).read_bytes()
        started = time.perf_counter()
        results = reader.read_fax(data)
        elapsed += time.perf_counter() - started
        pages += len(item["pages"])
        if len(results) != len(item["pages"]):
            print(f"{item['file']}: {len(results)} results for {len(item['pages'])} pages", file=sys.stderr)
        for result, page in zip(results, item["pages"], strict=False):
            statuses[result.status.value] += 1
            read = result.status is reader.PageStatus.READ
            tallies["number"].add(result.number == page["number"], read)
            tallies["rotation"].add(result.rotated == page["rotated"], read)
            if not read:
                print(
                    f"{item['file']} p{result.page_index}: {result.status} {result.reason}", file=sys.stderr
                )
                continue
            wanted = {tuple(m) for m in page["marked"]}
            styles = dict(zip(map(tuple, page["marked"]), page["mark_styles"], strict=True))
            for mark in result.marks:
                key = (mark.day.isoformat(), f"{mark.band_start:%H:%M}")
                right = mark.marked == (key in wanted)
                inks[key in wanted].append(mark.ink)
                tallies["marks"].add(right, not mark.needs_review)
                style = styles.get(key, "blank")
                by_style.setdefault(style, Tally()).add(right, not mark.needs_review)
            phone = page["phone"]
            for d in result.phone_digits:
                expected = phone[d.position] if d.position < len(phone) else None
                tallies["digits"].add(d.digit == expected, not d.needs_review)
            whole_accepted = not any(d.needs_review for d in result.phone_digits)
            tallies["phone (whole)"].add(result.phone == phone, whole_accepted)
    for style, tally in sorted(by_style.items()):
        tallies[f"marks: {style}"] = tally
    speed = {"pages": pages, "seconds": elapsed, "pages_per_second": pages / elapsed if elapsed else 0.0}
    speed["ink"] = (
        f"box ink — blank boxes: max {100 * max(inks[False], default=0):.2f} %; "
        f"marked boxes: min {100 * min(inks[True], default=0):.2f} %, "
        f"1st percentile {100 * _percentile(inks[True], 0.01):.2f} %"
    )
    return tallies, statuses, speed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def report(tallies: dict[str, Tally], statuses: Counter, speed: dict, corpus: Path) -> str:
    lines = [
        "| field | n | right | sent to a person | right among accepted |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(tally.row(name) for name, tally in tallies.items()),
        "",
        f"Pages: {speed['pages']} ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}); "
        f"reading took {speed['seconds']:.1f} s on one core: **{speed['pages_per_second']:.1f} pages/s** "
        f"(file decoding included, classifier training excluded).",
        "",
        speed["ink"],
        "",
        f"Thresholds: {reader.DEFAULT_THRESHOLDS}",
        f"Corpus: {corpus} · machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/madoguchi-fax-corpus"))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    started = time.perf_counter()
    digits.classifier()
    print(f"classifier trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    text = report(*evaluate(args.corpus), args.corpus)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
