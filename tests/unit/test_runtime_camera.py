"""``edgeclf camera`` end to end on video files the tests write (frames of the demo classes).

Uses the exported fixture models (``$EDGECLF_FIXTURE_RUN``) and OpenCV (the ``camera``/``dev`` extra).
Covers: every frame classified as the same pixels read independently, the colour order at the
boundary (the model sees RGB from OpenCV's BGR), a source that fails mid-stream (reconnected with
backoff), one that never comes back (gives up with a summary), a stall (read timeout), --every,
--max-frames, --duration, JSON output and Ctrl-C.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless, the camera extra) is not installed")

from edgeclf.runtime.camera import (  # noqa: E402
    CameraOptions,
    FrameSource,
    OpenCVSource,
    Picamera2Source,
    run_camera,
    source_factory,
)
from edgeclf.runtime.classifier import Classifier, ClassifierOptions  # noqa: E402
from edgeclf.runtime.errors import CameraError  # noqa: E402
from edgeclf.runtime.manifest import Manifest  # noqa: E402
from edgeclf.runtime.preprocess import load_image  # noqa: E402

SIZE = (64, 48)


def _write_video(path, frames_rgb, fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    for frame in frames_rgb:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # OpenCV writes BGR
    writer.release()
    return path


@pytest.fixture(scope="module")
def clf(fixture_run):
    with Classifier.from_run(fixture_run, threads=1) as classifier:
        yield classifier


@pytest.fixture(scope="module")
def demo_video(fixture_run, tmp_path_factory):
    """A video of the fixture's test photos (both demo classes), each shown for 2 frames."""
    manifest = Manifest.load(fixture_run)
    photos = sorted((Path(manifest.data["root"]) / "test").rglob("*.jpg"))
    frames = [np.asarray(load_image(p).resize(SIZE)) for p in photos for _ in range(2)]
    return _write_video(tmp_path_factory.mktemp("video") / "demo.avi", frames)


def _collect(clf, make_source, **options):
    frames, events = [], []
    summary = run_camera(clf, make_source, CameraOptions(**options), frames.append, events.append)
    return summary, frames, events


def _independent_frames(video):
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


class _MjpegServer:
    """A local HTTP MJPEG stream (what an IP camera serves), with a plan per connection.

    ``plan[i]`` is what connection ``i`` gets (the last entry repeats): a number of frames then the
    connection is closed (a disconnect), ``None`` for an endless stream, or ``("stall", n)``: n frames
    then silence with the connection left open (a camera that stops delivering).
    """

    def __init__(self, jpegs, plan, fps=50.0):
        import http.server
        import socketserver
        import threading

        self.jpegs, self.plan, self.delay = jpegs, plan, 1.0 / fps
        self.connections = 0
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                step = server.plan[min(server.connections, len(server.plan) - 1)]
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                count = step[1] if isinstance(step, tuple) else step
                sent = 0
                try:
                    while not server.stop.is_set() and (count is None or sent < count):
                        jpeg = server.jpegs[sent % len(server.jpegs)]
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                        self.wfile.write(head + jpeg + b"\r\n")
                        self.wfile.flush()
                        sent += 1
                        time.sleep(server.delay)
                    if isinstance(step, tuple):
                        server.stop.wait(30)  # stall: connection open, no more frames
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def demo_jpegs(fixture_run):
    """The fixture's test photos (both demo classes) as JPEG bytes, for the stream server."""
    manifest = Manifest.load(fixture_run)
    return [p.read_bytes() for p in sorted((Path(manifest.data["root"]) / "test").rglob("*.jpg"))]


def test_every_frame_of_a_video_file_is_classified(clf, demo_video):
    expected = _independent_frames(demo_video)
    summary, frames, events = _collect(clf, source_factory(str(demo_video)), classifier=ClassifierOptions(top_k=2))
    assert summary.stopped == "end of stream" and summary.error is None and events == []
    assert summary.frames_read == summary.frames_classified == len(expected) == len(frames)
    for result, bgr in zip(frames, expected, strict=True):
        assert np.array_equal(result.input, clf.preprocess(bgr[:, :, ::-1].copy()))
        assert result.predictions == clf.classify(bgr, top_k=2, color_order="BGR")
    assert sum(summary.labels.values()) == len(frames)


