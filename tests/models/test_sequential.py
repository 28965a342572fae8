"""The ``sequential`` family: a network from a JSON list of layers, with shapes checked per layer."""

import pytest
import torch
from pydantic import ValidationError

import models
import models.sequential  # noqa: F401  (registers the family even before models/__init__ imports it)
from app.core.datasets.arrays import load_raw
from models import ArchitectureError
from models.sequential import SequentialParams
from worker.context import LocalContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig
from worker.training.data import prepare
from worker.training.optim import build_optimizer
from worker.training.transfer import head_of

ARCH = models.get("sequential")


def conv_stack(num_classes: int = 10) -> list[dict]:
    return [
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm2d"},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 16, "kernel_size": [3, 3], "stride": 1, "padding": [1, 1]},
        {"type": "leakyrelu", "negative_slope": 0.1},
        {"type": "avgpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.1},
        {"type": "linear", "out_features": 32},
        {"type": "batchnorm1d"},
        {"type": "tanh"},
        {"type": "linear", "out_features": num_classes},
    ]


def build(layers, shape=(1, 8, 8), num_classes=10):
    return ARCH.build(ARCH.make_params({"layers": layers}), shape, num_classes)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_conv_stack_output_shape_and_backward(shape):
    net = build(conv_stack(7), shape, 7)
    out = net(torch.randn(4, *shape))
    assert out.shape == (4, 7)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_input_sizes_are_inferred_and_the_last_layer_is_the_classifier():
    net = build(conv_stack(), (3, 32, 32))
    assert set(dict(net.named_children())) == {"features", "classifier"}
    assert net.features[0].in_channels == 3
    assert net.features[9].in_features == 16 * 8 * 8
    assert net.features[10].num_features == 32
    assert head_of(net) is net.classifier[0]  # transfer learning's reset_head finds it


def test_default_params_build_a_valid_network_for_the_example_input():
    params = ARCH.make_params()
    assert ARCH.check(params, ARCH.example_input_shape, 10) == 64 * 64 + 64 + 64 * 10 + 10


def test_check_returns_the_parameter_count_for_a_valid_stack():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "bias": False}, {"type": "flatten"},
              {"type": "linear", "out_features": 10}]
    assert ARCH.check(ARCH.make_params({"layers": layers}), (1, 8, 8), 10) == 4 * 9 + 4 * 6 * 6 * 10 + 10


@pytest.mark.parametrize("layers,shape,expected", [
    # linear on an unflattened image
    ([{"type": "conv2d", "out_channels": 8, "kernel_size": 3}, {"type": "relu"}, {"type": "linear", "out_features": 10}],
     (1, 8, 8), ["layer 2 (linear)", "[features]", "[8, 6, 6]"]),
    # conv2d after flatten
    ([{"type": "flatten"}, {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "linear", "out_features": 10}],
     (1, 8, 8), ["layer 1 (conv2d)", "[channels, height, width]", "[64]"]),
    # kernel larger than the input
    ([{"type": "conv2d", "out_channels": 4, "kernel_size": 9}, {"type": "flatten"}, {"type": "linear", "out_features": 10}],
     (1, 8, 8), ["layer 0 (conv2d)", "[1, 8, 8]", "[4, 0, 0]"]),
    # pooling shrinks the image to nothing
    ([{"type": "maxpool2d", "kernel_size": 4}, {"type": "maxpool2d", "kernel_size": 4}, {"type": "flatten"},
      {"type": "linear", "out_features": 10}],
     (1, 8, 8), ["layer 1 (maxpool2d)", "[1, 2, 2]", "[1, 0, 0]"]),
    # batchnorm2d on a flat vector
    ([{"type": "flatten"}, {"type": "batchnorm2d"}, {"type": "linear", "out_features": 10}],
     (1, 8, 8), ["layer 1 (batchnorm2d)", "[channels, height, width]", "[64]"]),
    # wrong final width
    ([{"type": "flatten"}, {"type": "linear", "out_features": 32}, {"type": "relu"}, {"type": "linear", "out_features": 12}],
     (1, 8, 8), ["layer 3 (linear)", "[12]", "[10]"]),
    # last layer not producing a flat output
    ([{"type": "conv2d", "out_channels": 10, "kernel_size": 8}],
     (1, 8, 8), ["layer 0 (conv2d)", "[10, 1, 1]", "[10]"]),
])
def test_shape_errors_name_the_layer_and_both_shapes(layers, shape, expected):
    with pytest.raises(ArchitectureError) as caught:
        build(layers, shape)
    for text in expected:
        assert text in str(caught.value)
    with pytest.raises(ArchitectureError):
        ARCH.check(ARCH.make_params({"layers": layers}), shape, 10)


