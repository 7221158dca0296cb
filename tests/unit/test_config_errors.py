"""Bad options and config values are one ConfigError (an EdgeclfError the CLI prints as one line)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.benchmarks.config import BenchmarkConfig
from edgeclf.cli import app
from edgeclf.exporter.config import ExportConfig
from edgeclf.runtime.classifier import ClassifierOptions
from edgeclf.runtime.errors import ConfigError
from edgeclf.runtime.stable import StableOptions
from edgeclf.trainer.augment import AugmentSpec
from edgeclf.trainer.demo_data import render_demo_image
from edgeclf.trainer.presets import PRESETS, get_preset


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ClassifierOptions(top_k=0), "--top-k: expected at least 1, got 0"),
        (lambda: ClassifierOptions(threshold=1.5), "--threshold: expected a probability between 0 and 1, got 1.5"),
        (lambda: ClassifierOptions(max_pixels=0), "--max-megapixels: expected a positive pixel limit, got 0"),
        (lambda: StableOptions(hold=0), "--hold must be at least 1 frame, got 0"),
        (lambda: ExportConfig(opset=99), "--opset 99 is not an ONNX opset"),
        (lambda: BenchmarkConfig(run_dir=".", reference="pytorch"), "--reference 'pytorch': expected one of"),
        (lambda: AugmentSpec(fill_mode="mirror"), "unknown fill_mode 'mirror'; known: "),
        (lambda: dataclasses.replace(get_preset("seed"), optimizer="lion"), "unknown optimizer 'lion'"),
        (lambda: render_demo_image("zebra", (32, 32), np.random.default_rng(0)), "unknown demo class 'zebra'"),
    ],
)
def test_a_bad_option_or_config_value_is_a_config_error(make, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert str(caught.value).startswith(message), str(caught.value)


def test_an_unknown_preset_is_one_line_on_stderr_with_exit_code_1(tmp_path) -> None:
    result = CliRunner().invoke(app, ["augment-preview", str(tmp_path / "x.jpg"), "--preset", "resnet"])
    if "TensorFlow is not installed" in result.output:
        pytest.skip("augment-preview needs TensorFlow")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: unknown preset 'resnet'; known: " + PRESETS.help_list()]