def test_the_model_sees_rgb_from_opencvs_bgr_frames(clf, tmp_path):
    red = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    red[..., 0] = 255  # pure red, in RGB
    video = _write_video(tmp_path / "red.avi", [red] * 3)
    source = OpenCVSource(str(video))
    assert source.color_order == "BGR"
    _, frames, _ = _collect(clf, lambda: source)
    seen = frames[0].input.reshape(-1, 3).mean(axis=0)
    assert seen[0] > 200 and seen[1] < 60 and seen[2] < 60, seen  # R high: not swapped to blue


@pytest.mark.parametrize(("pixel_format", "channels"), [("RGB888", 3), ("XRGB8888", 4), ("BGR888", 3)])
def test_picamera2_byte_orders_reach_the_model_as_rgb(clf, pixel_format, channels):
    order = Picamera2Source(pixel_format=pixel_format).color_order
    # how picamera2 lays out a pure red pixel in each format (docs/stack.md: "RGB888" is B, G, R bytes)
    layout = {"RGB888": [0, 0, 255], "XRGB8888": [0, 0, 255, 255], "BGR888": [255, 0, 0]}[pixel_format]
    frame = np.tile(np.array(layout, np.uint8), (48, 64, 1))
    assert frame.shape[2] == channels
    assert clf.preprocess(frame, color_order=order)[0, 0].tolist() == [255, 0, 0]


class _Flaky(FrameSource):
    """A camera (not a file) that delivers ``good`` frames of a video, then fails or stalls."""

    def __init__(self, video, good, mode):
        self.inner = OpenCVSource(str(video))
        self.name, self.color_order, self.finite = "flaky camera", "BGR", False
        self.good, self.mode, self.count = good, mode, 0

    def open(self):
        self.inner.open()

    def read(self):
        self.count += 1
        if self.count > self.good:
            if self.mode == "stall":
                time.sleep(4)  # longer than the read timeout of the test below
            elif self.mode == "raise":
                raise OSError("device disconnected")
            return None
        return self.inner.read()

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("mode", ["none", "raise", "stall"])
def test_a_source_failing_mid_stream_is_reconnected(clf, demo_video, mode):
    total = len(_independent_frames(demo_video))
    made = []

    def make_source():
        # first connection: a camera that dies after 5 frames; reconnecting gets the whole video
        made.append(_Flaky(demo_video, 5, mode) if not made else OpenCVSource(str(demo_video)))
        return made[-1]

    summary, _, events = _collect(clf, make_source, backoff=0.01, read_timeout=1.5)
    assert summary.reconnects == 1 and len(made) == 2
    assert len(events) == 1 and "reconnecting in" in events[0] and "attempt 1/5" in events[0]
    expected = {"none": "stopped delivering frames", "raise": "device disconnected", "stall": "stalled"}[mode]
    assert expected in events[0]
    assert summary.frames_classified == 5 + total
    assert summary.stopped == "end of stream" and summary.error is None


def test_a_source_that_never_comes_back_gives_up_with_a_summary(clf, demo_video):
    class Dead(_Flaky):
        def open(self):
            if self.good < 0:
                raise CameraError("flaky camera: cannot open")
            super().open()

    made = []

    def make_source():
        made.append(Dead(demo_video, 3 if not made else -1, "none"))
        return made[-1]

    summary, frames, events = _collect(clf, make_source, backoff=0.01, retries=3)
    assert len(frames) == 3
    assert summary.stopped == "source failed"
    assert "gave up after 3 reconnection attempts" in summary.error
    assert [e.split("(attempt ")[-1] for e in events[:3]] == ["1/3)", "2/3)", "3/3)"]
    assert "cannot open" in events[1]


def test_a_source_that_cannot_open_fails_at_once(clf, tmp_path):
    with pytest.raises(CameraError, match="no such video file"):
        run_camera(clf, source_factory(str(tmp_path / "absent.avi")), CameraOptions(), lambda r: None)


