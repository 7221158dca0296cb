"""The manifest round-trips, validates, and refuses what it cannot use with one clear error."""

import dataclasses
import json

import pytest

from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import SCHEMA_VERSION, Artifact, InputSpec, Manifest, RuntimeCheck, TensorInfo
from edgeclf.runtime.outcome import Status


def _manifest(**overrides):
    fields = dict(labels=("cars", "elephants"), input=InputSpec(64, 48), output_activation="sigmoid", preset="tiny")
    fields.update(overrides)
    return Manifest(**fields)


def _artifact(fmt="tflite-int8"):
    return Artifact(
        format=fmt,
        precision="int8",
        file=f"model_{fmt}.tflite",
        size_bytes=123,
        sha256="ab" * 32,
        backend="litert",
        inputs=(TensorInfo("images", "uint8", (1, 64, 48, 3), 1.0, 0),),
        outputs=(TensorInfo("scores", "uint8", (1, 1), 0.00390625, 0),),
        op_versions={"CONV_2D": 3},
    )


def test_round_trip_through_json_file(tmp_path):
    manifest = _manifest(metrics={"val_accuracy": 0.9}).with_artifact(_artifact())
    manifest.save(tmp_path)
    loaded = Manifest.load(tmp_path)
    assert loaded == manifest
    assert loaded.artifact("tflite-int8").outputs[0].scale == pytest.approx(0.00390625)
    assert (tmp_path / "labels.txt").read_text() == "cars\nelephants\n"


def test_with_artifact_replaces_same_format():
    manifest = _manifest().with_artifact(_artifact()).with_artifact(_artifact())
    assert [a.format for a in manifest.artifacts] == ["tflite-int8"]


def test_num_outputs_sigmoid_and_softmax():
    assert _manifest().num_outputs == 1
    assert _manifest(labels=("a", "b", "c"), output_activation="softmax").num_outputs == 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"labels": ("only",)}, "at least two labels"),
        ({"labels": ("a", "a")}, "not unique"),
        ({"output_activation": "relu"}, "unknown output activation"),
        ({"labels": ("a", "b", "c")}, "exactly two labels"),
    ],
)
def test_invalid_manifest_is_refused(overrides, message):
    with pytest.raises(ManifestError, match=message):
        _manifest(**overrides)


def test_unknown_artifact_lists_known_ones():
    manifest = _manifest().with_artifact(_artifact())
    with pytest.raises(ManifestError, match="exported: tflite-int8"):
        manifest.artifact("onnx-fp32")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not readable JSON"),
        ("[]", "expected a JSON object"),
        ('{"input": {"height": 4, "width": 4}, "output_activation": "sigmoid"}', "'labels' is missing"),
        (
            '{"labels": ["a","b"], "input": {"height": 4, "width": 4}, "output_activation": "sigmoid",'
            ' "schema_version": 99}',
            "schema_version 99",
        ),
        (
            '{"labels": ["a","b"], "input": {"height": 4, "width": 4, "bogus": 1}, "output_activation": "sigmoid"}',
            "malformed",
        ),
    ],
)
def test_bad_manifest_file(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ManifestError, match=message):
        Manifest.load(tmp_path)


def test_missing_run_folder(tmp_path):
    with pytest.raises(ManifestError, match="no such run folder"):
        Manifest.load(tmp_path / "nope")


def test_embedded_subset_parses_as_manifest():
    manifest = _manifest().with_artifact(_artifact())
    embedded = json.loads(json.dumps(manifest.to_embedded()))
    assert "artifacts" not in embedded
    assert Manifest.from_dict(embedded).labels == manifest.labels


def test_each_runtimes_parity_figures_round_trip(tmp_path):
    checks = (
        RuntimeCheck("litert", "passed", {"agreement": 1.0, "max_abs_diff": 0.03, "images": 560}, (), "2.3.0"),
        RuntimeCheck(
            "tflite-runtime==2.14", "failed", {"agreement": 0.975, "max_abs_diff": 0.06}, ("agreement 97.50% < 98%",)
        ),
    )
    artifact = dataclasses.replace(_artifact(), runtimes=checks)
    _manifest().with_artifact(artifact).save(tmp_path)
    loaded = Manifest.load(tmp_path).artifact("tflite-int8")
    assert loaded.runtimes == checks
    assert [c.passed for c in loaded.runtimes] == [True, False]
    assert [c.status for c in loaded.runtimes] == [Status.PASSED, Status.FAILED]
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION == 2
    assert [r["status"] for r in written["artifacts"][0]["runtimes"]] == ["passed", "failed"]


def test_a_runtime_check_status_that_is_no_outcome_is_one_manifest_error_naming_the_known_ones(tmp_path):
    data = _manifest().with_artifact(_artifact()).to_dict()
    data["artifacts"][0]["runtimes"] = [{"runtime": "litert", "status": "ok"}]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"runtime check status should be one of passed, failed.*got 'ok'"):
        Manifest.load(tmp_path)


def test_a_version_1_manifest_is_still_read_without_runtime_figures(tmp_path):
    data = _manifest().with_artifact(_artifact()).to_dict()
    data["schema_version"] = 1
    for artifact in data["artifacts"]:
        del artifact["runtimes"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    loaded = Manifest.load(tmp_path)
    assert loaded.artifact("tflite-int8").runtimes == ()
    assert loaded.artifact("tflite-int8").op_versions == {"CONV_2D": 3}


def test_a_malformed_runtime_entry_is_one_manifest_error(tmp_path):
    data = _manifest().with_artifact(_artifact()).to_dict()
    data["artifacts"][0]["runtimes"] = [{"status": "passed"}]  # no runtime name
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="runtime check: field 'runtime' is missing"):
        Manifest.load(tmp_path)
