"""Shared fixtures.

``tiny_run`` / ``tiny_run_softmax`` are real run folders made by the real :func:`edgeclf.trainer.train` on a
small generated data set: every stage downstream of training (export, runtime,
benchmarks) tests against them. They need TensorFlow and skip cleanly without it.

Their models must tell images apart, or a preprocessing or quantisation mistake downstream changes
nothing the tests can see. The demo pictures alone (shapes; colour deliberately not tied to the
class) need many epochs; so each class is tinted (``edgeclf.trainer.demo_data.tint_classes``, which
``make fixture-models`` uses too: cars warm, elephants cool, the third class green), and the seed
preset (no BatchNorm, whose moving statistics lag behind for the first few steps) learns that in
2 epochs: measured 100% on the 24 held-out images, probabilities spread over 0.48, every image at
least 0.047 from the decision boundary, and a swap of the colour channels flips every decision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_IMAGE_SIZE = 32


def _tiny_data(root: Path, *, three_classes: bool) -> Path:
    from PIL import Image, ImageOps

    from edgeclf.trainer.demo_data import CLASS_TINT, generate_demo_dataset, tint_classes

    data = generate_demo_dataset(
        root / "demo", train_per_class=12, validation_per_class=6, test_per_class=6, image_size=(64, 48), seed=0
    )
    if three_classes:
        # A third class for a softmax model: the car photos turned upside down and colour-inverted,
        # different enough from both others that the labels mean something.
        for split in ("train", "validation", "test"):
            target = data / split / "inverted"
            target.mkdir()
            for path in sorted((data / split / "cars").glob("*.jpg")):
                with Image.open(path) as image:
                    ImageOps.invert(image.convert("RGB")).rotate(180).save(target / path.name, quality=90)
    # The third class green, beside the demo set's own tints (cars warm, elephants cool).
    tint_classes(data, {**CLASS_TINT, "inverted": (0.3, 1.0, 0.3)})
    return data


def _tiny_train(tmp_path_factory: pytest.TempPathFactory, name: str, *, three_classes: bool) -> Path:
    pytest.importorskip("tensorflow")
    from edgeclf.trainer.train import TrainConfig, train

    root = tmp_path_factory.mktemp(name)
    data = _tiny_data(root, three_classes=three_classes)
    config = TrainConfig(
        data=str(data),
        preset="seed",  # small, no BatchNorm, quick to train and export (the default is pretrained Lite0)
        out=str(root / "run"),
        image_size=TINY_IMAGE_SIZE,
        epochs=2,
        batch_size=8,
        seed=0,
        verbose=0,
    )
    return train(config)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder: 2 classes (cars, elephants) -> one sigmoid output, 32×32 input."""
    return _tiny_train(tmp_path_factory, "tiny-run", three_classes=False)


@pytest.fixture(scope="session")
def tiny_run_softmax(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder: 3 classes (cars, elephants, inverted) -> softmax output, 32×32 input."""
    return _tiny_train(tmp_path_factory, "tiny-run-softmax", three_classes=True)


@pytest.fixture(scope="session")
def fixture_run() -> Path:
    """The exported models of ``make fixture-models``, found via ``$EDGECLF_FIXTURE_RUN``.

    Lets the runtime's unit tests run real model files in venvs without TensorFlow. Skips when the
    variable is unset (a plain ``make test``); fails when it is set but the folder is not a run.
    """
    import os

    value = os.environ.get("EDGECLF_FIXTURE_RUN")
    if not value:
        pytest.skip("EDGECLF_FIXTURE_RUN is not set (run `make fixture-models`; `make test-edge` sets it)")
    path = Path(value)
    if not (path / "manifest.json").is_file():
        pytest.fail(f"EDGECLF_FIXTURE_RUN={value} is not an exported run folder; run `make fixture-models`")
    return path


@pytest.fixture(scope="session")
def serve_run() -> Path:
    """A tiny exported run whose label follows the picture (``make fixture-models``, ``$EDGECLF_SERVE_RUN``).

    The ``edgeclf serve`` tests need label changes to show (trained 60 epochs: confident answers).
    Skips when the variable is unset; fails when it is set but is not a run.
    """
    import os

    value = os.environ.get("EDGECLF_SERVE_RUN")
    if not value:
        pytest.skip("EDGECLF_SERVE_RUN is not set (run `make fixture-models`; `make test-edge` sets it)")
    path = Path(value)
    if not (path / "manifest.json").is_file():
        pytest.fail(f"EDGECLF_SERVE_RUN={value} is not an exported run folder; run `make fixture-models`")
    return path
