"""The manifest's optional, versioned ``open_set`` entry: round trip, embedding, refusals."""

from __future__ import annotations

import dataclasses

import pytest

from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.manifest import InputSpec, Manifest, OpenSet


def _manifest(**changes) -> Manifest:
    base = Manifest(labels=("a", "b"), input=InputSpec(height=32, width=32), output_activation="sigmoid", preset="x")
    return dataclasses.replace(base, **changes)


def test_open_set_survives_json_and_is_embedded_in_each_file():
    open_set = OpenSet(temperature=1.5, threshold=0.9, target_false_accept=0.05, measured={"false_accept": 0.05})
    manifest = _manifest(open_set=open_set)
    assert Manifest.from_dict(manifest.to_dict()).open_set == open_set
    assert Manifest.from_dict(manifest.to_embedded()).open_set == open_set
    assert "open_set" not in _manifest().to_embedded()  # absent stays absent
    assert Manifest.from_dict(_manifest().to_dict()).open_set is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"temperature": 1.0, "version": 2}, "open_set version 2 is not supported"),
        ({"temperature": 0.0}, "temperature must be a positive number"),
        ({"temperature": 1.0, "threshold": 1.5}, "threshold must be between 0 and 1"),
        ({"threshold": 0.5}, "field 'open_set' is malformed"),
        ("0.9", "should be an object"),
    ],
)
def test_a_bad_open_set_entry_is_one_manifest_error(entry, message):
    data = _manifest().to_dict()
    data["open_set"] = entry
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(data)
