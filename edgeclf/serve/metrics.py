"""Counters and a latency histogram, rendered in Prometheus' text exposition format (version 0.0.4)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

# Seconds. A Pi 4 runs a small int8 model in a few ms and a float one in tens of ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """A cumulative histogram (thread-safe), as Prometheus expects it."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Record one value."""
        with self._lock:
            self.count += 1
            self.sum += value
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self.counts[i] += 1

    def render(self, name: str, help_text: str, labels: Mapping[str, str] | None = None) -> str:
        """The ``# HELP``/``# TYPE`` block and the ``_bucket``/``_sum``/``_count`` samples."""
        base = ",".join(f'{k}="{_escape(v)}"' for k, v in (labels or {}).items())
        sep = "," if base else ""
        with self._lock:
            lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
            for bound, count in zip(self.buckets, self.counts, strict=True):
                lines.append(f'{name}_bucket{{{base}{sep}le="{bound:g}"}} {count}')
            lines.append(f'{name}_bucket{{{base}{sep}le="+Inf"}} {self.count}')
            suffix = f"{{{base}}}" if base else ""
            lines.append(f"{name}_sum{suffix} {self.sum:.6f}")
            lines.append(f"{name}_count{suffix} {self.count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metric(name: str, kind: str, help_text: str, samples: Mapping[tuple[tuple[str, str], ...], float]) -> str:
    """One counter or gauge with its samples, keyed by label tuples (``()`` for none)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples.items():
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")
    return "\n".join(lines) + "\n"
