"""Cameras: /dev/video* access (the ``video`` group), what picamera2 and OpenCV can see."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from edgeclf.runtime.doctor.findings import Finding, System

PICAMERA2_CODE = """
import json
try:
    from picamera2 import Picamera2
    cams = [{k: str(v) for k, v in c.items()} for c in Picamera2.global_camera_info()]
    print(json.dumps({"ok": True, "cameras": cams}))
except BaseException as e:
    print(json.dumps({"ok": False, "error": str(e).strip() or type(e).__name__}))
"""

OPENCV_CODE = """
import json, sys
try:
    import cv2
    seen = []
    for index in [int(i) for i in sys.argv[1].split(",") if i]:
        cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if ok:
            seen.append(index)
    print(json.dumps({"ok": True, "opened": seen}))
except BaseException as e:
    print(json.dumps({"ok": False, "error": str(e).strip() or type(e).__name__}))
"""


def video_group_id(system: System) -> int | None:
    """The gid of the ``video`` group from ``/etc/group`` (under the system root)."""
    for line in (system.read("/etc/group") or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[0] == "video" and parts[2].isdigit():
            return int(parts[2])
    return None


def may_open(st: os.stat_result, uid: int, groups: tuple[int, ...]) -> bool:
    """Whether a user (``uid``, ``groups``) may read and write a device with this stat, by its mode bits."""
    mode = stat.S_IMODE(st.st_mode)
    if uid == 0:
        return True
    if st.st_uid == uid:
        return mode & 0o600 == 0o600
    if st.st_gid in groups:
        return mode & 0o060 == 0o060
    return mode & 0o006 == 0o006


def video_devices(system: System) -> list[Path]:
    """``/dev/videoN`` nodes under the system root, by number."""
    dev = system.path("/dev")
    found = [p for p in dev.glob("video*") if re.fullmatch(r"video\d+", p.name)] if dev.is_dir() else []
    return sorted(found, key=lambda p: int(p.name[5:]))


def check_video_devices(system: System) -> list[Finding]:
    """Whether this user may open each /dev/video* node; the fix is the ``video`` group."""
    devices = video_devices(system)
    if not devices:
        return [Finding("cameras", "info", "no /dev/video* device", "connect a camera (and enable it in raspi-config)")]
    video_gid = video_group_id(system)
    uid = system.uid
    blocked = []
    for device in devices:
        try:
            st = device.stat()
        except OSError:
            continue
        if not may_open(st, uid, system.groups):
            blocked.append((device, st))
    names = ", ".join(d.name for d in devices)
    if not blocked:
        return [Finding("cameras", "ok", f"may open {names}", data={"devices": [d.name for d in devices]})]
    in_video = video_gid is not None and any(st.st_gid == video_gid for _, st in blocked)
    fix = (
        "sudo usermod -aG video $USER, then log out and in again"
        if in_video
        else "ask for read/write access to the device (its group and mode)"
    )
    return [
        Finding(
            "cameras",
            "fail",
            f"may not open {', '.join(d.name for d, _ in blocked)}"
            + (" (they belong to the video group, which this user is not in)" if in_video else ""),
            fix,
            {"blocked": [d.name for d, _ in blocked]},
        )
    ]


def check_picamera2(system: System, facts: dict[str, Any]) -> list[Finding]:
    """Cameras the libcamera stack reports through picamera2."""
    if not facts.get("origins", {}).get("picamera2"):
        return [
            Finding(
                "picamera2",
                "info",
                "picamera2 not importable (needed for Pi camera modules)",
                "sudo apt install python3-picamera2; make the venv with --system-site-packages",
            )
        ]
    result = system.run_python(PICAMERA2_CODE)
    if not result.get("ok"):
        return [Finding("picamera2", "fail", f"picamera2 fails: {result.get('error')}", "see the numpy-abi lines")]
    cameras = result.get("cameras", [])
    if not cameras:
        return [Finding("picamera2", "warn", "picamera2 sees no camera", "check the ribbon cable; rpicam-hello --list")]
    described = "; ".join(c.get("Model", "?") + " at " + c.get("Location", "?") for c in cameras)
    return [Finding("picamera2", "ok", f"{len(cameras)} camera(s): {described}", data={"cameras": cameras})]


def check_opencv(system: System, facts: dict[str, Any]) -> list[Finding]:
    """Which /dev/videoN nodes OpenCV can open and read a frame from."""
    if not facts.get("origins", {}).get("cv2"):
        return [
            Finding(
                "opencv",
                "info",
                "OpenCV (cv2) not installed; only needed for USB webcams",
                "pip install opencv-python-headless",
            )
        ]
    devices = video_devices(system)
    if not devices:
        return [Finding("opencv", "info", "OpenCV sees no camera (no /dev/video*)")]
    indices = ",".join(d.name[5:] for d in devices)
    result = system.run_python(OPENCV_CODE, indices)
    if not result.get("ok"):
        return [Finding("opencv", "fail", f"OpenCV fails: {result.get('error')}", "pip install opencv-python-headless")]
    opened = result.get("opened", [])
    if not opened:
        return [
            Finding(
                "opencv",
                "warn",
                f"OpenCV opens none of {indices.replace(',', ', ')}",
                "a Pi camera module needs picamera2 (cv2.VideoCapture does not drive libcamera)",
            )
        ]
    return [Finding("opencv", "ok", f"OpenCV reads frames from camera index(es) {opened}", data={"opened": opened})]