@pytest.mark.parametrize("layer,expected", [
    ({"type": "conv3d", "out_channels": 4, "kernel_size": 3}, "unknown type 'conv3d'"),
    ({"type": "Linear", "out_features": 10}, "unknown type 'Linear'"),
    ({"type": "__import__"}, "unknown type '__import__'"),
    ({"out_features": 10}, "needs a \"type\""),
    ({"type": "lstm", "hidden_size": 8}, "expects a [length, features] sequence input, got [64]"),
    ({"type": "embedding", "embedding_dim": 8}, "takes token ids, so it can only be the first layer"),
    ({"type": "multiheadattention", "num_heads": 2}, "expects a [length, features] sequence input, got [64]"),
    ({"type": "linear", "out_features": 10, "__class__": "x"}, "unknown argument '__class__'"),
    ({"type": "linear", "out_features": 10, "in_features": 64}, "in_features is inferred"),
    ({"type": "linear", "out_features": 10, "device": "cuda"}, "unknown argument 'device'"),
    ({"type": "linear"}, "out_features required"),
    ({"type": "linear", "out_features": 0}, "out_features must be an integer in 1..65536"),
    ({"type": "linear", "out_features": 10.0}, "out_features must be an integer"),
    ({"type": "linear", "out_features": True}, "out_features must be an integer"),
    ({"type": "linear", "out_features": "10"}, "out_features must be an integer"),
    ({"type": "linear", "out_features": 10, "bias": 1}, "bias must be true or false"),
])
def test_bad_layer_entries_are_rejected_naming_the_index(layer, expected):
    layers = [{"type": "flatten"}, layer]
    with pytest.raises(ArchitectureError, match=r"^layer 1\b") as caught:
        build(layers)
    assert expected in str(caught.value)


@pytest.mark.parametrize("key,value,expected", [
    ("kernel_size", 65, "kernel_size must be an integer in 1..64 or a list of two"),
    ("kernel_size", [3, 3, 3], "kernel_size must be"),
    ("kernel_size", [3, "3"], "kernel_size must be"),
    ("stride", 0, "stride must be"),
    ("padding", -1, "padding must be"),
    ("groups", 3, "groups=3 must divide"),
    ("in_channels", 1, "in_channels is inferred"),
    ("padding_mode", "circular", "unknown argument 'padding_mode'"),
])
def test_conv2d_arguments_are_whitelisted_and_bounded(key, value, expected):
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, key: value}, {"type": "flatten"},
              {"type": "linear", "out_features": 10}]
    with pytest.raises(ArchitectureError, match=r"^layer 0 \(conv2d\)") as caught:
        build(layers)
    assert expected in str(caught.value)


@pytest.mark.parametrize("layer,expected", [
    ({"type": "dropout", "p": 1.0}, "p must be a number in 0..1 (excluded)"),
    ({"type": "dropout", "p": float("nan")}, "p must be a number"),
    ({"type": "leakyrelu", "negative_slope": 2}, "negative_slope must be a number in 0..1"),
    ({"type": "maxpool2d", "kernel_size": 2, "padding": 2}, "padding [2, 2] must be at most half of kernel_size [2, 2]"),
    ({"type": "relu", "inplace": True}, "unknown argument 'inplace'; allowed: none"),
    ({"type": "batchnorm2d", "num_features": 1}, "num_features is inferred"),
])
def test_other_layer_arguments_are_checked(layer, expected):
    with pytest.raises(ArchitectureError, match=r"^layer 0 ") as caught:
        build([layer, {"type": "flatten"}, {"type": "linear", "out_features": 10}])
    assert expected in str(caught.value)


