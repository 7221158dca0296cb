"""The run's ``model.keras``: saved atomically, and checked against the manifest by every stage that loads it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from helpers.export import copy_run  # noqa: E402

from edgeclf.kerasio import load_run_model, save_model  # noqa: E402
from edgeclf.runtime.errors import ManifestError  # noqa: E402
from edgeclf.runtime.manifest import InputSpec, Manifest  # noqa: E402


class _Unsaveable(keras.layers.Layer):
    """A layer whose configuration cannot be written: Keras fails half way through the archive."""

    def call(self, inputs):
        return inputs

    def get_config(self):
        raise RuntimeError("this layer cannot be serialised")


def test_a_failed_save_leaves_the_previous_model_and_no_temporary_file(tmp_path: Path) -> None:
    inputs = keras.Input((4,))
    good = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    target = tmp_path / "model.keras"
    save_model(good, target)
    before = target.read_bytes()
    broken = keras.Model(inputs, _Unsaveable()(keras.layers.Dense(1)(inputs)))
    with pytest.raises(RuntimeError, match="cannot be serialised"):
        save_model(broken, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_evaluate_refuses_a_model_that_is_not_the_manifests(tiny_run: Path, tmp_path: Path) -> None:
    from edgeclf.trainer.evaluate import evaluate

    run = copy_run(tiny_run, tmp_path / "run")
    manifest = Manifest.load(run)
    dataclasses.replace(manifest, input=InputSpec(64, 64)).save(run)  # the model takes 32x32
    with pytest.raises(ManifestError, match=r"input shape \[None, 32, 32, 3\] does not match the manifest's 64x64x3"):
        evaluate(run, manifest.data["root"], out_dir=tmp_path / "evaluation")
    assert not (tmp_path / "evaluation" / "evaluation.json").exists()


def test_a_missing_model_file_names_the_fix(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    (run / "model.keras").unlink()
    with pytest.raises(ManifestError, match=r"model\.keras: missing; the run folder is incomplete"):
        load_run_model(run, Manifest.load(run))
