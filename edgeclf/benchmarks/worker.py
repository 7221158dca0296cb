"""One benchmarked format in its own process: ``python -m edgeclf.benchmarks.worker SPEC_JSON``.

A separate process per format keeps each one's load time and peak memory its own, and lets the
coordinator (:mod:`edgeclf.benchmarks.runner`) interleave formats: every worker loads its model, scores the
test images once, then waits on stdin for short timing bursts, so the formats take turns on the CPU
and a burst of load from another process on the machine hits all of them alike.

Protocol, one JSON object per line: the worker first answers ``{"ready": {...}}`` (or
``{"error": "..."}``), then for each command ``{"cmd": "invoke", "n": N}``,
``{"cmd": "e2e", "n": N}`` or ``{"cmd": "quit"}`` one answer. The answers go to a private copy of
the original stdout; the process's own stdout is pointed at stderr so interpreter chatter (TFLite's
"Created XNNPACK delegate" lines, TensorFlow's logs) never corrupts the protocol.

Every artifact goes through :class:`edgeclf.runtime.classifier.Classifier`, the same object users run;
only the Keras reference row touches Keras, imported here and nowhere else in the benchmarks.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edgeclf.runtime.errors import first_line


def _protocol_stream() -> TextIO:
    """Keep the real stdout for the protocol; send everything else printed to stderr."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "w", buffering=1, encoding="utf-8")


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: ``VmHWM`` of its own address space; ``ru_maxrss``
    would also count the coordinator's pages at fork time (it survives ``exec``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _timed(function: Any, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


class ArtifactRunner:
    """An exported file, loaded and run through the production :class:`Classifier`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from edgeclf.runtime.classifier import Classifier, ClassifierOptions

        self.files = [Path(p) for p in spec.get("files") or ()]
        options = ClassifierOptions(format=spec["format"], backend=spec.get("backend"), threads=spec.get("threads"))
        frame = _first_frame(spec)
        start = time.perf_counter()
        self.clf = Classifier.from_run(spec["run_dir"], options=options)
        self.prepared = self.clf.prepare(frame if frame is not None else np.zeros(self.clf.spec.shape, np.uint8))
        self.clf.session.run(self.prepared)  # first inference: part of "load"
        self.load_ms = (time.perf_counter() - start) * 1000.0
        self.info = {
            "backend": self.clf.backend_name,
            "file": self.clf.path.name,
            "size_bytes": self.clf.path.stat().st_size,
            "threads": self.clf.session.threads,
            "status": self.clf.artifact.status if self.clf.artifact else "passed",
            "input": {"dtype": self.clf.session.inputs[0].dtype, "shape": list(self.clf.session.inputs[0].shape)},
        }

    def scores(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        parts = [self.clf.scores(np.array(images[i : i + batch])) for i in range(0, len(images), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.clf.labels)), np.float32)

    def warm_up(self, n: int) -> None:
        self.clf.session.set_input(self.prepared)
        for _ in range(n):
            self.clf.session.invoke()

    def time_invoke(self, n: int) -> list[float]:
        session = self.clf.session
        session.set_input(self.prepared)
        return _timed(session.invoke, n)

    def time_e2e(self, n: int) -> list[float]:
        clf, files = self.clf, self.files
        counter = iter(range(n))

        def one() -> None:
            path = files[next(counter) % len(files)]
            clf.scores(clf.preprocess(path))

        return _timed(one, n) if files else []


class KerasRunner:
    """The trained ``model.keras``: the reference row (TensorFlow imported here only)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from edgeclf.kerasio import import_tensorflow, load_run_model
        from edgeclf.runtime.manifest import Manifest, run_file

        self.manifest = Manifest.load(spec["run_dir"])
        self.files = [Path(p) for p in spec.get("files") or ()]
        path = run_file(spec["run_dir"], self.manifest.model_file)
        frame = _first_frame(spec)
        if frame is None:
            frame = np.zeros(self.manifest.input.shape, np.uint8)
        start = time.perf_counter()
        tf, keras = import_tensorflow()
        threads = spec.get("threads")
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf = tf
        self.model = load_run_model(spec["run_dir"], self.manifest)
        self.forward = tf.function(lambda x: self.model(x, training=False))
        self.frame = tf.constant(frame[None])
        self.forward(self.frame).numpy()
        self.load_ms = (time.perf_counter() - start) * 1000.0
        self.info = {
            "backend": f"keras {keras.__version__} / tensorflow {tf.__version__}",
            "file": path.name,
            "size_bytes": path.stat().st_size,
            "threads": int(threads) if threads else None,
            "status": "reference",
            "flops": _count_flops(self.model),
        }

    def _scores(self, raw: Any) -> np.ndarray:
        from edgeclf.runtime.metrics import to_scores

        return to_scores(np.asarray(raw), self.manifest.output_activation)

    def scores(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        parts = [
            self._scores(self.forward(self.tf.constant(np.array(images[i : i + batch]))).numpy())
            for i in range(0, len(images), batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.manifest.labels)), np.float32)

    def warm_up(self, n: int) -> None:
        for _ in range(n):
            self.forward(self.frame).numpy()

    def time_invoke(self, n: int) -> list[float]:
        frame, forward = self.frame, self.forward
        return _timed(lambda: forward(frame).numpy(), n)

    def time_e2e(self, n: int) -> list[float]:
        from edgeclf.runtime.preprocess import preprocess

        files, spec, tf = self.files, self.manifest.input, self.tf
        counter = iter(range(n))

        def one() -> None:
            path = files[next(counter) % len(files)]
            self._scores(self.forward(tf.constant(preprocess(path, spec)[None])).numpy())

        return _timed(one, n) if files else []


