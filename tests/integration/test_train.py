"""The trainer end to end on generated data: run folder, reload, early stopping, resume, mirrored, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from typer.testing import CliRunner  # noqa: E402

from edgeclf.runtime.dataset import load_samples, open_labelled_folder  # noqa: E402
from edgeclf.runtime.errors import EdgeclfError  # noqa: E402
from edgeclf.runtime.manifest import Manifest  # noqa: E402
from edgeclf.trainer.train import TrainConfig, train  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from edgeclf.trainer.demo_data import generate_demo_dataset

    return generate_demo_dataset(
        tmp_path_factory.mktemp("train-data") / "demo",
        train_per_class=10,
        validation_per_class=4,
        test_per_class=4,
        image_size=(64, 48),
        seed=1,
    )


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    fields = dict(
        data=str(data), out=str(out), preset="dsnet", image_size=32, epochs=2, batch_size=8, seed=0, verbose=0
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def test_tiny_run_is_a_complete_run_folder(tiny_run):
    manifest = Manifest.load(tiny_run)
    assert manifest.labels == ("cars", "elephants")
    assert manifest.output_activation == "sigmoid"
    assert (manifest.input.height, manifest.input.width) == (32, 32)
    assert manifest.preset == "seed"
    assert manifest.training["epochs"] == 2 and manifest.training["image_size"] == 32
    assert manifest.data["counts"]["train"] == {"cars": 12, "elephants": 12}
    assert (tiny_run / "labels.txt").read_text().split() == ["cars", "elephants"]

    history = json.loads((tiny_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, manifest.metrics["epochs_run"] + 1))
    assert all({"accuracy", "val_accuracy", "loss", "val_loss", "test_accuracy"} <= row.keys() for row in history)
    best = history[manifest.metrics["best_epoch"] - 1]
    assert manifest.metrics["val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert manifest.metrics["test_accuracy"] == pytest.approx(best["test_accuracy"])
    assert (tiny_run / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    for plot in ("accuracy.png", "loss.png", "test_accuracy.png"):
        assert (tiny_run / plot).read_bytes()[:8] == PNG_MAGIC
    assert not (tiny_run / "checkpoints" / "backup").exists()  # finished: nothing left to resume
    assert not list(tiny_run.glob(".*partial*"))


def test_tiny_run_softmax_has_three_outputs(tiny_run_softmax):
    manifest = Manifest.load(tiny_run_softmax)
    assert manifest.output_activation == "softmax"
    model = keras.saving.load_model(tiny_run_softmax / "model.keras")
    scores = model.predict(np.zeros((2, 32, 32, 3), np.uint8), verbose=0)
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_saved_model_holds_the_best_weights_and_reloads_with_equal_predictions(tiny_run):
    from edgeclf.trainer.presets import get_preset

    manifest = Manifest.load(tiny_run)
    folder = open_labelled_folder(manifest.data["root"])
    images = load_samples(folder.split("test"), manifest.input).images
    reloaded = keras.saving.load_model(tiny_run / "model.keras")
    rebuilt = get_preset(manifest.preset).build(manifest.input, len(manifest.labels))
    rebuilt.load_weights(tiny_run / "checkpoints" / "best.weights.h5")
    a = reloaded.predict(images, verbose=0)
    b = rebuilt.predict(images, verbose=0)
    assert a.shape == (len(images), 1)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_evaluate_reproduces_the_test_accuracy_measured_during_training(tiny_run, tmp_path):
    from edgeclf.trainer.evaluate import evaluate

    manifest = Manifest.load(tiny_run)
    report = evaluate(tiny_run, manifest.data["root"], out_dir=tmp_path)
    assert report.split == "test"
    assert report.count == sum(manifest.data["counts"]["test"].values())
    assert report.accuracy == pytest.approx(manifest.metrics["test_accuracy"], abs=1e-6)
    matrix = np.array(report.confusion)
    assert matrix.sum() == report.count
    assert len(report.misclassified) == report.count - np.trace(matrix)
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((tmp_path / "evaluation.json").read_text())["accuracy"] == report.accuracy


def test_best_epoch_callback_stops_after_patience_and_restores_the_best_weights(tmp_path):
    from edgeclf.trainer.callbacks import BestEpoch

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    history: list[dict] = []
    callback = BestEpoch(2, tmp_path, history)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.7, 0.65]):
        model.set_weights([np.full((1, 1), float(epoch), np.float32)])
        model.stop_training = False
        callback.on_epoch_end(epoch, {"val_accuracy": acc, "val_loss": 1.0})
        if model.stop_training:
            break
    assert epoch == 3  # epochs 3 and 4 did not beat epoch 2 (a tie on accuracy and loss is not better)
    callback.on_train_end()
    assert model.get_weights()[0][0, 0] == 1.0
    assert [row["epoch"] for row in json.loads((tmp_path / "history.json").read_text())] == [1, 2, 3, 4]
    assert (tmp_path / "best.weights.h5").exists()


class _InterruptAtThirdEpoch(keras.callbacks.Callback):
    """Stands for Ctrl-C pressed while the third epoch starts."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


