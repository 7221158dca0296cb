"""``edgeclf classify`` against hostile or careless input: one line per bad file, the batch goes on.

A stand-in interpreter (score = mean red level) registered for ``.fake`` files tests the command's
handling of names, files and limits, not inference.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("typer", reason="the command line needs typer")
from helpers.fake_backend import make_fake_run
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.runtime.backends.base import max_threads
from edgeclf.runtime.classifier import ClassifierOptions
from edgeclf.runtime.errors import ConfigError
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, MAX_IMAGE_SIDE


@pytest.fixture
def run(tmp_path, monkeypatch):
    return make_fake_run(tmp_path / "run", monkeypatch)


def _invoke(*args):
    return CliRunner().invoke(app, ["classify", *map(str, args)])


def _red(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (250, 0, 0)).save(path)
    return path


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_a_name_too_long_for_the_filesystem_is_one_line_and_the_batch_goes_on(run, tmp_path):
    good = _red(tmp_path / "good.png")
    result = _invoke(run, "x" * 300 + ".jpg", good)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a clean exit, no exception escaped
    assert len(_errors(result)) == 1 and "File name too long" in _errors(result)[0]
    assert "good.png" in result.stdout  # the file after it was classified
    assert "2 files: 1 classified, 1 failed" in result.stderr


def test_a_fifo_is_refused_without_blocking(run, tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    result = _invoke(run, fifo, _red(tmp_path / "good.png"))
    assert result.exit_code == 1
    assert _errors(result) == [f"error: {fifo}: not a regular file (a FIFO); pass image files"]
    assert "1 classified, 1 failed" in result.stderr


def test_a_newline_in_a_file_name_stays_on_one_row(run, tmp_path):
    folder = tmp_path / "photos"
    _red(folder / "two\nlines.png")
    result = _invoke(run, folder)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "lines.png" in line]
    assert len(rows) == 1 and "two\\nlines.png" in rows[0] and "elephants" in rows[0]
    assert len(result.stdout.splitlines()) == 4  # model line, column titles, one row, summary


def test_folder_scans_read_tiff_and_say_what_they_skipped(run, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (16, 12), (250, 0, 0)).save(folder / "a.tiff")
    (folder / "notes.txt").write_text("not a photo")
    (folder / "raw.cr2").write_bytes(b"raw camera file")
    result = _invoke(run, folder)
    assert result.exit_code == 0, result.output
    assert "a.tiff" in result.stdout
    assert "1 file: 1 classified, 0 failed" in result.stdout
    assert "2 non-image file(s) in the folders skipped (.cr2, .txt)" in result.stdout


def _thin_png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of ``width``×``height`` zero pixels, compressed to almost nothing."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_a_thin_image_under_pillows_bomb_limit_is_refused_and_the_batch_goes_on(run, tmp_path):
    thin = tmp_path / "thin.png"
    thin.write_bytes(_thin_png(1, 2_000_000))  # 2 MP but 2,000,000 rows: Pillow works per row
    wide = tmp_path / "wide.png"
    wide.write_bytes(_thin_png(2_000_000, 1))
    result = _invoke(run, thin, wide, _red(tmp_path / "good.png"))
    assert result.exit_code == 1
    errors = _errors(result)
    assert len(errors) == 2 and all(f"a side above {MAX_IMAGE_SIDE} pixels" in e for e in errors)
    assert "3 files: 1 classified, 2 failed" in result.stderr


def test_the_pixel_limit_has_a_pi_sized_default_and_a_flag_to_raise_it(run, tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (7000, 6000)).save(big)  # 42 MP: above the default, a plausible camera photo
    assert DEFAULT_MAX_PIXELS == 40_000_000
    refused = _invoke(run, big)
    assert refused.exit_code == 1
    assert _errors(refused) == [
        f"error: {big}: image is 7000x6000 (42 MP), above the 40 MP limit for decompression bombs; "
        "downscale it first, or raise the limit (--max-megapixels)"
    ]
    allowed = _invoke(run, big, "--max-megapixels", "50")
    assert allowed.exit_code == 0, allowed.output


@pytest.mark.parametrize("threads", ["0", "100000"])
def test_threads_are_bounded_by_the_host(run, tmp_path, threads):
    result = _invoke(run, _red(tmp_path / "good.png"), "--threads", threads)
    assert result.exit_code in (1, 2)  # typer refuses 0 as usage (2); the host bound is ours (1)
    if threads == "100000":
        assert result.exit_code == 1
        (line,) = _errors(result)
        assert line.startswith(f"error: --threads: expected 1 to {max_threads()} on this machine")
        assert line.endswith("got 100000")


def test_the_python_api_bounds_threads_too():
    with pytest.raises(ConfigError, match="--threads"):
        ClassifierOptions(threads=max_threads() + 1)
    assert ClassifierOptions(threads=max_threads()).threads == max_threads()


def test_the_benchmark_bounds_threads_before_measuring(tmp_path):
    from edgeclf.benchmarks.config import BenchmarkConfig

    with pytest.raises(ConfigError, match="--threads"):
        BenchmarkConfig(run_dir=tmp_path, threads=100_000)
    with pytest.raises(ConfigError, match="--threads"):
        BenchmarkConfig(run_dir=tmp_path, sweep_threads=(1, 100_000))
    assert BenchmarkConfig(run_dir=tmp_path, threads=1).threads == 1
