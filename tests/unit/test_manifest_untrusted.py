"""A manifest (or embedded payload) is untrusted input: it may arrive with a model file from anyone.

Artifact files must stay inside the run folder (symlinks included), and every field has the type
the runtime relies on, checked once in the one parser; anything else is one ``ManifestError``.
"""

import json
import os

import pytest

from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, TensorInfo, run_file

IN = TensorInfo("images", "uint8", (1, 8, 8, 3))
OUT = TensorInfo("scores", "float32", (1, 1))


def _data(**overrides):
    data = Manifest(("cars", "elephants"), InputSpec(8, 8), "sigmoid", "test").to_dict()
    data.update(overrides)
    return data


def _artifact_dict(file, sha256="ab" * 32):
    return Artifact("tflite-int8", "int8", file, 10, sha256, "litert", (IN,), (OUT,)).__dict__ | {
        "inputs": [IN.__dict__ | {"shape": list(IN.shape)}],
        "outputs": [OUT.__dict__ | {"shape": list(OUT.shape)}],
    }


@pytest.mark.parametrize("file", ["/etc/passwd", "../outside.tflite", "sub/../../outside.tflite", "", "a\0b.tflite"])
def test_an_artifact_path_leaving_the_run_folder_is_refused(tmp_path, file):
    (tmp_path / "manifest.json").write_text(json.dumps(_data(artifacts=[_artifact_dict(file)])))
    with pytest.raises(ManifestError, match="inside the run folder"):
        Manifest.load(tmp_path)


def test_a_model_file_outside_the_run_folder_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_data(model_file="../../other/model.keras")))
    with pytest.raises(ManifestError, match=r"model_file.*inside the run folder"):
        Manifest.load(tmp_path)


def test_an_artifact_symlinked_out_of_the_run_folder_is_never_read(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not yours")
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(secret, run / "model.tflite")
    (run / "manifest.json").write_text(json.dumps(_data(artifacts=[_artifact_dict("model.tflite")])))
    with pytest.raises(ManifestError, match="outside the run folder") as caught:
        Classifier.from_run(run, format="tflite-int8")
    assert "sha256" not in str(caught.value)  # refused before hashing: nothing about the file leaks
    with pytest.raises(ManifestError, match="outside the run folder"):
        run_file(run, "model.tflite")


def test_a_file_inside_the_run_folder_resolves(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.onnx").write_bytes(b"x")
    assert run_file(tmp_path, "sub/m.onnx") == (tmp_path / "sub" / "m.onnx").resolve()


def test_classify_never_hashes_a_file_outside_the_run(tmp_path):
    typer = pytest.importorskip("typer")  # noqa: F841
    from typer.testing import CliRunner

    from edgeclf.cli import app

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(_data(artifacts=[_artifact_dict("../../../../../../etc/hostname")])))
    result = CliRunner().invoke(app, ["classify", str(run), str(tmp_path), "--format", "tflite-int8"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "inside the run folder" in result.stderr and "sha256" not in result.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"training": "hello"}, "'training' should be an object"),
        ({"data": [1, 2]}, "'data' should be an object"),
        ({"metrics": 3}, "'metrics' should be an object"),
        ({"input": {"height": 64.0, "width": 8}}, "height.*whole number"),
        ({"input": {"height": True, "width": 8}}, "height.*whole number"),
        ({"input": {"height": 8, "width": "8"}}, "width.*whole number"),
        ({"input": {"height": 8, "width": 8, "resize_filter": ["x"]}}, "resize_filter"),
        ({"schema_version": "1"}, "schema_version should be a whole number, got str"),
        ({"schema_version": 99}, "schema_version 99 is not supported"),
        ({"labels": [["a"], {"b": 1}]}, "labels should be a list of strings"),
        ({"labels": ["a", 7]}, "labels should be a list of strings"),
        ({"labels": ["a\nb", "c"]}, "control character"),
        ({"labels": ["", "c"]}, "empty label"),
        ({"output_activation": 5}, "'output_activation' should be a str"),
        ({"preset": {"x": 1}}, "'preset' should be a str"),
        ({"artifacts": {"a": 1}}, "'artifacts' should be a list"),
        ({"artifacts": ["x"]}, "artifact entry"),
        ({"artifacts": [_artifact_dict("m.tflite") | {"size_bytes": "big"}]}, "size_bytes"),
        ({"artifacts": [_artifact_dict("m.tflite") | {"inputs": [{"name": "x"}]}]}, "artifact entry"),
        ({"artifacts": [_artifact_dict("m.tflite") | {"sha256": 5}]}, "sha256"),
        ({"artifacts": [_artifact_dict("m.tflite") | {"compatibility": "ok"}]}, "compatibility"),
    ],
)
def test_wrong_types_are_one_manifest_error(tmp_path, overrides, message):
    (tmp_path / "manifest.json").write_text(json.dumps(_data(**overrides)))
    with pytest.raises(ManifestError, match=message):
        Manifest.load(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        '{"labels": ["a", "b"], "n": ' + "9" * 5000 + "}",  # past Python's int-parsing digit limit
        "[" * 100_000 + "]" * 100_000,  # deeper than the recursion limit
        '{"training": ' + '{"a":' * 200 + "1" + "}" * 200 + "}",  # parses, but absurdly nested
    ],
    ids=["5000-digit integer", "deeply nested", "nested section"],
)
def test_hostile_json_is_one_manifest_error(tmp_path, text):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError):
        Manifest.load(tmp_path)


def test_a_valid_manifest_with_artifacts_still_round_trips(tmp_path):
    data = _data(artifacts=[_artifact_dict("model_tflite-int8.tflite")])
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    manifest = Manifest.load(tmp_path)
    assert manifest.artifacts[0].file == "model_tflite-int8.tflite"
    assert manifest.to_dict()["artifacts"][0]["sha256"] == "ab" * 32