def test_resume_continues_an_interrupted_run(small_data, tmp_path):
    out = tmp_path / "run"
    config = _config(small_data, out, epochs=4, patience=10)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[_InterruptAtThirdEpoch()])
    assert not (out / "manifest.json").exists()
    partial = json.loads((out / "checkpoints" / "history.json").read_text())
    assert [row["epoch"] for row in partial] == [1, 2]
    with pytest.raises(EdgeclfError, match="--resume"):
        train(config)  # a new run into an unfinished folder is refused

    run_dir = train(TrainConfig(data=None, out=str(out), resume=True, verbose=0))
    manifest = Manifest.load(run_dir)
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[:2] == partial  # the first two epochs were not trained again
    assert manifest.metrics["epochs_run"] == 4
    # The optimizer state came back from the backup: 4 epochs of ceil(20 / 8) steps, not 2.
    assert int(keras.saving.load_model(run_dir / "model.keras").optimizer.iterations) == 4 * 3
    assert manifest.training["resume"] is False and manifest.training["image_size"] == 32
    with pytest.raises(EdgeclfError, match="already a finished run"):
        train(TrainConfig(data=None, out=str(out), resume=True, verbose=0))


@pytest.fixture
def messy_data(small_data, tmp_path) -> Path:
    """The small data set plus unreadable files, a stray text file and an imbalanced train split."""
    data = tmp_path / "messy"
    shutil.copytree(small_data, data)
    (data / "train" / "cars" / "empty.jpg").write_bytes(b"")
    (data / "train" / "elephants" / "truncated.jpg").write_bytes(
        (small_data / "train/cars/0000.jpg").read_bytes()[:200]
    )
    (data / "validation" / "cars" / "notes.txt").write_text("not an image")
    for path in sorted((data / "train" / "cars").glob("000*.jpg"))[:5]:
        shutil.copy(path, path.with_name(f"copy-{path.name}"))
    return data


def test_cli_train_mirrored_reports_bad_files_and_imbalance(messy_data, tmp_path):
    from edgeclf.cli import app

    out = tmp_path / "run"
    args = ["train", "--data", str(messy_data), "--out", str(out), "--image-size", "32", "--epochs", "1"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "8", "--strategy", "mirrored", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["run_dir"] == str(out) and summary["metrics"]["epochs_run"] == 1
    manifest = Manifest.load(out)
    assert manifest.training["strategy"] == "mirrored"
    report = json.loads((out / "report.json").read_text())
    assert report["skipped"]["count"] == 2
    assert sorted(Path(f["path"]).name for f in report["skipped"]["files"]) == ["empty.jpg", "truncated.jpg"]
    assert [Path(p).name for p in report["ignored"]["files"]] == ["notes.txt"]
    train_balance = report["class_balance"]["train"]
    assert train_balance["counts"] == {"cars": 15, "elephants": 10} and train_balance["imbalanced"]
    assert sorted(Path(p).name for p in manifest.data["skipped"]) == ["empty.jpg", "truncated.jpg"]
    model = keras.saving.load_model(out / "model.keras")
    assert model.predict(np.zeros((1, 32, 32, 3), np.uint8), verbose=0).shape == (1, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such data folder"),
        (lambda root: (root / "one" / "cars").mkdir(parents=True) or root / "one", "at least two"),
    ],
)
def test_cli_train_refuses_a_bad_data_folder_in_one_line(tmp_path, make, message):
    from edgeclf.cli import app

    result = CliRunner().invoke(app, ["train", "--data", str(make(tmp_path)), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_evaluate_prints_matrix_and_json(tiny_run, tmp_path):
    from edgeclf.cli import app

    data = Manifest.load(tiny_run).data["root"]
    text = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", data, "--out", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert "confusion matrix (rows: true, columns: predicted)" in text.output
    assert "precision  recall" in text.output
    as_json = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", data, "--json", "--out", str(tmp_path)])
    report = json.loads(as_json.output)
    assert report["labels"] == ["cars", "elephants"]
    assert [c["support"] for c in report["per_class"]] == [6, 6]


def test_cli_evaluate_refuses_other_classes(tiny_run_softmax, tiny_run, tmp_path):
    from edgeclf.cli import app

    other = Manifest.load(tiny_run_softmax).data["root"]  # three classes; tiny_run has two
    result = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", other, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "do not match the model's labels" in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_augment_preview_writes_n_distinct_images(small_data, tmp_path):
    from PIL import Image

    from edgeclf.cli import app

    image = small_data / "train" / "elephants" / "0000.jpg"
    out = tmp_path / "preview"
    args = ["augment-preview", str(image), "--out", str(out), "-n", "5", "--image-size", "48"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    augmented = sorted(out.glob("0000_aug_*.png"))
    assert len(augmented) == 5
    original = np.asarray(Image.open(out / "0000_input.png"))
    arrays = [np.asarray(Image.open(p)) for p in augmented]
    assert all(a.shape == (48, 48, 3) for a in arrays)
    assert sum(not np.array_equal(a, original) for a in arrays) >= 4
    assert len({a.tobytes() for a in arrays}) >= 4


def test_cli_train_refuses_multi_worker_naming_the_upstream_bug(small_data, tmp_path):
    from edgeclf.cli import app

    args = ["train", "--data", str(small_data), "--out", str(tmp_path / "run"), "--strategy", "multi-worker"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "keras-team/keras#20585" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_class_with_only_unreadable_images_is_refused_and_leaves_no_run_folder(small_data, tmp_path):
    from edgeclf.cli import app

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    for path in (data / "train" / "elephants").glob("*.jpg"):
        path.write_bytes(b"")
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 1
    assert "no readable train images for class(es) ['elephants']" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
