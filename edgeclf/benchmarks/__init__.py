"""edgeclf's benchmarks: every format of a run, the same images, the same code path, one table.

>>> from benchmarks import BenchmarkConfig, run_benchmark
>>> result = run_benchmark(BenchmarkConfig(run_dir=Path("runs/latest")))   # doctest: +SKIP

Each format runs in its own worker process through :class:`edgeclf.runtime.classifier.Classifier`;
only the Keras reference row imports Keras (in its own worker). Importing this package is cheap.
"""

from edgeclf.benchmarks.config import BenchmarkConfig
from edgeclf.benchmarks.runner import BenchmarkResult, Row, run_benchmark

__all__ = ["BenchmarkConfig", "BenchmarkResult", "Row", "run_benchmark"]