def _count_flops(model: Any) -> int | None:
    try:
        from edgeclf.trainer.presets import count_flops
    except ImportError:
        return None
    try:
        return int(count_flops(model))
    except Exception:  # a custom layer count_flops does not know: no GFLOP/s column, not a failure
        return None


def _first_frame(spec: dict[str, Any]) -> np.ndarray | None:
    images = spec.get("images")
    if not images:
        return None
    array = np.load(images, mmap_mode="r")
    return np.array(array[0]) if len(array) else None


def main(argv: list[str] | None = None) -> int:
    """Run one worker (see the module docstring for the protocol)."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    out = _protocol_stream()

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        runner: ArtifactRunner | KerasRunner = KerasRunner(spec) if spec["kind"] == "keras" else ArtifactRunner(spec)
        ready: dict[str, Any] = dict(runner.info, load_ms=runner.load_ms)
        if spec.get("images") and spec.get("scores_out"):
            images = np.load(spec["images"], mmap_mode="r")  # batches are read as scored: RSS stays the model's
            start = time.perf_counter()
            np.save(spec["scores_out"], runner.scores(images))
            ready["scoring_s"] = time.perf_counter() - start
        runner.warm_up(int(spec.get("warmup", 10)))
    except Exception as error:  # reported as this row's status ("could not run: ..."), never a crash
        message = first_line(error)
        send({"error": message if _is_domain(error) else f"{type(error).__name__}: {message}"})
        return 1
    send({"ready": ready})
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "invoke":
            # Process CPU time over the burst: the work done per frame, whatever the machine's load
            # (wall time also counts the moments another process had the cores).
            cpu = time.process_time()
            times = runner.time_invoke(int(command["n"]))
            send({"times": times, "cpu_ms": (time.process_time() - cpu) * 1000.0})
        elif command["cmd"] == "e2e":
            send({"times": runner.time_e2e(int(command["n"]))})
        elif command["cmd"] == "quit":
            send({"peak_rss_mb": _peak_rss_mb()})
            break
    return 0


def _is_domain(error: BaseException) -> bool:
    from edgeclf.runtime.errors import EdgeclfError

    return isinstance(error, EdgeclfError)


if __name__ == "__main__":
    sys.exit(main())
