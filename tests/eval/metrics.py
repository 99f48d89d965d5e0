"""Counting matches and printing precision / recall / F1 tables."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["Counts", "Tally", "print_table"]


@dataclass
class Counts:
    """True positives, false positives and false negatives of one row."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    exact: int = 0

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP), or None with no predictions."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN), or None with no gold items."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r else None


@dataclass
class Tally:
    """Counts per row name."""

    rows: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))

    def total(self, names: list[str]) -> Counts:
        """Micro-averaged counts over the named rows."""
        out = Counts()
        for name in names:
            row = self.rows.get(name, Counts())
            out.tp, out.fp, out.fn, out.exact = (
                out.tp + row.tp,
                out.fp + row.fp,
                out.fn + row.fn,
                out.exact + row.exact,
            )
        return out


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def print_table(title: str, rows: list[tuple[str, Counts, str]]) -> None:
    """Print rows of (name, counts, note) with P, R, F1."""
    print(f"\n{title}")
    print(
        f"  {'type':24s} {'gold':>5s} {'tp':>5s} {'fp':>5s} {'fn':>5s}  "
        f"{'P':>6s} {'R':>6s} {'F1':>6s}  note"
    )
    for name, c, note in rows:
        print(
            f"  {name:24s} {c.tp + c.fn:5d} {c.tp:5d} {c.fp:5d} {c.fn:5d}  "
            f"{_fmt(c.precision)} {_fmt(c.recall)} {_fmt(c.f1)}  {note}"
        )
