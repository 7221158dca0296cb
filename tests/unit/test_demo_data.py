"""The embedded default data set: layout, determinism, atomicity, refusals, the CLI. No TensorFlow."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.runtime.dataset import load_samples, open_labelled_folder
from edgeclf.runtime.errors import DatasetError
from edgeclf.runtime.manifest import InputSpec
from edgeclf.trainer.demo_data import (
    CLASS_TINT,
    CLASSES,
    COMPLETE_MARKER,
    FORMAT_VERSION,
    generate_demo_dataset,
    is_complete_demo_dataset,
    render_demo_jpeg,
    tint_classes,
)

SMALL = {"train_per_class": 6, "validation_per_class": 3, "test_per_class": 2, "image_size": (64, 48)}


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "data", seed=0, **SMALL)


def test_layout_is_the_seeds_convention(small_demo: Path) -> None:
    files = sorted(p.relative_to(small_demo).as_posix() for p in small_demo.rglob("*") if p.is_file())
    expected = [COMPLETE_MARKER]
    for split, count in (("test", 2), ("train", 6), ("validation", 3)):
        expected += [f"{split}/{label}/{i:04d}.jpg" for label in CLASSES for i in range(count)]
    assert files == sorted(expected)
    marker = json.loads((small_demo / COMPLETE_MARKER).read_text())
    assert marker["train_per_class"] == 6 and marker["width"] == 64 and marker["height"] == 48
    assert is_complete_demo_dataset(small_demo)


def test_it_opens_and_decodes_like_real_photos(small_demo: Path) -> None:
    folder = open_labelled_folder(small_demo)
    assert folder.layout == "splits" and folder.labels == ("cars", "elephants")
    assert folder.counts()["validation"] == {"cars": 3, "elephants": 3}
    assert folder.ignored == ()
    loaded = load_samples(folder.split("train"), InputSpec(48, 64))
    assert loaded.failed == () and loaded.images.shape == (12, 48, 64, 3)
    # distinct pictures, not one image repeated, with real contrast
    flat = loaded.images.reshape(12, -1).astype(np.int16)
    assert len({row.tobytes() for row in flat}) == 12
    assert all(row.std() > 10 for row in flat)


def test_same_arguments_give_the_same_bytes(tmp_path: Path, small_demo: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", seed=0, **SMALL)
    assert tree_digest(again) == tree_digest(small_demo)


def test_another_seed_gives_other_images(tmp_path: Path, small_demo: Path) -> None:
    other = tree_digest(generate_demo_dataset(tmp_path / "other", seed=1, **SMALL))
    base = tree_digest(small_demo)
    images = [name for name in base if name.endswith(".jpg")]
    assert all(other[name] != base[name] for name in images)


def test_changing_one_count_keeps_the_other_images(tmp_path: Path, small_demo: Path) -> None:
    bigger = tree_digest(generate_demo_dataset(tmp_path / "bigger", seed=0, **{**SMALL, "train_per_class": 8}))
    base = tree_digest(small_demo)
    assert all(bigger[name] == digest for name, digest in base.items() if name.endswith(".jpg"))


def test_existing_complete_set_with_the_same_parameters_is_reused(small_demo: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in small_demo.rglob("*")}
    assert generate_demo_dataset(small_demo, seed=0, **SMALL) == small_demo
    assert {p: p.stat().st_mtime_ns for p in small_demo.rglob("*")} == before


def test_a_tinted_set_makes_each_class_its_own_colour(tmp_path: Path, small_demo: Path) -> None:
    tinted = generate_demo_dataset(tmp_path / "tinted", seed=0, tinted=True, **SMALL)
    assert json.loads((tinted / COMPLETE_MARKER).read_text())["tinted"] is True
    for name in CLASSES:
        plain, warm = (
            np.stack([np.asarray(Image.open(p), np.float64) for p in sorted((root / "train" / name).glob("*.jpg"))])
            for root in (small_demo, tinted)
        )
        # Per channel, the tinted pictures are the plain ones times the class's gain (JPEG re-encoding aside).
        gains = warm.reshape(-1, 3).mean(axis=0) / plain.reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(gains, CLASS_TINT[name], atol=0.03)
    with pytest.raises(
        DatasetError, match=rf"generated with other parameters \(.*seed 0, format {FORMAT_VERSION}, tinted\)"
    ):
        generate_demo_dataset(tinted, seed=0, **SMALL)  # an untinted set of the same counts is another set


def test_a_class_without_a_tint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "cats" / "a.jpg")
    with pytest.raises(DatasetError, match="no tint for class folder\\(s\\) cats"):
        tint_classes(tmp_path)


def test_existing_set_with_other_parameters_is_refused(small_demo: Path) -> None:
    with pytest.raises(DatasetError, match=r"generated with other parameters.*remove it or choose another folder"):
        generate_demo_dataset(small_demo, seed=2, **SMALL)


def test_an_existing_folder_that_is_not_a_demo_set_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    (out / "train" / "cars").mkdir(parents=True)  # e.g. a half-written earlier attempt, or user photos
    (out / "train" / "cars" / "mine.jpg").write_bytes(b"precious")
    with pytest.raises(DatasetError, match=rf"{out}: exists and is not a complete demo data set"):
        generate_demo_dataset(out, **SMALL)
    assert (out / "train" / "cars" / "mine.jpg").read_bytes() == b"precious"


def test_an_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    generate_demo_dataset(out, **{**SMALL, "test_per_class": 0})
    assert is_complete_demo_dataset(out) and not (out / "test").exists()


def test_an_interrupted_run_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    out = tmp_path / "demo"

    def interrupt(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(out, progress=interrupt, **SMALL)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "the temporary sibling folder is removed"


def test_a_concurrent_run_that_finished_first_wins(tmp_path: Path) -> None:
    out = tmp_path / "demo"

    def race(done: int, total: int) -> None:
        if done == total:  # another process completes the same set just before our rename
            generate_demo_dataset(out, seed=0, **SMALL)

    assert generate_demo_dataset(out, seed=0, progress=race, **SMALL) == out
    assert is_complete_demo_dataset(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"], "our temporary folder is removed"


def test_something_else_appearing_meanwhile_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "demo"

    def intrude(done: int, total: int) -> None:
        if done == total:
            out.mkdir()
            (out / "mine.txt").write_text("keep me")

    with pytest.raises(DatasetError, match="something else was written there"):
        generate_demo_dataset(out, progress=intrude, **SMALL)
    assert (out / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.parametrize(
    "bad",
    [{"train_per_class": 0}, {"validation_per_class": 0}, {"test_per_class": -1}, {"image_size": (8, 48)}],
)
def test_bad_arguments_are_refused(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(DatasetError):
        generate_demo_dataset(tmp_path / "demo", **{**SMALL, **bad})
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("size", [(16, 16), (1000, 40), (40, 900)])
def test_extreme_sizes_render(size: tuple[int, int]) -> None:
    # tiny images, and sides beyond the shared noise field (fresh noise is drawn then)
    for kind in CLASSES:
        with Image.open(io.BytesIO(render_demo_jpeg(kind, size, seed=(0, 0, 0, 1)))) as image:
            assert image.format == "JPEG" and image.size == size and image.mode == "RGB"


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, edgeclf.trainer.demo_data; "
        "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_make_demo_data(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "demo"
    args = ["make-demo-data", str(out), "--train-per-class", "3", "--validation-per-class", "2"]
    args += ["--test-per-class", "0", "--width", "40", "--height", "32", "--seed", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        f"wrote 10 synthetic images (40x32 JPEG; per class: train 3, validation 2) of cars and elephants to {out}"
        in (result.output)
    )
    assert open_labelled_folder(out).counts() == {
        "train": {"cars": 3, "elephants": 3},
        "validation": {"cars": 2, "elephants": 2},
    }

    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0
    summary = json.loads(again.output)
    assert summary["created"] is False and summary["images"] == 10 and summary["size"] == [40, 32]

    clash = runner.invoke(app, [*args[:-1], "5"])
    assert clash.exit_code == 1
    assert "error: " in clash.output and "generated with other parameters" in clash.output
    assert len(clash.output.strip().splitlines()) == 1
