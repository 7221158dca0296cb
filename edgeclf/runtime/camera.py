"""Camera and video sources, and the frame loop that classifies them.

Sources (the packages are imported only when a source is opened):

- picamera2 — the Raspberry Pi camera stack (libcamera). OpenCV cannot drive libcamera cameras.
  Frames are asked for in ``RGB888``, which arrives as **B, G, R** bytes; picamera2's default
  ``XRGB8888`` would be 4 channels in B, G, R, X order. The source declares its order and the
  classifier converts at the boundary (:func:`edgeclf.runtime.preprocess.preprocess`'s ``color_order``).
- OpenCV ``VideoCapture`` — a USB camera index (``0``), a video file, or an RTSP/HTTP stream URL.
  OpenCV frames are **BGR**.

The loop (:func:`run_camera`) is glue between two parts: a :class:`SourceSupervisor`, which reads
every frame in a helper thread with a timeout (a camera that stops delivering frames is noticed
instead of hanging), reopens a lost or stalled source with exponential backoff, each attempt
reported, and ends at a video file's end; and :func:`classify_frame`, the per-frame step. Ctrl-C
stops it with a summary.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgeclf.runtime.classifier import Classifier, ClassifierOptions, Prediction
from edgeclf.runtime.errors import CameraError, ConfigError, EdgeclfError, missing_extra

PICAMERA2 = "picamera2"


@dataclass(frozen=True)
class CameraOptions:
    """How the frame loop runs (built by ``edgeclf camera``).

    Attributes:
        source: ``"picamera2"``, a camera index (``"0"``), a video file or a stream URL; ``None``
            means picamera2 when it is importable, else OpenCV camera 0.
        every: classify one frame in ``every`` (the others are read and dropped).
        max_frames: stop after this many classified frames.
        duration: stop after this many seconds.
        classifier: top-k and threshold of each frame's labels (and the rest of how the model is
            loaded and queried): the :class:`ClassifierOptions` the classifier was opened with.
        retries: reconnection attempts in a row before giving up.
        backoff: first wait before reconnecting, in seconds; doubled each attempt up to ``max_backoff``.
        read_timeout: a frame that takes longer than this to arrive counts as a stall.
        open_timeout: the same for opening the source.
        size: requested ``(width, height)`` of camera frames (``None``: the camera's default).
    """

    source: str | None = None
    every: int = 1
    max_frames: int | None = None
    duration: float | None = None
    classifier: ClassifierOptions = field(default_factory=ClassifierOptions)
    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    read_timeout: float = 5.0
    open_timeout: float = 20.0
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"--every must be at least 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError(f"--duration must be positive, got {self.duration}")
        if self.retries < 0 or self.backoff < 0 or self.read_timeout <= 0 or self.open_timeout <= 0:
            raise EdgeclfError("retries and backoff must be >= 0 and timeouts > 0")


class FrameSource(abc.ABC):
    """Something that yields ``H×W×C`` uint8 frames in a declared channel order."""

    name: str = "source"
    color_order: str = "RGB"  # one of edgeclf.runtime.preprocess.FRAME_ORDERS
    finite: bool = False  # True for a video file: no frame means the end, not a disconnect

    @abc.abstractmethod
    def open(self) -> None:
        """Start delivering frames; raise :class:`CameraError` when the source cannot be opened."""

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame, or ``None`` when none came (end of file, disconnect)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device or stream."""


def _import_cv2() -> Any:
    # OpenCV and its FFmpeg print their own warnings ("Stream ends prematurely", "can't open camera
    # by index") on stderr; the loop reports each failure in one line of its own. A user's setting wins.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    try:
        import cv2
    except ImportError:
        raise missing_extra(
            "OpenCV (opencv-python-headless, for USB cameras, video files and streams)", "camera"
        ) from None
    return cv2


class OpenCVSource(FrameSource):
    """``cv2.VideoCapture`` of a camera index, a video file or a stream URL. Frames are BGR."""

    color_order = "BGR"

    def __init__(self, target: int | str, size: tuple[int, int] | None = None) -> None:
        self.target = target
        self.size = size
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.finite = isinstance(target, str) and "://" not in target and Path(target).is_file()
        self._capture: Any = None

    def open(self) -> None:
        cv2 = _import_cv2()
        if isinstance(self.target, str) and "://" not in self.target and not Path(self.target).exists():
            raise CameraError(f"{self.target}: no such video file (pass a camera index, a file or a stream URL)")
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                f"{self.name}: OpenCV cannot open it (no such camera, unsupported file or unreachable URL)"
            )
        if self.size is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._capture = capture

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        return frame if ok and frame is not None else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class Picamera2Source(FrameSource):
    """The Raspberry Pi camera through picamera2, configured for ``RGB888`` (B, G, R bytes)."""

    name = "picamera2"

    # picamera2 format -> byte order of the numpy array it returns (see the module docstring).
    FORMATS: ClassVar[dict[str, str]] = {"RGB888": "BGR", "BGR888": "RGB", "XRGB8888": "BGRX", "XBGR8888": "RGBX"}

    def __init__(self, size: tuple[int, int] | None = None, pixel_format: str = "RGB888") -> None:
        if pixel_format not in self.FORMATS:
            raise CameraError(f"picamera2 format {pixel_format!r} is not supported; use one of {list(self.FORMATS)}")
        self.size = size or (640, 480)
        self.pixel_format = pixel_format
        self.color_order = self.FORMATS[pixel_format]
        self._camera: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(
                "picamera2 is not importable; on Raspberry Pi OS: sudo apt install python3-picamera2 "
                "(and create the venv with --system-site-packages)"
            ) from None
        try:
            camera = Picamera2()
            config = camera.create_preview_configuration(main={"size": self.size, "format": self.pixel_format})
            camera.configure(config)
            camera.start()
        except Exception as error:  # libcamera raises RuntimeError/IndexError when no camera is attached
            raise CameraError(f"picamera2: cannot start the camera ({error})") from None
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            return None
        return self._camera.capture_array("main")

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            camera.stop()
            camera.close()


