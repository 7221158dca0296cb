"""The state one ``edgeclf serve`` process shares between its camera thread and its HTTP handlers.

One model is loaded once. Frames and requests share it through :class:`SharedClassifier` (inference
under one lock; decoding outside it). The camera thread never waits for a client: it overwrites a
single latest-frame slot, and each event-stream client has a small queue whose oldest event is
dropped when it is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.runtime.board import read_board
from edgeclf.runtime.camera import CameraOptions, FrameResult, FrameSource, run_camera, source_factory
from edgeclf.runtime.classifier import Classifier, Prediction
from edgeclf.runtime.notify import Notifier
from edgeclf.runtime.preprocess import load_image
from edgeclf.runtime.stable import LabelChange, LabelStabilizer, StableOptions
from edgeclf.runtime.webhook import Webhook
from edgeclf.serve.metrics import Histogram, render_metric

# Frames are shown at most this wide on the page: enough to see, cheap to encode on a Pi.
PREVIEW_WIDTH = 640


@dataclass(frozen=True)
class ServeOptions:
    """How ``edgeclf serve`` runs (built by the command line).

    Attributes:
        host, port: where to listen (``127.0.0.1`` unless asked otherwise).
        token: when set, every endpoint but ``/healthz`` needs it (header or ``?token=``).
        max_body: largest accepted upload in bytes (larger → 413).
        read_timeout: seconds a client gets to send its whole request body (slower → 408).
        max_pending: classify requests allowed to wait for the model at once (more → 503).
        max_streams: event-stream clients at once (more → 503).
        source: camera/video/stream for the live page; ``None`` serves an upload page.
        camera: the frame loop's :class:`CameraOptions`.
        stable: smoothing and hold of the announced label.
        max_fps: read at most this many frames a second (``None``: as fast as they come).
        loop: start a video file again at its end.
        on_change: print each label change as a JSON line on stdout.
        webhook: POST each label change here.
        board_root: where sysfs is (``/``; a fake tree in tests).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_body: int = 8 * 1024 * 1024
    read_timeout: float = 10.0
    max_pending: int = 32
    max_streams: int = 16
    source: str | None = None
    camera: CameraOptions = field(default_factory=CameraOptions)
    stable: StableOptions = field(default_factory=StableOptions)
    max_fps: float | None = None
    loop: bool = False
    on_change: bool = False
    webhook: str | None = None
    board_root: str = "/"


