"""The manifest of a TF.js export (``precompute.schema_export``): its JSON round trip, its key order (export.json's
bytes) and the errors for a file that does not fit, without Keras (the exporter's own tests: test_tfjs_export.py)."""

from __future__ import annotations

import json

import pytest

from precompute.preprocessing import KERAS_CAFFE
from precompute.schema_export import EXPORT_FORMAT, EXPORTER_VERSION, TFJS_VERSION, TfjsExportSpec, VariantFiles

HEAD = {"layers": {"top_conv": {"dense": "head_top_conv", "units": 64}}}


def _spec(head: dict | None = None) -> TfjsExportSpec:
    files = VariantFiles(2048, ("model.json", "group1-shard1of1.bin"))
    return TfjsExportSpec(224, KERAS_CAFFE, ("block1_conv2", "top_conv"), (64, 1280), {"uint8": files}, head)


def test_the_manifest_round_trips_through_json_in_a_fixed_key_order() -> None:
    for spec in (_spec(), _spec(HEAD)):
        data = spec.to_dict()
        assert TfjsExportSpec.from_dict(json.loads(json.dumps(data))) == spec
        assert (data["format"], data["exporter_version"], data["tfjs_version"]) == (
            EXPORT_FORMAT,
            EXPORTER_VERSION,
            TFJS_VERSION,
        )
    # export.json is written with json.dumps in this order: another order changes every export's bytes.
    assert list(_spec(HEAD).to_dict()) == [
        "format", "exporter_version", "tfjs_version", "input_size", "channel_order", "scale", "offset", "layers",
        "output_dims", "variants", "head",
    ]  # fmt: skip
    assert "head" not in _spec().to_dict()  # a model without heads writes no head key
    assert _spec().to_dict()["channel_order"] == "bgr" and _spec().to_dict()["offset"] == list(KERAS_CAFFE.offset)


def test_a_manifest_that_does_not_fit_is_a_value_error_saying_what() -> None:
    data = _spec().to_dict()
    with pytest.raises(ValueError, match="format 2; this version reads 1"):
        TfjsExportSpec.from_dict({**data, "format": 2})
    with pytest.raises(ValueError, match="format 'list'"):
        TfjsExportSpec.from_dict([data])
    with pytest.raises(ValueError, match="KeyError: 'channel_order'"):
        TfjsExportSpec.from_dict({k: v for k, v in data.items() if k != "channel_order"})
    with pytest.raises(ValueError, match="does not fit format 1 .AttributeError"):
        TfjsExportSpec.from_dict({**data, "variants": ["uint8"]})
    with pytest.raises(ValueError, match="does not fit format 1 .TypeError"):
        TfjsExportSpec.from_dict({**data, "scale": 3})
    with pytest.raises(ValueError, match="Unknown channel order 'rbg'"):
        TfjsExportSpec.from_dict({**data, "channel_order": "rbg"})