def picamera2_available() -> bool:
    """True when picamera2 can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec(PICAMERA2) is not None


def source_factory(spec: str | None, size: tuple[int, int] | None = None) -> Callable[[], FrameSource]:
    """A function making a fresh :class:`FrameSource` for ``spec`` (called again on every reconnect)."""
    if spec is None:
        spec = PICAMERA2 if picamera2_available() else "0"
    if spec == PICAMERA2:
        return lambda: Picamera2Source(size)
    target: int | str = int(spec) if spec.isdigit() else spec
    return lambda: OpenCVSource(target, size)


# -- the loop ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameResult:
    """One classified frame."""

    frame: int  # number of frames read so far (1-based), including the ones skipped by --every
    classified: int  # number of frames classified so far (1-based)
    seconds: float  # since the loop started
    predictions: list[Prediction]
    fps: float  # classified frames per second over the last few frames
    latency_ms: float  # preprocess + inference + post-process of this frame
    input: np.ndarray = field(repr=False)  # what the model saw: (H, W, 3) uint8 RGB
    scores: np.ndarray | None = field(default=None, repr=False)  # every label's probability (label stabilizers)
    source_frame: np.ndarray | None = field(default=None, repr=False)  # the frame as read (the live page shows it)
    color_order: str = "RGB"  # channel order of source_frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the frame (without the image)."""
        top = self.predictions[0] if self.predictions else None
        return {
            "frame": self.frame,
            "seconds": round(self.seconds, 3),
            "label": top.label if top else None,
            "score": round(top.score, 6) if top else None,
            "predictions": [p.to_dict() for p in self.predictions],
            "fps": round(self.fps, 2),
            "latency_ms": round(self.latency_ms, 2),
        }


@dataclass
class CameraSummary:
    """What a loop did, printed at the end however it ended."""

    source: str
    frames_read: int = 0
    frames_classified: int = 0
    seconds: float = 0.0
    reconnects: int = 0
    stopped: str = ""  # max-frames, duration, end of stream, interrupted, source failed
    error: str | None = None
    labels: dict[str, int] = field(default_factory=dict)  # top label -> frames
    latency_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def fps(self) -> float:
        """Classified frames per second over the whole run."""
        return self.frames_classified / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        latency = float(np.median(self.latency_ms)) if self.latency_ms else None
        return {
            "summary": True,
            "source": self.source,
            "frames_read": self.frames_read,
            "frames_classified": self.frames_classified,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "median_latency_ms": None if latency is None else round(latency, 2),
            "reconnects": self.reconnects,
            "stopped": self.stopped,
            "error": self.error,
            "labels": self.labels,
        }

    def count(self, predictions: list[Prediction], latency_ms: float) -> None:
        """Record one classified frame: its latency and its top label."""
        self.frames_classified += 1
        self.latency_ms.append(latency_ms)
        if predictions:
            self.labels[predictions[0].label] = self.labels.get(predictions[0].label, 0) + 1

    def line(self) -> str:
        """One human-readable line."""
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items(), key=lambda kv: -kv[1])) or "none"
        text = (
            f"{self.frames_classified} frames classified ({self.frames_read} read) in {self.seconds:.1f} s, "
            f"{self.fps:.1f} fps; top labels: {labels}; reconnects: {self.reconnects}; stopped: {self.stopped}"
        )
        return text  # the error itself was reported when it happened (on_event)


