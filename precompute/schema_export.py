"""The manifest of a TF.js export (``export.json``) as a typed record: the only code that knows its keys.

``precompute.schema`` holds the records of the artifact index (``index.json``), whose ``TfjsExport`` says per model
whether it has an export and its bytes per variant; this module holds what the export folder itself says, which the
browser reads too. ``precompute.tfjs_export`` writes it, ``precompute.readers.tfjs.read_export_spec`` reads it, and
the app reads it through ``playground.store.Store.tfjs_export``. The layout (``precompute.artifacts.tfjs_dir``)::

    <artifacts>/<dataset>/<model>/tfjs/export.json
    <artifacts>/<dataset>/<model>/tfjs/<variant>/model.json, group1-shard1of<n>.bin, ...

``export.json`` (format ``EXPORT_FORMAT``) holds the input size, the input transform (a
``precompute.preprocessing.PixelAffine``: channel order, scale, offset), the layers (one model output per layer, in
that order, each the row ``features.npy`` stores: same pooling or flatten), their widths, each variant's files and
bytes, and for a model with trained heads where each head is.

Examples
--------
>>> from precompute.preprocessing import LITE
>>> spec = TfjsExportSpec(224, LITE, ("top_conv",), (1280,), {"uint8": VariantFiles(3512345, ("model.json",))})
>>> TfjsExportSpec.from_dict(spec.to_dict()) == spec
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from precompute.preprocessing import PixelAffine

TFJS_VERSION = "4.22.0"  # the TensorFlow.js the app serves (precompute.npm_files.TFJS); its loader reads these files
EXPORT_FORMAT = 1
EXPORT_FILE = "export.json"
# Bump when precompute.tfjs_export writes different files, so older exports are redone (precompute.staleness).
EXPORTER_VERSION = 1


@dataclass(frozen=True)
class VariantFiles:
    """One written variant: its files (``model.json`` first) and their total size."""

    bytes: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class TfjsExportSpec:
    """The content of ``export.json``."""

    input_size: int
    transform: PixelAffine
    layers: tuple[str, ...]
    output_dims: tuple[int, ...]
    variants: dict[str, VariantFiles] = field(default_factory=dict)
    # A model with trained heads (precompute.head): where each head is (its Dense layer per output); else None.
    head: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        head = {"head": self.head} if self.head else {}
        return {
            "format": EXPORT_FORMAT,
            "exporter_version": EXPORTER_VERSION,
            "tfjs_version": TFJS_VERSION,
            "input_size": self.input_size,
            "channel_order": self.transform.channel_order,
            "scale": list(self.transform.scale),
            "offset": list(self.transform.offset),
            "layers": list(self.layers),
            "output_dims": list(self.output_dims),
            "variants": {name: {"bytes": v.bytes, "files": list(v.files)} for name, v in self.variants.items()},
            **head,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TfjsExportSpec:
        """The record of ``export.json``'s parsed JSON.

        Raises
        ------
        ValueError
            Another format, or a value that does not fit it (a missing key, a wrong type); the message says which.
        """
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"export.json format {found!r}; this version reads {EXPORT_FORMAT}.")
        try:
            transform = PixelAffine(data["channel_order"], tuple(data["scale"]), tuple(data["offset"]))
            variants = {name: VariantFiles(int(v["bytes"]), tuple(v["files"])) for name, v in data["variants"].items()}
            return cls(
                int(data["input_size"]),
                transform,
                tuple(data["layers"]),
                tuple(data["output_dims"]),
                variants,
                data.get("head"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"export.json does not fit format {EXPORT_FORMAT} ({type(exc).__name__}: {exc})") from exc


__all__ = ["EXPORTER_VERSION", "EXPORT_FILE", "EXPORT_FORMAT", "TFJS_VERSION", "TfjsExportSpec", "VariantFiles"]
