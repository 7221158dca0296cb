"""Writers of good and bad image files for tests — the one place they live.

Every bad-file kind the toolkit must survive (skip, report, go on) has a writer here, so the data
layer, the trainer and the ``classify`` command test the same files::

    from helpers.images import BAD_FILE_WRITERS, write_jpeg

    for kind, writer in BAD_FILE_WRITERS.items():
        path = writer(tmp_path / "cars")   # returns the path it wrote

Each writer of :data:`BAD_FILE_WRITERS` takes a folder, writes one file (or folder) with a telling
name into it and returns the path. :data:`BAD_FILE_REASONS` gives a phrase the resulting
``ImageDecodeError`` message must contain.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def pattern_array(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth, asymmetric RGB test pattern (uint8 H×W×3): gradients plus a few blobs.

    Smooth so JPEG coding keeps it close; asymmetric so any flip or rotation is visible.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * xs / max(1, width - 1)
    green = 255 * ys / max(1, height - 1)
    blue = np.full_like(xs, 60.0)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.1, 0.3) * min(width, height)
        blue += 150 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r * r))
    return np.clip(np.stack([red, green, blue], axis=2), 0, 255).astype(np.uint8)


def quadrant_array(width: int = 64, height: int = 48) -> np.ndarray:
    """Four flat colour blocks (red, green / blue, white) plus a black bar on the top edge.

    Every one of the 8 EXIF orientations maps it to a distinct picture, and flat blocks survive
    JPEG coding, so block means identify the orientation unambiguously.
    """
    array = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    array[:h2, :w2] = (255, 0, 0)
    array[:h2, w2:] = (0, 255, 0)
    array[h2:, :w2] = (0, 0, 255)
    array[h2:, w2:] = (255, 255, 255)
    return array


def encode(image: Image.Image | np.ndarray, fmt: str, **params) -> bytes:
    """Encode an image (or uint8 array) with Pillow and return the bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write_jpeg(path: Path, array: np.ndarray | None = None, *, quality: int = 95, **params) -> Path:
    """Write a JPEG (default: :func:`pattern_array`) to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(pattern_array() if array is None else array, "JPEG", quality=quality, **params))
    return path


def write_png(path: Path, array: np.ndarray | None = None) -> Path:
    """Write a PNG (default: :func:`pattern_array`) to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(pattern_array() if array is None else array, "PNG"))
    return path


def write_good_images(folder: Path, count: int, *, start: int = 0, fmt: str = "jpg") -> list[Path]:
    """Write ``count`` small distinct decodable images named ``img_NNN.<fmt>`` into ``folder``."""
    paths = []
    for index in range(start, start + count):
        array = pattern_array(32, 24, seed=index)
        path = folder / f"img_{index:03d}.{fmt}"
        (write_jpeg if fmt in ("jpg", "jpeg") else write_png)(path, array)
        paths.append(path)
    return paths


# --- bad files ------------------------------------------------------------------------------------


def write_zero_byte(folder: Path) -> Path:
    """An empty file with an image suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "zero_byte.jpg"
    path.write_bytes(b"")
    return path


def write_not_an_image(folder: Path) -> Path:
    """A text file with an image suffix (``.png``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "not_an_image.png"
    path.write_text("this is a shopping list, not a picture\n")
    return path


def write_corrupt_jpeg(folder: Path) -> Path:
    """A JPEG whose header is intact and whose body is random bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(pattern_array(), "JPEG", quality=90)
    noise = np.random.default_rng(1).integers(0, 256, len(good), dtype=np.uint8).tobytes()
    path = folder / "corrupt.jpg"
    path.write_bytes(good[:20] + noise)
    return path


def write_truncated_jpeg(folder: Path) -> Path:
    """The first half of a valid JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(pattern_array(), "JPEG", quality=90)
    path = folder / "truncated.jpg"
    path.write_bytes(good[: len(good) // 2])
    return path


def write_truncated_png(folder: Path) -> Path:
    """The first half of a valid PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(pattern_array(), "PNG")
    path = folder / "truncated.png"
    path.write_bytes(good[: len(good) // 2])
    return path


def png_bytes_with_size(width: int, height: int) -> bytes:
    """A tiny grayscale PNG *claiming* ``width × height`` pixels (a decompression bomb's header).

    Only the first row's data is present, so the file is a few hundred bytes whatever it claims.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    pixels = zlib.compress(b"\x00" + b"\x00" * width, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def write_decompression_bomb(folder: Path) -> Path:
    """A ~100-byte PNG claiming 40000×40000 pixels (1.6 gigapixel)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bomb.png"
    path.write_bytes(png_bytes_with_size(40_000, 40_000))
    return path


def write_folder_named_like_image(folder: Path) -> Path:
    """A *folder* called ``folder.jpg``."""
    path = folder / "folder.jpg"
    path.mkdir(parents=True, exist_ok=True)
    return path


BAD_FILE_WRITERS: dict[str, Callable[[Path], Path]] = {
    "zero-byte": write_zero_byte,
    "not-an-image": write_not_an_image,
    "corrupt-jpeg": write_corrupt_jpeg,
    "truncated-jpeg": write_truncated_jpeg,
    "truncated-png": write_truncated_png,
    "decompression-bomb": write_decompression_bomb,
    "folder-named-like-image": write_folder_named_like_image,
}

# A phrase of the ImageDecodeError message each kind must produce (what a user reads).
BAD_FILE_REASONS: dict[str, str] = {
    "zero-byte": "empty file",
    "not-an-image": "not an image",
    "corrupt-jpeg": "corrupt or truncated",
    "truncated-jpeg": "corrupt or truncated",
    "truncated-png": "corrupt or truncated",
    "decompression-bomb": "decompression bomb",
    "folder-named-like-image": "is a folder",
}


def write_text_file(folder: Path, name: str = "notes.txt") -> Path:
    """A non-image file with a non-image suffix (ignored and listed by folder scans)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("labels were checked by hand\n")
    return path