class _Stalled(Exception):
    """A call that did not return in time; ``thread`` is still inside it."""

    def __init__(self, thread: threading.Thread) -> None:
        super().__init__()
        self.thread = thread
        self.source: FrameSource | None = None


def _call_with_timeout(func: Callable[[], Any], timeout: float) -> Any:
    """Run ``func`` in a daemon thread; raise :class:`_Stalled` if it has not returned after ``timeout`` s.

    A stuck driver call (an RTSP read that never returns) cannot be cancelled; its thread is left
    behind as a daemon and the source is replaced, so the loop itself never hangs.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = func()
        except BaseException as error:
            outcome["error"] = error
        finally:
            done.set()

    thread = threading.Thread(target=work, name="edgeclf-camera-call", daemon=True)
    thread.start()
    if not done.wait(timeout):
        raise _Stalled(thread)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _close_quietly(source: FrameSource, timeout: float = 2.0) -> None:
    """Close ``source``, waiting at most ``timeout`` s: closing a stalled capture can block too.

    Waiting matters: a release still running while the interpreter exits aborts the process
    inside OpenCV's threads.
    """

    def close() -> None:
        with contextlib.suppress(Exception):  # a dead source failing to close has nothing to report
            source.close()

    thread = threading.Thread(target=close, name="edgeclf-camera-close", daemon=True)
    thread.start()
    thread.join(timeout)


def _close_after(stalled: _Stalled, source: FrameSource) -> None:
    """Close ``source`` once the stuck call has returned, never while it is still inside the driver:
    releasing an OpenCV capture during a blocked ``read()`` crashes the process."""

    def wait_then_close() -> None:
        stalled.thread.join()
        with contextlib.suppress(Exception):
            source.close()

    threading.Thread(target=wait_then_close, name="edgeclf-camera-close-later", daemon=True).start()


class SourceSupervisor:
    """Keeps a frame source going: opens it, reads with a timeout, reopens a lost one with backoff.

    :meth:`frames` yields ``(frame, color_order)`` until the source ends (a video file), the
    deadline passes, or ``retries`` reconnections in a row have failed; :attr:`stopped` (and
    :attr:`error`) then say why. ``clock`` and ``sleep`` are injectable, so the backoff is testable
    without waiting.
    """

    def __init__(
        self,
        make_source: Callable[[], FrameSource],
        options: CameraOptions,
        on_event: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._make_source = make_source
        self._first: FrameSource | None = make_source()
        self.name = self._first.name
        self.options = options
        self._on_event = on_event
        self._clock = clock
        self._sleep = sleep
        self._current: FrameSource | None = None
        self.reconnects = 0
        self.stopped = ""  # duration, end of stream, source failed
        self.error: str | None = None

    def frames(self, deadline: float | None = None) -> Iterator[tuple[np.ndarray, str]]:
        """Frames in their source's channel order until a stop condition (see the class docstring).

        Raises:
            CameraError: the source could not be opened the first time.
        """
        failures = 0
        while True:
            if deadline is not None and self._clock() >= deadline:
                self.stopped = "duration"
                return
            try:
                frame, color_order = self._read()
            except _EndOfStream:
                self.stopped = "end of stream"
                return
            except _Lost as lost:
                failures += 1
                if failures > self.options.retries:
                    self.stopped = "source failed"
                    self.error = f"{self.name}: {lost}; gave up after {self.options.retries} reconnection attempts"
                    self._on_event(self.error)
                    return
                self._back_off(str(lost), failures, deadline)
                continue
            failures = 0
            yield frame, color_order

    def close(self) -> None:
        """Release the current source (waiting at most a moment: see :func:`_close_quietly`)."""
        if self._current is not None:
            _close_quietly(self._current)
            self._current = None

    def _read(self) -> tuple[np.ndarray, str]:
        """One frame and its channel order, opening the source first if needed; :class:`_Lost` when it failed."""
        if self._current is None:
            self._current = self._connect()
        try:
            frame = _call_with_timeout(self._current.read, self.options.read_timeout)
        except _Stalled as stalled:
            _close_after(stalled, self._current)
            self._current = None
            raise _Lost(f"no frame for {self.options.read_timeout:g} s (stalled)") from None
        except Exception as error:  # a driver error mid-stream is a disconnect, not a crash
            self.close()
            raise _Lost(f"read failed ({type(error).__name__}: {error})") from None
        if frame is None:
            if self._current.finite:
                raise _EndOfStream
            self.close()
            raise _Lost("stopped delivering frames")
        return frame, self._current.color_order

    def _connect(self) -> FrameSource:
        first, self._first = self._first, None
        fresh = first or self._make_source()
        try:
            _call_with_timeout(fresh.open, self.options.open_timeout)
        except _Stalled as stalled:
            _close_after(stalled, fresh)
            if first is not None:
                raise CameraError(f"{self.name}: did not open within {self.options.open_timeout:g} s") from None
            raise _Lost(f"did not reopen within {self.options.open_timeout:g} s") from None
        except CameraError as error:
            if first is not None:
                raise
            raise _Lost(str(error).removeprefix(f"{self.name}: ")) from None
        return fresh

    def _back_off(self, problem: str, failures: int, deadline: float | None) -> None:
        wait = min(self.options.max_backoff, self.options.backoff * 2 ** (failures - 1))
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - self._clock()))
        self._on_event(
            f"{self.name}: {problem}; reconnecting in {wait:.1f} s (attempt {failures}/{self.options.retries})"
        )
        self.reconnects += 1
        self._sleep(wait)


class _Lost(Exception):
    """The source failed (the message says how); it has been closed and will be reopened."""


class _EndOfStream(Exception):
    """A finite source (a video file) has no more frames."""


class FrameRate:
    """Classified frames per second over the last ``window`` frames."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> float:
        """Record a frame at ``now``; return the rate over the window (0.0 until two frames)."""
        self._times.append(now)
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if len(self._times) > 1 and span > 0 else 0.0