def test_every_max_frames_and_duration(clf, demo_video):
    summary, frames, _ = _collect(clf, source_factory(str(demo_video)), every=3, max_frames=4)
    assert [f.frame for f in frames] == [1, 4, 7, 10]
    assert summary.stopped == "max-frames" and summary.frames_read == 10

    class Slow(OpenCVSource):
        def read(self):
            time.sleep(0.02)
            frame = super().read()
            if frame is None:  # loop the file, like a camera that never ends
                self.close()
                self.open()
                frame = super().read()
            return frame

    summary, frames, _ = _collect(clf, lambda: Slow(str(demo_video)), duration=0.3)
    assert summary.stopped == "duration" and len(frames) > 0 and summary.seconds >= 0.3


def test_a_stream_that_disconnects_is_reconnected_end_to_end(fixture_run, demo_jpegs):
    pytest.importorskip("typer", reason="the command line needs typer")
    from typer.testing import CliRunner

    from edgeclf.cli import app

    with _MjpegServer(demo_jpegs, plan=[6, None]) as server:
        args = ["camera", str(fixture_run), "--source", server.url, "--json", "--max-frames", "12"]
        result = CliRunner().invoke(app, args)
        connections = server.connections
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]
    assert summary["frames_classified"] == 12 and summary["reconnects"] == 1 and summary["stopped"] == "max-frames"
    assert connections == 2
    assert "stopped delivering frames; reconnecting in 0.5 s (attempt 1/5)" in result.stderr
    assert all(r["label"] in Manifest.load(fixture_run).labels for r in lines[:-1])


def test_a_stream_that_stalls_is_reopened_not_waited_on_forever(clf, demo_jpegs):
    with _MjpegServer(demo_jpegs, plan=[("stall", 4), None]) as server:
        summary, frames, events = _collect(
            clf, source_factory(server.url), max_frames=8, read_timeout=1.5, backoff=0.01
        )
    assert summary.stopped == "max-frames" and len(frames) == 8
    assert summary.reconnects == 1 and "no frame for 1.5 s (stalled)" in events[0]


def _cli_env():
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return env


def test_cli_json_lines_and_summary(fixture_run, demo_video):
    pytest.importorskip("typer", reason="the command line needs typer")
    from typer.testing import CliRunner

    from edgeclf.cli import app

    args = ["camera", str(fixture_run), "--source", str(demo_video), "--json", "--every", "2", "--max-frames", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in lines[:-1]] == [1, 3, 5]
    assert all(r["label"] in Manifest.load(fixture_run).labels for r in lines[:-1])
    assert lines[-1]["summary"] is True and lines[-1]["frames_classified"] == 3 and lines[-1]["stopped"] == "max-frames"


def test_cli_ctrl_c_stops_cleanly_with_a_summary(fixture_run, demo_jpegs):
    pytest.importorskip("typer", reason="the command line needs typer")
    with _MjpegServer(demo_jpegs, plan=[None]) as server:
        command = [sys.executable, "-m", "edgeclf.cli", "camera", str(fixture_run), "--source", server.url, "--json"]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_cli_env(),
            # a background shell starts jobs with SIGINT ignored, and Python then never raises
            # KeyboardInterrupt: give the child the default disposition, as a terminal would
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            first = process.stdout.readline()  # the loop is running once a frame was printed
            assert json.loads(first)["frame"] == 1
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["summary"] is True and summary["stopped"] == "interrupted"
    assert summary["frames_classified"] >= 1 and summary["error"] is None
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_cli_sigterm_stops_cleanly_with_a_summary(fixture_run, demo_jpegs):
    """``systemctl stop`` sends SIGTERM: same clean stop and summary as Ctrl-C."""
    pytest.importorskip("typer", reason="the command line needs typer")
    with _MjpegServer(demo_jpegs, plan=[None]) as server:
        command = [sys.executable, "-m", "edgeclf.cli", "camera", str(fixture_run), "--source", server.url]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env())
        try:
            assert process.stdout.readline().startswith("frame")
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped: interrupted" in err and "Traceback" not in err


def test_picamera2_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as on a machine without the Pi camera stack
    with pytest.raises(CameraError, match="sudo apt install python3-picamera2"):
        Picamera2Source().open()
    with pytest.raises(CameraError, match="format 'YUV420' is not supported"):
        Picamera2Source(pixel_format="YUV420")
