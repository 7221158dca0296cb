"""The one registry type: register, look up, list, warn on overwrite, one error for unknown names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeclf.runtime.errors import ConfigError, EdgeclfError, UnknownNameError
from edgeclf.runtime.registry import Registry


def test_lookup_returns_what_was_registered_in_registration_order() -> None:
    shapes = Registry("shape")
    shapes.register("square", 4)
    shapes.register("triangle", 3)
    assert shapes.get("triangle") == 3
    assert shapes["square"] == 4
    assert shapes.names() == ("square", "triangle")
    assert list(shapes.items()) == [("square", 4), ("triangle", 3)]
    assert "square" in shapes and "circle" not in shapes and ["unhashable"] not in shapes


def test_unknown_name_is_one_config_error_listing_the_known_names() -> None:
    shapes = Registry("shape")
    shapes.register("square", 4)
    with pytest.raises(UnknownNameError, match=r"^unknown shape 'circle'; known: square$") as caught:
        shapes["circle"]
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, EdgeclfError)
    assert (caught.value.kind, caught.value.name, caught.value.known) == ("shape", "circle", ("square",))
    assert shapes.get("circle", None) is None  # an explicit default is returned, as dict.get does


def test_registering_a_name_twice_warns_and_the_later_one_wins() -> None:
    shapes = Registry("shape")
    shapes.register("square", 4)
    with pytest.warns(UserWarning, match="Overwriting shape 'square' in registry"):
        shapes.register("square", 5)
    assert shapes.get("square") == 5


def test_the_loader_runs_once_before_the_first_lookup() -> None:
    calls = []
    shapes: Registry[int] = Registry("shape", loader=lambda: calls.append(shapes.register("hexagon", 6)))
    assert calls == []
    assert shapes.names() == ("hexagon",)
    assert shapes.get("hexagon") == 6
    assert calls == [6]


@pytest.mark.parametrize(
    ("module", "attribute", "kind", "member"),
    [
        ("edgeclf.runtime.backends", "BACKENDS", "backend", "onnxruntime"),
        ("edgeclf.exporter.formats", "FORMATS", "export format", "tflite-int8"),
        ("edgeclf.exporter.context", "TARGETS", "target", "tflite-runtime"),
        ("edgeclf.trainer.presets", "PRESETS", "preset", "default"),
    ],
)
def test_presets_formats_backends_and_targets_are_registries(module, attribute, kind, member) -> None:
    registry = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert isinstance(registry, Registry)
    assert registry.kind == kind and member in registry.names()
    with pytest.raises(UnknownNameError, match=f"unknown {kind} 'nope'"):
        registry.get("nope")


def test_the_export_format_registry_loads_without_tensorflow() -> None:
    # flatbuffers too: `edgeclf --help` lists the formats, and a Pi with tflite-runtime lacks it.
    code = (
        "import sys; from edgeclf.exporter.formats import format_names; print(len(format_names())); "
        "print(any(m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'flatbuffers') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["6", "False"]
