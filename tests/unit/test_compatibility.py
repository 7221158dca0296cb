"""The exporter's per-runtime verdicts: one parser, the JSON shape manifests already have."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgeclf.runtime.classifier import compatibility_problem
from edgeclf.runtime.compatibility import Compatibility, verdict_for
from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, TensorInfo
from edgeclf.runtime.outcome import Status

# As the exporter writes it today (copied from a real run's manifest.json, reason shortened).
WRITTEN = {
    "litert": "ok",
    "tflite-runtime==2.14": "tflite-runtime 2.14: tflite-runtime cannot load this model "
    "(Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'.)",
}


def _artifact(compatibility) -> Artifact:
    tensor = TensorInfo("images", "uint8", (1, 8, 8, 3))
    return Artifact(
        "tflite-dynamic", "dynamic", "model_tflite-dynamic.tflite", 1, "ab" * 32, "litert", (tensor,), (tensor,),
        compatibility=compatibility,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key", "runtime", "requirement"),
    [
        ("tflite-runtime==2.14", "tflite-runtime", "==2.14"),
        ("tflite-runtime >=2.14", "tflite-runtime", ">=2.14"),
        ("tflite-runtime<2.15", "tflite-runtime", "<2.15"),
        ("litert", "litert", ""),
        ("onnxruntime 1.20", "onnxruntime", "1.20"),
    ],
)
def test_a_key_is_a_runtime_and_an_optional_requirement(key: str, runtime: str, requirement: str) -> None:
    entry = Compatibility.parse(key, "ok")
    assert (entry.key, entry.runtime, entry.requirement, entry.ok) == (key, runtime, requirement, True)


def test_ok_is_the_one_verdict_that_means_it_runs() -> None:
    assert Compatibility.parse("litert", " OK ").ok
    for verdict in ("yes", "passed", "FULLY_CONNECTED v12", ""):
        entry = Compatibility.parse("litert", verdict)
        assert not entry.ok and entry.problem() == f"litert: {verdict}"


def test_the_verdict_for_a_runtime_is_its_first_refusal_else_its_ok() -> None:
    entries = {"tflite-runtime==2.15": "ok", **WRITTEN}
    assert verdict_for(entries, "tflite-runtime").key == "tflite-runtime==2.14"
    assert verdict_for(entries, "litert").ok
    assert verdict_for(entries, "onnxruntime") is None


def test_a_written_manifest_reads_back_with_the_same_entries_and_verdicts(tmp_path) -> None:
    manifest = Manifest(("a", "b"), InputSpec(8, 8), "softmax", "test", artifacts=(_artifact(WRITTEN),))
    manifest.save(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["artifacts"][0]["compatibility"] == WRITTEN
    artifact = Manifest.load(tmp_path).artifact("tflite-dynamic")
    assert artifact.compatibility == WRITTEN
    assert artifact.compatibility_with("litert").ok
    assert compatibility_problem(artifact, "litert") is None
    assert (
        compatibility_problem(artifact, "tflite-runtime") == f"tflite-runtime==2.14: {WRITTEN['tflite-runtime==2.14']}"
    )
    assert compatibility_problem(artifact, "onnxruntime") is None  # nothing recorded: not refused


def test_a_verdict_that_is_not_text_is_one_manifest_error(tmp_path) -> None:
    manifest = Manifest(("a", "b"), InputSpec(8, 8), "softmax", "test", artifacts=(_artifact({}),))
    data = manifest.to_dict()
    data["artifacts"][0]["compatibility"] = {"litert": True}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"compatibility\['litert'\] should be 'ok' or a reason, got bool"):
        Manifest.load(tmp_path)


def test_status_reads_and_prints_as_the_words_already_written() -> None:
    assert [Status(word) for word in ("passed", "failed", "refused", "error")] == [
        Status.PASSED, Status.FAILED, Status.REFUSED, Status.ERROR,
    ]  # fmt: skip
    assert f"{Status.REFUSED}" == "refused" and json.dumps({"status": Status.FAILED}) == '{"status": "failed"}'
    assert [s for s in Status if s.made] == [Status.PASSED, Status.FAILED]
    assert dataclasses.asdict(dataclasses.make_dataclass("R", [("status", Status)])(Status.ERROR)) == {
        "status": "error"
    }
