"""Every classifier family exports to TorchScript and ONNX with its preprocessing inside, and the
files answer what the serving code answers on raw samples (untrained nets: the graph is what is
checked; trained ones are checked through the API in tests/api/test_export_api.py)."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch

import models
from app.core.datasets.arrays import load_raw
from app.core.model_card import ModelCard
from app.serving import export, forward
from app.serving.loading import LoadedModel, Servable
from worker.training.data import prepare

CASES = [  # architecture, params, dataset, exports to ONNX
    ("mlp", {"hidden_sizes": [32], "batch_norm": True}, "builtin:digits", True),
    ("lenet5", {}, "builtin:digits", True),
    ("alexnet", {"width": 0.25}, "builtin:digits", True),
    ("resnet", {"depth": 18, "width": 0.125}, "builtin:digits", True),
    ("transformer", {"d_model": 16, "layers": 1}, "builtin:digits", True),
    ("sequential", {"layers": [{"type": "embedding", "embedding_dim": 8}, {"type": "lstm", "hidden_size": 16}, {"type": "flatten"},
                               {"type": "linear", "out_features": 2}]}, "builtin:parity", True),
    # rnn packs its padded sequences by length; neither ONNX exporter follows that.
    ("rnn", {"cell": "gru", "hidden_size": 16}, "builtin:digits", False),
    ("rnn", {"cell": "lstm", "hidden_size": 16}, "builtin:parity", False),
]


def loaded_model(name: str, params: dict, dataset: str) -> tuple[LoadedModel, np.ndarray, np.ndarray | None]:
    arch = models.get(name)
    p = arch.make_params(params)
    takes = arch.input_spec(p)
    raw = load_raw(dataset)
    prepared = prepare(raw, input_kind=takes.kind, input_size=takes.size, input_channels=takes.channels, validation_fraction=0.0, seed=0)
    pre = prepared.preprocessing
    torch.manual_seed(0)
    net = arch.build(p, pre.input_shape, len(prepared.class_names), vocab_size=pre.vocab_size).eval()
    card = ModelCard(architecture=name, params=params, input_shape=list(pre.input_shape), sample_shape=list(pre.sample_shape),
                     class_names=list(prepared.class_names), preprocessing=pre.to_dict())
    loaded = LoadedModel(Servable.of("mdl_test", card, weights="unused"), net, 0)
    lengths = None if raw.lengths is None else raw.lengths[:16]
    return loaded, np.asarray(raw.x[:16]), lengths


@pytest.mark.parametrize("name,params,dataset,onnx_ok", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_exported_files_answer_what_serving_answers(name, params, dataset, onnx_ok):
    loaded, x, lengths = loaded_model(name, params, dataset)
    feed_x = x.astype(np.int64) if loaded.pre.tokens else x.astype(np.float32)
    full = None if lengths is None else lengths.astype(np.int64)
    if loaded.servable.takes_lengths and full is None:
        full = np.full(len(x), x.shape[1], dtype=np.int64)
    expected = forward.probabilities(loaded, x.astype(np.float32), full)

    module = torch.jit.load(io.BytesIO(export.torchscript_bytes(loaded)))
    args = (torch.from_numpy(feed_x),) + ((torch.from_numpy(full),) if loaded.servable.takes_lengths else ())
    with torch.no_grad():
        np.testing.assert_allclose(module(*args).numpy(), expected, atol=1e-5, rtol=0)

    if not onnx_ok:
        with pytest.raises(export.ExportUnsupported, match=r"^the ONNX exporters cannot follow this network \(it reads each sequence"):
            export.onnx_bytes(loaded)  # said plainly: the exporters' own text (graphs, colour codes) stays in the log
        return
    session = ort.InferenceSession(export.onnx_bytes(loaded), providers=["CPUExecutionProvider"])
    feeds = {"samples": feed_x} | ({"lengths": full} if loaded.servable.takes_lengths else {})
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-5, rtol=0)