def classify_frame(
    classifier: Classifier, frame: np.ndarray, color_order: str, options: ClassifierOptions
) -> tuple[np.ndarray, np.ndarray, list[Prediction], float]:
    """One frame through the model: ``(input, scores, predictions, latency_ms)``.

    The predictions use ``options``' top-k and threshold and the classifier's own open-set
    decision; the latency covers preprocessing, inference and post-processing.
    """
    began = time.perf_counter()
    image = classifier.preprocess(frame, color_order=color_order)
    scores = classifier.scores(image)[0]
    predictions = classifier.predictions(scores, options.top_k, options.threshold)
    return image, scores, predictions, (time.perf_counter() - began) * 1000.0


def run_camera(
    classifier: Classifier,
    make_source: Callable[[], FrameSource],
    options: CameraOptions,
    on_frame: Callable[[FrameResult], None],
    on_event: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CameraSummary:
    """Classify frames from ``make_source()`` until a stop condition; return a summary.

    Stops on ``max_frames`` / ``duration``, at the end of a video file, on Ctrl-C (summary
    ``stopped="interrupted"``), or after ``retries`` failed reconnections in a row (``stopped="source
    failed"`` with ``error`` set). It never raises for a source that fails once it has delivered
    frames; a source that cannot be opened at all raises :class:`CameraError` at once.

    Args:
        classifier: the loaded model.
        make_source: returns a fresh, unopened source (called again for each reconnection).
        options: the loop's :class:`CameraOptions`.
        on_frame: called with each classified frame.
        on_event: called with one line per reconnection attempt or failure.
        clock: monotonic seconds (tests may pass a fake).
        sleep: waits between reconnections (tests may pass a fake).
    """
    supervisor = SourceSupervisor(make_source, options, on_event, clock, sleep)
    summary = CameraSummary(source=supervisor.name)
    start = clock()
    deadline = None if options.duration is None else start + options.duration
    rate = FrameRate()
    try:
        for frame, color_order in supervisor.frames(deadline):
            summary.frames_read += 1
            if (summary.frames_read - 1) % options.every:
                continue
            image, scores, predictions, latency = classify_frame(classifier, frame, color_order, options.classifier)
            now = clock()
            summary.count(predictions, latency)
            on_frame(
                FrameResult(
                    frame=summary.frames_read,
                    classified=summary.frames_classified,
                    seconds=now - start,
                    predictions=predictions,
                    fps=rate.tick(now),
                    latency_ms=latency,
                    input=image,
                    scores=scores,
                    source_frame=frame,
                    color_order=color_order,
                )
            )
            if options.max_frames is not None and summary.frames_classified >= options.max_frames:
                summary.stopped = "max-frames"
                break
        else:
            summary.stopped, summary.error = supervisor.stopped, supervisor.error
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
    finally:
        supervisor.close()
        summary.reconnects = supervisor.reconnects
        summary.seconds = clock() - start
    return summary
