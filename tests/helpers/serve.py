"""Start a real ``edgeclf serve`` process on a free loopback port and talk to it with real clients."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

_LISTENING = re.compile(r"on http://127\.0\.0\.1:(\d+)/")


class ServeProcess:
    """``python -m edgeclf.cli serve MODEL --port 0 ARGS…`` bound to 127.0.0.1; stderr is collected."""

    def __init__(self, model: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        self.command = [sys.executable, "-m", "edgeclf.cli", "serve", str(model), "--port", "0", *args]
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self.port: int | None = None

    def __enter__(self) -> ServeProcess:
        root = str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = os.pathsep.join([root, self.env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )
        ready = threading.Event()

        def drain_err() -> None:
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        def drain_out() -> None:
            for line in self.process.stdout:
                self.stdout.append(line.rstrip("\n"))

        threading.Thread(target=drain_err, daemon=True).start()
        threading.Thread(target=drain_out, daemon=True).start()
        ready.wait(self.timeout)
        if self.port is None:
            self.stop()
            raise RuntimeError("edgeclf serve did not start:\n" + "\n".join(self.lines))
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rss_kb(self) -> int:
        """Resident memory of the server process (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def request(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """One HTTP request; returns ``(status, body, headers)`` for 2xx and 4xx/5xx alike."""
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def json(self, path: str, **kwargs) -> tuple[int, dict]:
        status, body, _ = self.request(path, **kwargs)
        return status, json.loads(body)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll ``predicate()`` until it returns something truthy; return it (or the last value on timeout)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def two_labelled_frames(run: Path, size: tuple[int, int] = (320, 240)):
    """Two RGB frames (from the run's test photos) that the run's model gives different labels, and those labels.

    The model decides which pictures differ, so the page test checks that what the page shows is what
    the model says, whatever the tiny fixture model learned.
    """
    import numpy as np

    from edgeclf.runtime.classifier import Classifier
    from edgeclf.runtime.manifest import Manifest
    from edgeclf.runtime.preprocess import load_image

    manifest = Manifest.load(run)
    photos = sorted((Path(manifest.data["root"]) / "test").rglob("*.jpg"))
    frames = [np.asarray(load_image(p).resize(size)) for p in photos]
    with Classifier.from_run(run, threads=1) as clf:
        labelled = [(clf.classify(frame)[0], frame) for frame in frames]
    best = {}
    for prediction, frame in labelled:  # the most confident frame of each label
        if prediction.label not in best or prediction.score > best[prediction.label][0].score:
            best[prediction.label] = (prediction, frame)
    if len(best) < 2:
        raise AssertionError(f"the fixture model gives every test photo the same label {list(best)}")
    (a, frame_a), (b, frame_b) = list(best.values())[:2]
    return (a.label, frame_a), (b.label, frame_b)


def write_video(path: Path, frames_rgb, fps: int = 20) -> Path:
    """An MJPG AVI of RGB frames (OpenCV writes BGR)."""
    import cv2
    import numpy as np

    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video")
    for frame in frames_rgb:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path
