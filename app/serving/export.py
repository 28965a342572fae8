"""A trained classifier as a standalone file: TorchScript or ONNX, or its safetensors weights.

The TorchScript and ONNX files take what predict takes, raw samples ``(N, *sample_shape)`` in the
dataset's units (and, for sequence networks, their lengths), and give what predict gives,
class probabilities ``(N, classes)``: the model's preprocessing (scale, bilinear resize,
standardisation) is part of the graph, done by the same matrices as ``app.core.preprocessing``. Class
names and the preprocessing ride along as metadata (ONNX ``metadata_props``, a ``kiln.json``
extra file in TorchScript). Built once per model and kept beside its weights.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import numpy as np
import orjson
import torch
from torch import nn

from app.core import preprocessing
from app.core.artifacts import layout
from app.core.errors import Conflict
from app.serving.cache import ModelCache
from app.serving.loading import LoadedModel, Servable

# The lowest opset torch's exporter implements: asking for less makes it convert down afterwards, with a warning.
ONNX_OPSET = 18
log = logging.getLogger("kiln.export")
# The exporters narrate every pass at INFO and warn about torchvision operators no Kiln network uses:
# nothing an API's operator can act on. A failed export is logged here at debug with the exporter's
# reason, and said to the caller in one sentence.
for _chatty in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir"):
    logging.getLogger(_chatty).setLevel(logging.ERROR)


class RawToProbabilities(nn.Module):
    """Preprocessing + network + softmax, as one module that tracing can record."""

    def __init__(self, loaded: LoadedModel):
        super().__init__()
        pre = loaded.pre
        self.net = loaded.net
        self.pre = pre
        self.takes_lengths = loaded.servable.takes_lengths
        self.chw = preprocessing.image_chw(pre.sample_shape) if pre.layout == "image" else None
        if pre.resize is not None and self.chw is not None:
            self.register_buffer("rows", torch.from_numpy(np.array(preprocessing.resize_matrix(self.chw[1], pre.resize[0]))))
            self.register_buffer("cols_t", torch.from_numpy(np.array(preprocessing.resize_matrix(self.chw[2], pre.resize[1]).T)))
        else:
            self.rows = self.cols_t = None
        if pre.mean and not pre.tokens:
            shape = preprocessing.STATS_SHAPE[pre.layout]
            self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).reshape(shape))
            self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).reshape(shape))
        else:
            self.mean = self.std = None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        pre = self.pre
        if pre.tokens:
            x = x.long().reshape(-1, *pre.input_shape)
        else:
            x = x.float() * pre.scale
            if self.chw is not None:
                x = x.reshape(-1, *self.chw)
                if self.rows is not None:
                    x = torch.matmul(torch.matmul(self.rows, x), self.cols_t)
            elif pre.layout == "vector":
                x = x.reshape(-1, int(np.prod(pre.sample_shape)))
            if self.mean is not None:
                x = (x - self.mean) / self.std
            x = x.reshape(-1, *pre.input_shape)
        logits = self.net(x, lengths) if self.takes_lengths else self.net(x)
        return torch.softmax(logits, dim=1)


def example_inputs(loaded: LoadedModel, n: int = 2) -> tuple[torch.Tensor, ...]:
    dtype = torch.int64 if loaded.pre.tokens else torch.float32
    x = torch.ones((n, *loaded.pre.sample_shape), dtype=dtype)
    if loaded.servable.takes_lengths:
        return x, torch.full((n,), loaded.pre.sample_shape[0], dtype=torch.int64)
    return (x,)


def description(servable: Servable) -> dict[str, Any]:
    """What a file needs to be used without Kiln: the classes, the raw sample's shape, the preprocessing."""
    card = servable.card
    return {"kiln.model_id": servable.id, "kiln.architecture": card.architecture, "kiln.class_names": card.class_names,
            "kiln.sample_shape": card.sample_shape, "kiln.preprocessing": card.preprocessing}


def metadata(servable: Servable) -> dict[str, str]:
    """The description as ONNX metadata_props, whose values can only be strings: lists and objects as JSON."""
    return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in description(servable).items()}


def torchscript_bytes(loaded: LoadedModel) -> bytes:
    module = RawToProbabilities(loaded).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values; the graph is fixed per model
        try:
            traced = torch.jit.trace(module, example_inputs(loaded), check_trace=False)
        except Exception:  # noqa: BLE001 - the tracer's limit: said plainly to the caller, the details to the log
            log.debug("TorchScript tracing failed", exc_info=True)
            raise ExportUnsupported("TorchScript tracing cannot follow this network; format=safetensors has its weights") from None
        out = io.BytesIO()
        # torch 2.13 marks TorchScript deprecated in favour of torch.export; the format users ask for still loads everywhere.
        torch.jit.save(traced, out, _extra_files={"kiln.json": orjson.dumps(description(loaded.servable))})  # plain JSON, nothing encoded twice
    return out.getvalue()


def onnx_bytes(loaded: LoadedModel) -> bytes:
    """torch.export's exporter first (it knows adaptive pooling and the fused transformer layer),
    then the TorchScript-based one. Neither follows pack_padded_sequence, so ``rnn`` (which packs
    its sequences by length) exports to TorchScript only."""
    module = RawToProbabilities(loaded).eval()
    args = example_inputs(loaded)
    names = ["samples", "lengths"][: len(args)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            batch = torch.export.Dim("batch")
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=ONNX_OPSET, input_names=names, output_names=["probabilities"],
                dynamic_shapes=tuple({0: batch} for _ in args), verbose=False,
            )
            proto = program.model_proto
        except Exception as first:  # noqa: BLE001 - try the other exporter, then report the first error
            try:
                proto = _onnx_by_tracing(module, args, names)
            except Exception:  # noqa: BLE001 - said plainly to the caller, the exporters' own words to the log
                log.debug("ONNX export failed: %s", first, exc_info=True)
                packed = " (it reads each sequence to its own length, with packed sequences)" if loaded.servable.takes_lengths else ""
                raise ExportUnsupported(f"the ONNX exporters cannot follow this network{packed}; "
                                        "format=torchscript takes raw samples as ONNX would, format=safetensors has its weights") from None
    for key, value in metadata(loaded.servable).items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def _onnx_by_tracing(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str]):
    import onnx

    out = io.BytesIO()
    torch.onnx.export(
        module, args, out, dynamo=False, opset_version=ONNX_OPSET, input_names=names, output_names=["probabilities"],
        dynamic_axes={**{n: {0: "batch"} for n in names}, "probabilities": {0: "batch"}},
    )
    return onnx.load_from_string(out.getvalue())


class ExportUnsupported(Exception):
    """The exporter cannot follow this network."""


BUILDERS = {"torchscript": torchscript_bytes, "onnx": onnx_bytes}


def export_key(cache: ModelCache, servable: Servable, fmt: str) -> str:
    """The artifact key of the file for ``fmt``, built on first ask and kept beside the weights."""
    store = cache.store
    if fmt == "safetensors":
        return servable.weights
    key = layout.model_file(servable.prefix, fmt)
    if store.exists(key):
        return key
    if servable.task != "classify":
        raise Conflict(f"export to {fmt} is for classifiers; this {servable.card.architecture} model does {servable.task}: "
                       "download its weights with format=safetensors")
    try:
        data = BUILDERS[fmt](cache.get(servable))
    except ExportUnsupported as exc:
        raise Conflict(f"this {servable.card.architecture} model cannot be exported to {fmt}: {exc}") from None
    store.write_bytes(key, data)
    return key
