"""The accuracy-vs-latency plot: labels never sit on each other, and the accuracy axis has an honest range."""

import itertools

import pytest

from edgeclf.benchmarks.report import MIN_ACCURACY_SPAN, accuracy_limits, place_labels

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib draws the benchmark plots")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The case that overlapped: three formats within 0.3 ms and one photo of each other.
POINTS = {
    "onnx-fp32": (13.2, 87.5),
    "tflite-fp16": (13.4, 87.5),
    "tflite-fp32": (13.3, 87.25),
    "tflite-int8": (4.3, 87.25),
    "tflite-dynamic": (21.0, 87.0),
    "onnx-int8": (15.0, 87.5),
}


def test_labels_of_nearly_coinciding_points_do_not_overlap():
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs, ys = zip(*POINTS.values(), strict=True)
    ax.plot(xs, ys, "o")
    ax.set_ylim(*accuracy_limits(ys))
    texts = place_labels(ax, list(POINTS.values()), list(POINTS))
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert [t.get_text() for t in texts] == list(POINTS)
    for (a, box_a), (b, box_b) in itertools.combinations(zip(POINTS, boxes, strict=True), 2):
        assert not box_a.overlaps(box_b), f"{a} and {b} overlap"
    plt.close(fig)


@pytest.mark.parametrize(
    ("values", "bottom", "top"),
    [
        ([87.25, 87.5], 82.375, 92.375),
        ([99.5, 100.0], 90.0, 100.0),
        ([0.0, 1.0], 0.0, 10.0),
        ([50.0, 90.0], 42.0, 98.0),
    ],
)
def test_the_accuracy_axis_spans_at_least_ten_points_within_0_and_100(values, bottom, top):
    low, high = accuracy_limits(values)
    assert (low, high) == pytest.approx((bottom, top))
    assert high - low >= MIN_ACCURACY_SPAN and 0.0 <= low <= min(values) and max(values) <= high <= 100.0
