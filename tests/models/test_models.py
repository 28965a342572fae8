import pytest
import torch

import models
from app.core import architectures


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("name,shape", [
    ("mlp", (64,)), ("mlp", (8, 8)), ("lenet5", (1, 32, 32)), ("lenet5", (3, 32, 32)),
    ("alexnet", (1, 28, 28)), ("alexnet", (3, 32, 32)),
])
def test_output_shape_and_backward(name, shape, activation):
    arch = models.get(name)
    extra = {"width": 0.125} if name == "alexnet" else {}
    net = arch.build(arch.make_params({"activation": activation, **extra}), shape, 7)
    x = torch.randn(4, *shape)
    out = net(x)
    assert out.shape == (4, 7)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("params,shape", [({"depth": 18}, (1, 28, 28)), ({"depth": 34, "width": 0.25}, (3, 32, 32)), ({"width": 0.125}, (3, 64, 64))])
def test_resnet_output_shape_and_backward(params, shape):
    arch = models.get("resnet")
    net = arch.build(arch.make_params(params), shape, 5)
    out = net(torch.randn(2, *shape))
    assert out.shape == (2, 5)
    out.sum().backward()


def test_alexnet_full_size_matches_the_survey_layout():
    arch = models.get("alexnet")
    net = arch.build(arch.make_params(), (3, 224, 224), 1000)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (11, 11), (4, 4)), (192, (5, 5), (1, 1)), (384, (3, 3), (1, 1)), (256, (3, 3), (1, 1)), (256, (3, 3), (1, 1))]
    assert sum(p.numel() for p in net.parameters()) == 61_100_840  # torchvision's alexnet, same layout
    assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_resnet18_full_size_has_the_published_parameter_count():
    arch = models.get("resnet")
    assert arch.check(arch.make_params({"depth": 18, "stem": "full"}), (3, 224, 224), 1000) == 11_689_512
    assert arch.check(arch.make_params({"depth": 34, "stem": "full"}), (3, 224, 224), 1000) == 21_797_672


def test_image_classifiers_expose_features_and_classifier():
    for name, shape in [("mlp", (64,)), ("lenet5", (1, 32, 32)), ("alexnet", (3, 32, 32)), ("resnet", (3, 32, 32))]:
        arch = models.get(name)
        children = dict(arch.build(arch.make_params(), shape, 10).named_children())
        assert set(children) == {"features", "classifier"}


def test_mlp_options_change_the_network():
    arch = models.get("mlp")
    plain = arch.build(arch.make_params({"hidden_sizes": [16]}), (8,), 2)
    rich = arch.build(arch.make_params({"hidden_sizes": [16], "batch_norm": True, "dropout": 0.5, "activation": "leaky_relu", "negative_slope": 0.2}), (8,), 2)
    kinds = [type(m).__name__ for m in rich.features]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "LeakyReLU", "Dropout"]
    assert rich.features[3].negative_slope == 0.2
    assert [type(m).__name__ for m in plain.features] == ["Flatten", "Linear", "ReLU"]


def test_lenet5_pooling_choice():
    arch = models.get("lenet5")
    avg = arch.build(arch.make_params({"pooling": "avg"}), (1, 32, 32), 10)
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in avg.modules())
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in avg.modules())


def test_check_counts_parameters_without_allocating_and_rejects_bad_shapes():
    arch = models.get("lenet5")
    assert arch.check(arch.make_params(), (1, 32, 32), 10) == 61706
    with pytest.raises(models.ArchitectureError, match="32, 32"):
        arch.check(arch.make_params(), (1, 28, 28), 10)


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(models.ArchitectureError, match="lenet5, mlp"):
        models.get("vgg")


def test_params_schema_rejects_out_of_range_and_unknown_keys():
    from app.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        architectures.validate_params("mlp", {"dropout": 1.0, "depth": 3}, ["body", "model", "params"])
    locs = [d["loc"] for d in exc.value.details]
    assert ["body", "model", "params", "dropout"] in locs and ["body", "model", "params", "depth"] in locs
    assert architectures.validate_params("mlp", {}, []) == models.get("mlp").make_params()