@pytest.mark.parametrize("layers", [[], [{"type": "relu"}] * 65, "flatten", ["flatten"]])
def test_the_layer_list_itself_is_checked(layers):
    with pytest.raises(ArchitectureError):
        build(layers)


def test_the_api_schema_accepts_a_list_of_layer_objects():
    from app.core import architectures

    schema = architectures.params_model("sequential")
    assert schema.model_validate({"layers": conv_stack()}).layers == conv_stack()
    with pytest.raises(ValidationError):
        schema.model_validate({"layers": ["relu"]})
    assert architectures.describe("sequential")["submodules"] == ["features", "classifier"]


def test_a_conv_stack_learns_digits():
    prepared = prepare(load_raw("builtin:digits"), input_kind="image", input_size=None, input_channels=None,
                       validation_fraction=0.25, seed=0)
    torch.manual_seed(0)
    layers = [
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10},
    ]
    net = build(layers, prepared.preprocessing.input_shape, 10)
    optimizer = build_optimizer(net, {"name": "adam", "lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0})
    result = ClassifierTrainer(net, optimizer, prepared.tensors, TrainConfig(epochs=3, batch_size=32), LocalContext()).fit()
    assert result.final_metrics["val_accuracy"] > 0.8, result.final_metrics  # chance is 0.1


# -- sequences: embedding, lstm, gru, multiheadattention -----------------------------------------


def token_stack(num_classes: int = 3) -> list[dict]:
    return [{"type": "embedding", "embedding_dim": 16}, {"type": "lstm", "hidden_size": 32}, {"type": "flatten"},
            {"type": "linear", "out_features": num_classes}]


def series_stack(num_classes: int = 3) -> list[dict]:
    return [{"type": "gru", "hidden_size": 16, "bidirectional": True}, {"type": "multiheadattention", "num_heads": 4},
            {"type": "flatten"}, {"type": "linear", "out_features": num_classes}]


def build_sequence(layers, shape, num_classes=3, vocab_size=None):
    return ARCH.build(SequentialParams(layers), shape, num_classes, vocab_size=vocab_size)


def test_a_token_stack_embeds_runs_the_lstm_and_ignores_lengths():
    torch.manual_seed(0)
    net = build_sequence(token_stack(), (12,), vocab_size=5)
    assert net.features[0].num_embeddings == 5 and net.features[0].padding_idx == 0
    assert net.features[1].input_size == 16 and net.features[1].batch_first
    assert net.classifier[0].in_features == 12 * 32
    x = torch.randint(0, 5, (4, 12))
    lengths = torch.tensor([12, 7, 3, 1])
    out = net(x, lengths)
    assert out.shape == (4, 3)
    assert torch.equal(out, net(x))  # lengths are accepted and ignored
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert not net.features[0].weight.grad[0].any()  # the padding id stays at zero


def test_a_float_stack_runs_a_bidirectional_gru_then_self_attention():
    net = build_sequence(series_stack(), (8, 8))
    assert net.features[0].input_size == 8 and net.features[0].bidirectional
    assert net.features[1].embed_dim == 32 and net.features[1].num_heads == 4 and net.features[1].batch_first
    out = net(torch.randn(4, 8, 8), torch.full((4,), 8))
    assert out.shape == (4, 3)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_input_for_follows_the_layers():
    assert ARCH.input_spec(SequentialParams(token_stack())).kind == "sequence"
    assert ARCH.input_spec(SequentialParams(series_stack())).kind == "sequence"
    assert ARCH.input_spec(SequentialParams(conv_stack())).kind == "image"
    assert ARCH.input_spec(SequentialParams()).kind == "image"
    assert ARCH.input_spec(SequentialParams("not a list")).kind == "image"  # left for the build to refuse
    assert ARCH.input_spec(ARCH.make_params({"layers": token_stack()})).kind == "sequence"


def test_the_registry_builds_and_checks_sequence_stacks():
    params = ARCH.make_params({"layers": token_stack()})
    assert ARCH.check(params, (12,), 3, vocab_size=5) == sum(p.numel() for p in build_sequence(token_stack(), (12,), vocab_size=5).parameters())
    assert ARCH.check(ARCH.make_params({"layers": series_stack()}), (8, 8), 3) > 0
    assert ARCH.top_level_modules(params, (12,), 3, vocab_size=5) == ["features", "classifier"]


@pytest.mark.parametrize("layers,shape,vocab_size,expected", [
    # num_heads must divide the running feature size (2 x 16 from the bidirectional gru)
    ([{"type": "gru", "hidden_size": 16, "bidirectional": True}, {"type": "multiheadattention", "num_heads": 5},
      {"type": "flatten"}, {"type": "linear", "out_features": 3}],
     (8, 8), None, "layer 1 (multiheadattention): num_heads=5 must divide its 32 input features"),
    # token ids without a vocabulary
    (token_stack(), (12,), None, "layer 0 (embedding) takes token ids [length] from a dataset with a vocabulary"),
    # an embedding on float series
    (token_stack(), (12, 4), None, "layer 0 (embedding) takes token ids"),
    # token ids straight into an lstm
    (series_stack(), (12,), 5, "layer 0 (gru) cannot take token ids; start with an embedding layer"),
    # an embedding anywhere but first
    ([{"type": "lstm", "hidden_size": 8}, {"type": "embedding", "embedding_dim": 8}, {"type": "flatten"},
      {"type": "linear", "out_features": 3}], (8, 8), None, "layer 1 (embedding) takes token ids, so it can only be"),
    # linear needs a flat input, also on sequences
    ([{"type": "lstm", "hidden_size": 8}, {"type": "linear", "out_features": 3}],
     (8, 8), None, "layer 1 (linear) expects a flat [features] input, got [8, 8]; add a flatten layer before it"),
    # batchnorm1d would normalise positions, not features
    ([{"type": "lstm", "hidden_size": 8}, {"type": "batchnorm1d"}, {"type": "flatten"}, {"type": "linear", "out_features": 3}],
     (8, 8), None, "layer 1 (batchnorm1d) expects a flat [features] input, got [8, 8]"),
    # conv and pool take images only
    ([{"type": "lstm", "hidden_size": 8}, {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "flatten"},
      {"type": "linear", "out_features": 3}], (8, 8), None, "layer 1 (conv2d) expects a [channels, height, width] input, got [8, 8]"),
    ([{"type": "gru", "hidden_size": 8}, {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
      {"type": "linear", "out_features": 3}], (8, 8), None, "layer 1 (maxpool2d) expects a [channels, height, width]"),
    # recurrent layers need a sequence
    ([{"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "lstm", "hidden_size": 8}, {"type": "flatten"},
      {"type": "linear", "out_features": 3}], (1, 8, 8), None, "layer 1 (lstm) expects a [length, features] sequence input, got [4, 6, 6]"),
    # the last layer must still output one value per class
    ([{"type": "lstm", "hidden_size": 3}], (8, 8), None, "layer 0 (lstm), the last, outputs [8, 3]"),
])
def test_sequence_shape_errors_name_the_layer(layers, shape, vocab_size, expected):
    with pytest.raises(ArchitectureError) as caught:
        build_sequence(layers, shape, vocab_size=vocab_size)
    assert expected in str(caught.value)


@pytest.mark.parametrize("index,layer,expected", [
    (0, {"type": "embedding", "embedding_dim": 8, "num_embeddings": 5}, "num_embeddings is inferred from the dataset's vocabulary"),
    (0, {"type": "embedding", "embedding_dim": 8, "padding_idx": 1}, "padding_idx is fixed to 0"),
    (0, {"type": "embedding"}, "embedding_dim required"),
    (0, {"type": "embedding", "embedding_dim": 65537}, "embedding_dim must be an integer in 1..65536"),
    (0, {"type": "embedding", "embedding_dim": 8, "max_norm": 1.0}, "unknown argument 'max_norm'"),
    (1, {"type": "lstm", "hidden_size": 8, "input_size": 8}, "input_size is inferred from the previous layer's output"),
    (1, {"type": "gru", "hidden_size": 8, "batch_first": False}, "batch_first is fixed to True"),
    (1, {"type": "lstm"}, "hidden_size required"),
    (1, {"type": "lstm", "hidden_size": 8, "num_layers": 9}, "num_layers must be an integer in 1..8"),
    (1, {"type": "lstm", "hidden_size": 8, "dropout": 1.0}, "dropout must be a number in 0..1 (excluded)"),
    (1, {"type": "gru", "hidden_size": 8, "dropout": 0.2}, "dropout acts between stacked layers; it needs num_layers > 1"),
    (1, {"type": "lstm", "hidden_size": 8, "bidirectional": 1}, "bidirectional must be true or false"),
    (1, {"type": "lstm", "hidden_size": 8, "proj_size": 4}, "unknown argument 'proj_size'"),
    (1, {"type": "multiheadattention", "num_heads": 2, "embed_dim": 8}, "embed_dim is inferred from the previous layer's output"),
    (1, {"type": "multiheadattention"}, "num_heads required"),
    (1, {"type": "multiheadattention", "num_heads": 2, "kdim": 4}, "unknown argument 'kdim'"),
])
def test_sequence_layer_arguments_are_checked_naming_the_layer(index, layer, expected):
    layers = [{"type": "embedding", "embedding_dim": 8}, layer, {"type": "flatten"}, {"type": "linear", "out_features": 3}]
    layers = [layer, *layers[2:]] if index == 0 else layers
    with pytest.raises(ArchitectureError, match=rf"^layer {index} \({layer['type']}\)") as caught:
        build_sequence(layers, (6,), vocab_size=5)
    assert expected in str(caught.value)


def test_stacked_recurrent_layers_take_dropout_and_dropout_layers_take_sequences():
    layers = [{"type": "embedding", "embedding_dim": 8}, {"type": "dropout", "p": 0.1},
              {"type": "lstm", "hidden_size": 8, "num_layers": 2, "dropout": 0.2, "bias": False}, {"type": "tanh"},
              {"type": "multiheadattention", "num_heads": 2, "dropout": 0.1, "bias": False}, {"type": "flatten"},
              {"type": "linear", "out_features": 3}]
    net = build_sequence(layers, (6,), vocab_size=5)
    assert net.features[2].num_layers == 2 and net.features[2].dropout == 0.2 and not net.features[2].bias
    assert net(torch.randint(0, 5, (2, 6))).shape == (2, 3)


def test_a_token_stack_learns_parity():
    prepared = prepare(load_raw("builtin:parity?length=6"), input_kind="sequence", input_size=None,
                       input_channels=None, validation_fraction=0.2, seed=0)
    assert prepared.tensors.x_train.dtype == torch.int64 and prepared.tensors.lengths_train is not None
    torch.manual_seed(0)
    net = build_sequence(token_stack(2), (6,), 2, vocab_size=3)  # flatten is fine: the length is fixed at 6
    optimizer = build_optimizer(net, {"name": "adam", "lr": 5e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0})
    # 8 epochs keep it quick: seeds 0-5 all reached val_accuracy 1.0 by epoch 8 (0-3 already by epoch 6)
    result = ClassifierTrainer(net, optimizer, prepared.tensors, TrainConfig(epochs=8, batch_size=32), LocalContext()).fit()
    assert result.final_metrics["val_accuracy"] > 0.8, result.final_metrics  # chance is 0.5
