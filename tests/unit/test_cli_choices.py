"""The command line's choices and help come from the registries, and every command spells --format alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from edgeclf.benchmarks.config import REFERENCES, SWEEPS, BenchmarkConfig
from edgeclf.benchmarks.runner import plan_rows
from edgeclf.cli import app
from edgeclf.commands.choices import split_names
from edgeclf.exporter.context import TARGETS
from edgeclf.exporter.formats import FORMATS
from edgeclf.runtime.backends import BACKENDS
from edgeclf.runtime.classifier import FORMAT_PREFERENCE
from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, TensorInfo
from edgeclf.trainer.class_weight import CLASS_WEIGHT_MODES
from edgeclf.trainer.config import STRATEGIES
from edgeclf.trainer.evaluate import SPLIT_CHOICES

COMMAND = typer.main.get_command(app)


def _param(command: str, name: str):
    return next(p for p in COMMAND.commands[command].params if p.name == name)


def _parse(command: str, args: list[str]) -> dict:
    return COMMAND.commands[command].make_context(command, args).params


def _choices(command: str, name: str) -> tuple[str, ...]:
    return tuple(member.value for member in _param(command, name).type_descriptor.annotation)


@pytest.mark.parametrize("command", ["classify", "camera", "serve", "verify"])
def test_backend_choices_are_the_registered_backends(command: str) -> None:
    assert _choices(command, "backend") == BACKENDS.names()


def test_target_choices_are_the_registered_targets() -> None:
    assert _choices("export", "target") == TARGETS.names()


def test_an_unregistered_backend_is_a_usage_error_listing_the_registered_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(tmp_path), "x.jpg", "--backend", "tensorrt"])
    assert result.exit_code == 2
    assert all(name in result.output for name in BACKENDS.names()), result.output


def test_benchmark_reference_and_sweep_choices_are_the_configs_own() -> None:
    assert (_choices("benchmark", "reference"), _choices("benchmark", "sweep")) == (REFERENCES, SWEEPS)


def test_training_choices_are_the_trainers_own() -> None:
    assert _choices("train", "strategy") == STRATEGIES
    assert _choices("train", "class_weight") == CLASS_WEIGHT_MODES
    assert _choices("evaluate", "split") == SPLIT_CHOICES


def test_target_help_describes_every_registered_target() -> None:
    assert all(f"{name}: {TARGETS[name]}" in _param("export", "target").help for name in TARGETS)


def test_the_runtime_format_order_names_every_export_format_once() -> None:
    assert sorted(FORMAT_PREFERENCE) == sorted(FORMATS.names())


@pytest.mark.parametrize(
    ("command", "names"),
    [("export", FORMATS.names()), ("benchmark", FORMAT_PREFERENCE), ("classify", FORMAT_PREFERENCE)],
)
def test_format_help_lists_every_registered_format(command: str, names: tuple[str, ...]) -> None:
    help_text = _param(command, "formats" if command != "classify" else "format_name").help
    assert re.search(", ".join(names), help_text), help_text


@pytest.mark.parametrize("command", ["export", "benchmark"])
def test_format_is_spelled_alike_repeated_or_comma_separated(command: str) -> None:
    params = _parse(command, ["run", "--format", "tflite-int8", "--formats", "onnx-fp32", "-f", "a,b"])
    assert split_names(params["formats"]) == ("tflite-int8", "onnx-fp32", "a", "b")


@pytest.mark.parametrize("command", ["classify", "camera", "serve", "verify"])
def test_one_format_is_spelled_format_or_f(command: str) -> None:
    extra = ["image.jpg"] if command == "classify" else []
    assert _parse(command, ["run", *extra, "--format", "onnx-int8"])["format_name"] == "onnx-int8"
    assert _parse(command, ["run", *extra, "-f", "tflite-fp16"])["format_name"] == "tflite-fp16"


def test_the_benchmark_hint_to_export_is_a_command_export_accepts(tmp_path: Path) -> None:
    spec = TensorInfo("images", "uint8", (1, 8, 8, 3))
    only_int8 = Artifact("tflite-int8", "int8", "model_tflite-int8.tflite", 1, "0" * 64, "litert", (spec,), (spec,))
    manifest = Manifest(("a", "b"), InputSpec(8, 8), "softmax", "test", artifacts=(only_int8,))
    with pytest.raises(ManifestError, match="edgeclf export") as caught:
        plan_rows(manifest, BenchmarkConfig(run_dir=tmp_path, reference="tflite-fp32"), tmp_path)
    hint = re.search(r"`edgeclf export (.+?)`", str(caught.value)).group(1).split()
    assert split_names(_parse("export", hint)["formats"]) == ("tflite-fp32",)