class SharedClassifier:
    """A :class:`Classifier` usable from several threads: inference runs under one lock."""

    def __init__(self, classifier: Classifier) -> None:
        self.inner = classifier
        self.lock = threading.Lock()
        self.labels = classifier.labels

    def preprocess(self, source: Any, color_order: str = "RGB") -> np.ndarray:
        return self.inner.preprocess(source, color_order=color_order)  # thread-safe: no interpreter

    def scores(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.inner.scores(batch)

    def predictions(
        self, scores: np.ndarray, top_k: int | None = None, threshold: float | None = None
    ) -> list[Prediction]:
        """:meth:`Classifier.predictions` (numpy only, no interpreter: needs no lock)."""
        return self.inner.predictions(scores, top_k, threshold)

    def classify(self, source: Any) -> list[Prediction]:
        """Like :meth:`Classifier.classify` with the options' top-k and threshold (and ``unknown``)."""
        return self.predictions(self.scores(self.preprocess(source))[0])


class PacedSource(FrameSource):
    """Wraps a source: stops when asked, reads at most ``max_fps``, and restarts a video file when ``loop``."""

    def __init__(self, inner: FrameSource, stop: threading.Event, max_fps: float | None, loop: bool) -> None:
        self.inner, self._stop, self.loop = inner, stop, loop
        self.period = 1.0 / max_fps if max_fps else 0.0
        self.name, self.color_order = inner.name, inner.color_order
        self._next = 0.0

    @property
    def finite(self) -> bool:  # type: ignore[override]
        return self._stop.is_set() or (self.inner.finite and not self.loop)

    def open(self) -> None:
        self.inner.open()

    def read(self) -> np.ndarray | None:
        if self._stop.is_set():
            return None
        wait = self._next - time.monotonic()
        if wait > 0 and self._stop.wait(wait):
            return None
        self._next = max(self._next + self.period, time.monotonic())
        frame = self.inner.read()
        if frame is None and self.loop and self.inner.finite and not self._stop.is_set():
            self.inner.close()
            self.inner.open()
            frame = self.inner.read()
        return frame

    def close(self) -> None:
        self.inner.close()


def encode_jpeg(frame: np.ndarray, color_order: str) -> bytes:
    """A preview JPEG of a camera frame (RGB, at most :data:`PREVIEW_WIDTH` wide)."""
    image = load_image(frame, color_order=color_order)
    if image.width > PREVIEW_WIDTH:
        image = image.resize((PREVIEW_WIDTH, round(image.height * PREVIEW_WIDTH / image.width)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


class Service:
    """Everything the routes read and the frame loop writes."""

    def __init__(self, classifier: Classifier, options: ServeOptions, notifier: Notifier | None = None) -> None:
        self.classifier = classifier
        self.shared = SharedClassifier(classifier)
        self.options = options
        self.notifier = notifier or Notifier()
        self.started = time.time()
        # The open-set decision (--threshold auto) is taken on the smoothed scores, not the raw ones.
        self.stabilizer = LabelStabilizer(classifier.labels, options.stable, predict=classifier.predictions)
        self.latest: dict[str, Any] | None = None
        self.latest_jpeg: bytes | None = None
        self.changes: deque[dict[str, Any]] = deque(maxlen=20)
        self.frames = 0
        self.fps = 0.0
        self.last_error: str | None = None
        self.errors = 0
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency = Histogram()
        self.pending = 0
        self.verify: dict[str, Any] | None = None
        self.camera_summary: dict[str, Any] | None = None
        self.fatal: str | None = None
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self.webhook = Webhook(options.webhook, on_event=self.report) if options.webhook else None

    # -- events --------------------------------------------------------------------------------

    def report(self, message: str) -> None:
        """A problem worth showing in /healthz and the journal (one line on stderr)."""
        self.last_error = message
        print(message, file=sys.stderr, flush=True)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]] | None:
        """A new event-stream queue, or ``None`` when :attr:`ServeOptions.max_streams` are open."""
        if len(self._subscribers) >= self.options.max_streams:
            return None
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=32)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, event: dict[str, Any]) -> None:  # on the event loop
        for queue in list(self._subscribers):
            if queue.full():  # a slow client loses its oldest event, never blocks anyone
                queue.get_nowait()
            queue.put_nowait(event)

    def announce(self, change: LabelChange) -> None:
        """Record a label change and hand it to every consumer (page, --on-change, webhook)."""
        event = change.to_dict()
        self.changes.append(event)
        if self.options.on_change:
            print(json.dumps(event), flush=True)
        if self.webhook is not None:
            self.webhook.send(event)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._publish, event)

    # -- inference -----------------------------------------------------------------------------

    def record_classification(self, predictions: list[Prediction], ms: float, source: str) -> None:
        """Count one classified upload and make it the latest result when there is no camera."""
        self.latency.observe(ms / 1000.0)
        if self.options.source is None:
            top = predictions[0] if predictions else None
            with self._state_lock:
                self.latest = {
                    "source": source,
                    "label": top.label if top else None,
                    "score": None if top is None else round(top.score, 6),
                    "predictions": [p.to_dict() for p in predictions],
                    "latency_ms": round(ms, 2),
                    "time": round(time.time(), 3),
                }

    def on_frame(self, result: FrameResult) -> None:
        """Called by the frame loop for every classified frame."""
        self.notifier.ping()
        self.latency.observe(result.latency_ms / 1000.0)
        scores = result.scores if result.scores is not None else np.array([p.score for p in result.predictions])
        asked = self.options.camera.classifier
        predictions, change = self.stabilizer.update(scores, asked.top_k, asked.threshold)
        jpeg = encode_jpeg(result.source_frame, result.color_order) if result.source_frame is not None else None
        top = predictions[0] if predictions else None
        with self._state_lock:
            self.frames = result.classified
            self.fps = result.fps
            if jpeg is not None:
                self.latest_jpeg = jpeg
            self.latest = {
                "frame": result.frame,
                "label": self.stabilizer.current,
                "score": None if top is None else round(top.score, 6),
                "predictions": [{**p.to_dict(), "score": round(p.score, 6)} for p in predictions],
                "raw_label": result.predictions[0].label if result.predictions else None,
                "fps": round(result.fps, 2),
                "latency_ms": round(result.latency_ms, 2),
                "time": round(time.time(), 3),
            }
        if change is not None:
            self.announce(change)

    # -- the camera thread ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, on_fatal: Callable[[], None]) -> None:
        """Start the frame loop (when there is a source) on its own thread."""
        self._loop = loop
        if self.options.source is None:
            return
        make_inner = source_factory(self.options.source, self.options.camera.size)

        def make_source() -> FrameSource:
            return PacedSource(make_inner(), self._stop, self.options.max_fps, self.options.loop)

        def work() -> None:
            try:
                summary = run_camera(self.shared, make_source, self.options.camera, self.on_frame, self.report)  # type: ignore[arg-type]
            except Exception as error:  # a source that never opened: the service cannot do its job
                self.fatal = str(error)
                self.report(f"camera: {error}")
                on_fatal()
                return
            self.camera_summary = summary.to_dict()
            if summary.error and not self._stop.is_set():
                self.fatal = summary.error
                on_fatal()  # exit non-zero: systemd restarts the service

        self._thread = threading.Thread(target=work, name="edgeclf-serve-camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the frame loop and flush the webhook."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.webhook is not None:
            self.webhook.close()

    # -- reports -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What /healthz answers."""
        clf = self.classifier
        board = read_board(Path(self.options.board_root))
        camera_running = self._thread is not None and self._thread.is_alive()
        return {
            "status": "ok" if self.fatal is None else "failing",
            "model": str(clf.path),
            "format": clf.format,
            "backend": clf.backend_name,
            "threads": clf.session.threads,
            "labels": list(clf.labels),
            "source": self.options.source,
            "camera_running": camera_running,
            "uptime_s": round(time.time() - self.started, 1),
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "errors": self.errors,
            "last_error": self.last_error,
            "self_check": self.verify,
            "board": board.to_dict(),
        }

    def metrics(self) -> str:
        """What /metrics answers (Prometheus text format)."""
        board = read_board(Path(self.options.board_root))
        parts = [
            render_metric("edgeclf_frames_total", "counter", "Camera frames classified.", {(): self.frames}),
            render_metric("edgeclf_errors_total", "counter", "Requests or frames that failed.", {(): self.errors}),
            render_metric(
                "edgeclf_requests_total",
                "counter",
                "HTTP requests by route and status code.",
                {(("route", r), ("code", str(c))): n for (r, c), n in sorted(self.requests.items())},
            ),
            render_metric("edgeclf_fps", "gauge", "Classified frames per second, recent.", {(): self.fps}),
            render_metric("edgeclf_uptime_seconds", "gauge", "Seconds since start.", {(): time.time() - self.started}),
            self.latency.render("edgeclf_inference_seconds", "Decode + inference + post-processing time."),
        ]
        if board.cpu_temperature_c is not None:
            parts.append(
                render_metric(
                    "edgeclf_cpu_temperature_celsius", "gauge", "CPU temperature.", {(): board.cpu_temperature_c}
                )
            )
        if board.throttled is not None:
            parts.append(
                render_metric(
                    "edgeclf_throttled", "gauge", "Raspberry Pi firmware throttled flags.", {(): board.throttled}
                )
            )
        return "".join(parts)
