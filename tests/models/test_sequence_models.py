"""The recurrent and attention families: shapes, lengths respected, and real learning."""

import pytest
import torch

import models
from app.core.datasets.arrays import load_raw
from app.core.datasets.catalog import builtin_dataset
from worker.context import LocalContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig
from worker.training.data import prepare
from worker.training.optim import build_optimizer

ADAM = {"name": "adam", "lr": 5e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


@pytest.mark.parametrize("name,params", [
    ("rnn", {"cell": "rnn"}), ("rnn", {"cell": "lstm", "num_layers": 2, "bidirectional": True, "dropout": 0.1}),
    ("rnn", {"cell": "gru"}), ("transformer", {}), ("transformer", {"pooling": "cls", "positional": "learned"}),
])
@pytest.mark.parametrize("tokens", [True, False])
def test_output_shape_backward_and_padding_is_ignored(name, params, tokens):
    arch = models.get(name)
    shape, vocab = ((9,), 6) if tokens else ((9, 4), None)
    net = arch.build(arch.make_params(params), shape, 3, vocab_size=vocab).eval()
    x = torch.randint(1, 6, (5, 9)) if tokens else torch.randn(5, 9, 4)
    lengths = torch.tensor([9, 4, 1, 7, 2])
    out = net(x, lengths)
    assert out.shape == (5, 3)
    out.sum().backward()
    # What lies past a sequence's length must not change its answer.
    noisy = x.clone()
    noisy[1, 4:] = torch.randint(1, 6, (5,)) if tokens else torch.randn(5, 4)
    torch.testing.assert_close(net(noisy, lengths)[1], net(x, lengths)[1])


def test_parity_builtin_is_deterministic_and_labelled_right():
    info = builtin_dataset("builtin:parity?length=8")
    raw = load_raw(info.ref)
    assert raw.x.shape == (4000, 8) and set(raw.y.tolist()) == {0, 1}
    ones = ((raw.x == 2).sum(1)) % 2
    assert (ones == raw.y).all()
    assert ((raw.x > 0).sum(1) == raw.lengths).all()
    assert (load_raw(info.ref).x == raw.x).all()
    assert builtin_dataset("builtin:parity?length=1") is None and builtin_dataset("builtin:parity?size=3") is None


def _fit(prepared, name, params, epochs, vocab=None):
    arch = models.get(name)
    torch.manual_seed(0)
    net = arch.build(arch.make_params(params), prepared.preprocessing.input_shape, len(prepared.class_names), vocab_size=vocab)
    return ClassifierTrainer(net, build_optimizer(net, ADAM), prepared.tensors, TrainConfig(epochs=epochs, batch_size=32), LocalContext()).fit()


@pytest.mark.parametrize("name,params", [("rnn", {"cell": "gru", "hidden_size": 64}), ("transformer", {"d_model": 32, "layers": 1, "dropout": 0.0})])
def test_reading_digits_row_by_row_beats_chance(name, params):
    prepared = prepare(load_raw("builtin:digits"), input_kind="sequence", input_size=None, input_channels=None, validation_fraction=0.25, seed=0)
    assert prepared.preprocessing.input_shape == (8, 8)
    result = _fit(prepared, name, params, epochs=6)
    assert result.final_metrics["val_accuracy"] > 0.7, result.final_metrics  # chance: 0.1


def test_an_lstm_learns_parity_of_token_sequences_of_varying_length():
    raw = load_raw("builtin:parity?length=6")
    prepared = prepare(raw, input_kind="sequence", input_size=None, input_channels=None, validation_fraction=0.2, seed=0)
    assert prepared.tensors.x_train.dtype == torch.long and prepared.tensors.lengths_train is not None
    result = _fit(prepared, "rnn", {"cell": "lstm", "hidden_size": 32, "embedding_dim": 8}, epochs=12, vocab=3)
    assert result.final_metrics["val_accuracy"] > 0.9, result.final_metrics  # chance: 0.5
