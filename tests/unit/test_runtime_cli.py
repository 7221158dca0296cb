"""``edgeclf classify``: paths, folders, globs, stdin, table/JSON output, bad files, exit codes.

The plumbing tests use a fake backend (a stand-in interpreter whose score is the image's mean red
level), registered for a ``.fake`` suffix only: they test the command, not inference. The last tests
run the real exported fixture models.
"""

import dataclasses
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("typer", reason="the command line needs typer (not installed in the tflite-runtime venv)")
from helpers.fake_backend import IN, OUT, SPEC, make_fake_run
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.runtime.backends import BACKENDS
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import Artifact, Manifest


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    return make_fake_run(tmp_path / "run", monkeypatch)


def _png_claiming(width, height):
    """A PNG whose header claims ``width``×``height`` pixels (no pixel data): a decompression bomb's shape."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    Image.new("RGB", (40, 30), (250, 0, 0)).save(folder / "red.jpg", quality=95)
    Image.new("RGB", (40, 30), (0, 0, 250)).save(folder / "nested" / "blue.png")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a picture")
    good = (folder / "red.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    return folder


def _invoke(*args, input=None):
    return CliRunner().invoke(app, ["classify", *map(str, args)], input=input)


def test_bad_files_are_reported_one_line_each_and_the_run_goes_on(fake_run, photos):
    result = _invoke(fake_run, photos)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4
    assert any("zero.jpg: empty file" in e for e in errors)
    assert any("notes.jpg: not an image" in e for e in errors)
    assert any("truncated.jpg: corrupt or truncated" in e for e in errors)
    assert any("bomb.png" in e and "decompression bomb" in e for e in errors)
    assert "6 files: 2 classified, 4 failed" in result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.startswith(str(photos))}
    assert rows[str(photos / "red.jpg")][0] == "elephants"
    assert rows[str(photos / "nested" / "blue.png")][0] == "cars"


def test_all_good_exits_zero_with_a_summary(fake_run, photos):
    result = _invoke(fake_run, photos / "red.jpg", photos / "nested" / "blue.png", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "(fake, fake, 1 thread)" in result.stdout.splitlines()[0]  # --threads reaches the interpreter
    assert "2 files: 2 classified, 0 failed" in result.stdout
    assert result.stderr == ""


def test_json_lines_with_top_k(fake_run, photos):
    result = _invoke(fake_run, photos / "red.jpg", photos / "nested" / "blue.png", "--json", "--top-k", "2")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in records] == ["elephants", "cars"]
    assert all(len(r["predictions"]) == 2 for r in records)
    red = records[0]
    assert red["score"] == pytest.approx(red["predictions"][0]["score"]) and red["score"] > 0.9
    assert red["predictions"][1]["score"] == pytest.approx(1 - red["score"], abs=1e-5)
    assert "2 files: 2 classified" in result.stderr  # the summary stays off stdout in JSON mode


def test_paths_from_stdin_and_globs(fake_run, photos):
    listing = f"{photos / 'red.jpg'}\n\n{photos / 'nested' / 'blue.png'}\n"
    result = _invoke(fake_run, "-", "--json", input=listing)
    assert result.exit_code == 0
    assert [Path(json.loads(x)["file"]).name for x in result.stdout.splitlines()] == ["red.jpg", "blue.png"]
    result = _invoke(fake_run, f"{photos}/**/*.png", "--json")
    names = sorted(Path(json.loads(x)["file"]).name for x in result.stdout.splitlines())
    assert names == ["blue.png"]  # bomb.png matches too but fails: reported on stderr
    assert result.exit_code == 1 and "bomb.png" in result.stderr
    result = _invoke(fake_run, f"{photos}/*.gif")
    assert result.exit_code == 1 and "no file matches this pattern" in result.stderr


def test_threshold_hides_weak_labels(fake_run, tmp_path):
    Image.new("RGB", (8, 8), (128, 0, 0)).save(tmp_path / "mid.png")  # score ~0.5 for both labels
    result = _invoke(fake_run, tmp_path / "mid.png", "--threshold", "0.9")
    assert result.exit_code == 0
    assert "(below threshold)" in result.stdout


def test_model_errors_are_one_line_and_usage_errors_exit_2(fake_run, photos, tmp_path):
    result = _invoke(tmp_path / "no-run", photos / "red.jpg")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "no such run folder or model file" in result.stderr
    result = _invoke(fake_run, photos / "red.jpg", "--format", "tflite-int8")
    assert result.exit_code == 1 and "no artifact of format 'tflite-int8'" in result.stderr
    assert _invoke(fake_run, photos / "red.jpg", "--backend", "tensorrt").exit_code == 2
    assert _invoke(fake_run, photos / "red.jpg", "--top-k", "0").exit_code == 2


def test_real_models_classify_a_folder(fixture_run):
    manifest = Manifest.load(fixture_run)
    test_dir = Path(manifest.data["root"]) / "test"
    from edgeclf.runtime.classifier import Classifier

    with Classifier.from_run(fixture_run) as clf:
        fmt = clf.format
        expected = clf.classify(sorted(test_dir.rglob("*.jpg"))[0], top_k=2)
    result = _invoke(fixture_run, test_dir, "--json", "--top-k", "2", "--format", fmt)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == sum(manifest.data["counts"]["test"].values())
    assert all(r["label"] in manifest.labels for r in records)
    assert records[0]["predictions"] == [{**p.to_dict(), "score": round(p.score, 6)} for p in expected]


def test_missing_interpreter_is_one_line_naming_what_to_install(tmp_path, monkeypatch, photos):
    from edgeclf.runtime.backends.tflite import TFLiteBackend

    for name in ("litert", "tflite-runtime"):  # as on a Pi where neither TFLite interpreter is installed
        absent = dataclasses.replace(BACKENDS[name], module=f"edgeclf_absent_{name.replace('-', '_')}.interpreter")
        assert isinstance(absent, TFLiteBackend)
        monkeypatch.setitem(BACKENDS, name, absent)
    run = tmp_path / "run"
    run.mkdir()
    model = run / "model_tflite-int8.tflite"
    model.write_bytes(b"not loaded: the interpreter is missing first")
    artifact = Artifact(
        "tflite-int8", "int8", model.name, model.stat().st_size, sha256_file(model), "litert", (IN,), (OUT,)
    )
    Manifest(("cars", "elephants"), SPEC, "sigmoid", "test", artifacts=(artifact,)).save(run)
    result = _invoke(run, photos / "red.jpg")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "pip install 'edgeclf[edge]'" in lines[0] and "tflite-runtime==2.14.0 'numpy<2'" in lines[0]


def test_a_keras_file_is_not_taken_for_an_exported_model(tmp_path, photos):
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"PK")
    result = _invoke(keras_file, photos / "red.jpg")
    assert result.exit_code == 1 and "not an exported model (.onnx or .tflite)" in result.stderr
