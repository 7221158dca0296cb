"""Stable labels: --smooth averages scores over frames, --hold delays a change until it wins K frames in a row."""

import numpy as np
import pytest

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.stable import LabelStabilizer, StableOptions

LABELS = ("cat", "dog")


def _run(sequence, **options):
    """Feed P(dog) per frame; return the announced label after each frame and the list of changes."""
    stabilizer = LabelStabilizer(LABELS, StableOptions(**options), clock=lambda: 0.0)
    shown, changes = [], []
    for p_dog in sequence:
        _, change = stabilizer.update(np.array([1 - p_dog, p_dog]))
        if change is not None:
            changes.append((change.frame, change.previous, change.label))
        shown.append(stabilizer.current)
    return shown, changes


FLICKER = [0.1, 0.1, 0.6, 0.1, 0.1, 0.7, 0.8, 0.9, 0.9, 0.2, 0.9]


def test_without_options_every_flicker_is_a_change():
    _, changes = _run(FLICKER)
    assert changes == [(1, None, "cat"), (3, "cat", "dog"), (4, "dog", "cat"), (6, "cat", "dog"), (10, "dog", "cat"),
                       (11, "cat", "dog")]  # fmt: skip


def test_hold_announces_a_label_only_after_it_wins_k_frames_in_a_row():
    shown, changes = _run(FLICKER, hold=3)
    # "cat" leads frames 1-2 and 4-5, never 3 in a row; "dog" leads 6-9 and is announced at its third
    assert changes == [(8, None, "dog")]
    assert shown[:7] == [None] * 7  # the first label waits for its K frames too
    assert shown[-1] == "dog"  # the single "cat" frame at 10 was not enough


def test_smooth_averages_the_last_n_frames_scores():
    stabilizer = LabelStabilizer(LABELS, StableOptions(smooth=3))
    for p_dog, expected in [(0.0, 0.0), (0.9, 0.45), (0.9, 0.6), (0.3, 0.7)]:
        predictions, _ = stabilizer.update(np.array([1 - p_dog, p_dog]), top_k=2)
        assert dict((p.label, p.score) for p in predictions)["dog"] == pytest.approx(expected)
    _, changes = _run(FLICKER, smooth=3)
    # the 0.6 spike at frame 3 averages to 0.27: no change; frames 5-7 average 0.53: dog at frame 7
    assert changes == [(1, None, "cat"), (7, "cat", "dog")]


def test_change_events_are_json_ready():
    stabilizer = LabelStabilizer(LABELS, clock=lambda: 1234.5)
    _, change = stabilizer.update(np.array([0.2, 0.8]))
    assert change.to_dict() == {
        "event": "label-change", "label": "dog", "score": 0.8, "previous": None, "frame": 1, "time": 1234.5,
    }  # fmt: skip


@pytest.mark.parametrize("options", [{"smooth": 0}, {"hold": 0}])
def test_nonsense_options_are_refused(options):
    with pytest.raises(EdgeclfError):
        StableOptions(**options)


def test_scores_of_the_wrong_width_are_refused():
    with pytest.raises(EdgeclfError, match="expected 2 scores"):
        LabelStabilizer(LABELS).update(np.array([0.1, 0.2, 0.7]))
