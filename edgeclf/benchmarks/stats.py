"""Latency statistics for a shared, noisy machine: percentiles, spread, and whether two rows can be ranked.

Pure numpy, no interpreter: unit-tested on synthetic numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Percentiles of one set of timings, in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    p25: float
    p75: float
    minimum: float
    round_p50s: tuple[float, ...] = ()

    @property
    def iqr(self) -> float:
        """Interquartile range (p75 - p25): the spread reported next to each median."""
        return self.p75 - self.p25

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """JSON-ready form."""
        return {
            "n": self.n,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p25": self.p25,
            "p75": self.p75,
            "min": self.minimum,
            "iqr": self.iqr,
            "round_p50s": list(self.round_p50s),
        }


def summarize(times_ms: Sequence[float], rounds: Sequence[Sequence[float]] = ()) -> Summary | None:
    """Summarise timings (ms); ``rounds`` are the same timings split by interleaving round.

    Returns ``None`` for an empty list (a row that could not run).
    """
    values = np.asarray(list(times_ms), dtype=np.float64)
    if values.size == 0:
        return None
    p25, p50, p75, p90, p99 = np.percentile(values, [25, 50, 75, 90, 99])
    per_round = tuple(float(np.median(r)) for r in rounds if len(r))
    return Summary(
        n=int(values.size),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        p25=float(p25),
        p75=float(p75),
        minimum=float(values.min()),
        round_p50s=per_round,
    )


def can_rank(a: Summary, b: Summary, min_consistency: float = 0.8) -> bool:
    """True when ``a`` and ``b`` are clearly apart: their IQRs do not overlap, and, when per-round
    medians exist for both, the faster one was faster in at least ``min_consistency`` of the rounds.
    """
    if a.p75 >= b.p25 and b.p75 >= a.p25:
        return False
    pairs = list(zip(a.round_p50s, b.round_p50s, strict=False))
    if pairs:
        faster_a = sum(x < y for x, y in pairs) / len(pairs)
        if max(faster_a, 1.0 - faster_a) < min_consistency:
            return False
    return True


def unrankable_pairs(named: Sequence[tuple[str, Summary]]) -> list[tuple[str, str]]:
    """Neighbours in the latency ranking (by p50) whose spreads are too wide to tell them apart."""
    ordered = sorted(named, key=lambda item: item[1].p50)
    return [(a, b) for (a, sa), (b, sb) in itertools.pairwise(ordered) if not can_rank(sa, sb)]
