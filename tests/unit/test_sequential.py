"""The ``sequential`` family: a network from a JSON list of layers, with shapes checked per layer."""

import pytest
import torch

import models
import models.sequential  # noqa: F401  (registers the family even before models/__init__ imports it)
from models import ArchitectureError
from worker.context import LocalContext
from worker.data import load_raw, prepare
from worker.optim import build_optimizer
from worker.trainer import TrainConfig, Trainer
from worker.transfer import head_of

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
    ({"type": "lstm", "hidden_size": 8}, "not supported yet"),
    ({"type": "embedding"}, "not supported yet"),
    ({"type": "multiheadattention"}, "not supported yet"),
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
    from app.services import architectures

    schema = architectures.params_model("sequential")
    assert schema.model_validate({"layers": conv_stack()}).layers == conv_stack()
    with pytest.raises(Exception):
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
    result = Trainer(net, optimizer, prepared.tensors, TrainConfig(epochs=3, batch_size=32), LocalContext()).fit()
    assert result.final_metrics["val_accuracy"] > 0.8, result.final_metrics  # chance is 0.1
