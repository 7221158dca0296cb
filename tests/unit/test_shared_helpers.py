"""The one-of-each helpers every stage shares: error lines, atomic writes, child Pythons, metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeclf.runtime import metrics
from edgeclf.runtime.child import CHECKOUT, child_env
from edgeclf.runtime.errors import first_line
from edgeclf.runtime.fileio import atomic_path


def test_first_line_skips_blank_lines_and_falls_back_to_the_type_name():
    assert first_line(ValueError("\n  \n  Op type not registered 'X'  \n  in binary running on host\n")) == (
        "Op type not registered 'X'"
    )
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("   ")) == "RuntimeError"
    assert first_line("text from a child\nits traceback") == "text from a child"
    assert first_line("") == ""


@pytest.mark.parametrize(
    ("name", "expected_suffix"),
    [("model.keras", ".partial.keras"), ("best.weights.h5", ".partial.weights.h5"), ("plot.png", ".partial.png")],
)
def test_atomic_path_keeps_the_suffix_writers_insist_on(tmp_path: Path, name: str, expected_suffix: str):
    final = tmp_path / name
    with atomic_path(final, keep_suffix=True) as tmp:
        assert tmp.name.startswith(f".{name}.") and tmp.name.endswith(expected_suffix)
        tmp.write_text("done")
    assert final.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_atomic_path_with_kept_suffix_leaves_nothing_behind_on_failure(tmp_path: Path):
    final = tmp_path / "plot.png"
    final.write_text("previous")
    with pytest.raises(RuntimeError), atomic_path(final, keep_suffix=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("savefig failed")
    assert final.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_child_env_puts_this_checkout_first_and_keeps_the_rest():
    env = child_env({"PYTHONPATH": os.pathsep.join(["", "/elsewhere"]), "KEEP": "1"}, quiet_tensorflow=True)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(CHECKOUT), "/elsewhere"]  # no empty entry (= the cwd)
    assert env["KEEP"] == "1" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert child_env({"TF_CPP_MIN_LOG_LEVEL": "0"}, quiet_tensorflow=True)["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert "TF_CPP_MIN_LOG_LEVEL" not in child_env({})


def test_a_child_python_imports_this_checkout(tmp_path: Path):
    code = "import json, edgeclf.runtime; print(json.dumps(edgeclf.runtime.__file__))"
    env = child_env({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(json.loads(done.stdout)).resolve() == CHECKOUT / "edgeclf" / "runtime" / "__init__.py"


def test_to_scores_turns_a_clipped_sigmoid_into_two_columns():
    scores = metrics.to_scores(np.array([[0.25], [1.004], [-0.002]], np.float32), "sigmoid")
    np.testing.assert_allclose(scores, [[0.75, 0.25], [0.0, 1.0], [1.0, 0.0]])
    softmax = np.array([[0.1, 0.7, 0.2]], np.float32)
    np.testing.assert_array_equal(metrics.to_scores(softmax, "softmax"), softmax)


def test_accuracy_agreement_and_differences_count_top1_labels():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    scores = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 0])
    assert metrics.top1(scores).tolist() == [0, 1, 1, 1]
    assert metrics.accuracy(scores, labels) == 0.75
    assert metrics.accuracy(reference, labels) == 0.5
    assert metrics.agreement(scores, reference) == 0.75
    assert metrics.abs_diff(scores, reference).max() == pytest.approx(0.2)
    assert metrics.confusion_matrix(labels, metrics.top1(scores), 2).tolist() == [[1, 1], [0, 2]]
