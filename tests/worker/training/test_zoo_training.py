"""Each image family trains for real on tiny data and beats chance clearly on held-out data;
early stopping and transfer learning do what they say."""

import pytest
import torch

import models
from app.core.artifacts.local import LocalStore
from app.core.datasets.arrays import load_raw
from app.core.model_card import ModelCard
from worker.context import LocalContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig
from worker.training.data import prepare
from worker.training.job import save_model
from worker.training.optim import build_optimizer
from worker.training.transfer import head_of, init_from

ADAM = {"name": "adam", "lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


@pytest.fixture(scope="module")
def digits_image():
    return prepare(load_raw("builtin:digits"), input_kind="image", input_size=None, input_channels=None, validation_fraction=0.25, seed=0)


def train(prepared, name, params, *, epochs, config=None, data=None, num_classes=10, net=None):
    arch = models.get(name)
    torch.manual_seed(0)
    net = net or arch.build(arch.make_params(params), prepared.preprocessing.input_shape, num_classes)
    config = TrainConfig(epochs=epochs, batch_size=32, **(config or {}))
    trainer = ClassifierTrainer(net, build_optimizer(net, ADAM), data or prepared.tensors, config, LocalContext())
    return trainer, trainer.fit()


@pytest.mark.parametrize("name,params,epochs", [
    ("alexnet", {"width": 0.25, "dropout": 0.2}, 6),
    ("resnet", {"depth": 18, "width": 0.125}, 2),
])
def test_image_family_beats_chance_on_held_out_digits(digits_image, name, params, epochs):
    _, result = train(digits_image, name, params, epochs=epochs)
    assert result.final_metrics["val_accuracy"] > 0.6, result.final_metrics  # chance is 0.1


def test_early_stopping_stops_and_restores_the_best_epoch(digits_image):
    # A learning rate this high makes validation loss stall and wander: patience runs out.
    config = {"early_stopping": {"monitor": "val_accuracy", "patience": 2, "min_delta": 0.0, "restore_best": True}}
    trainer, result = train(digits_image, "mlp", {"hidden_sizes": [64]}, epochs=60, config=config)
    stopped = trainer.ctx.series("stopped_epoch")
    assert stopped and result.epochs_done < 60
    accuracies = [v for _, v in trainer.ctx.series("val_accuracy")]
    assert result.final_metrics["val_accuracy"] == max(accuracies)
    from worker.training.classifier import evaluate

    assert evaluate(trainer.model, trainer.data.x_val, trainer.data.y_val)[1] == pytest.approx(max(accuracies))


def test_transfer_learning_loads_weights_resets_the_head_and_freezes(digits_image, tmp_path):
    arch = models.get("mlp")
    store = LocalStore(tmp_path)
    shape = digits_image.preprocessing.input_shape
    base = arch.build(arch.make_params({"hidden_sizes": [32]}), (64,), 10)
    card = ModelCard(architecture="mlp", params={"hidden_sizes": [32]}, input_shape=[64], sample_shape=[8, 8], class_names=list("0123456789"), preprocessing={})
    save_model(store, "mdl_source", base, card)

    net = arch.build(arch.make_params({"hidden_sizes": [32]}), (64,), 3)
    init_from(net, store, "mdl_source", reset_head=True, freeze=["features"])
    assert torch.equal(net.features[1].weight, base.features[1].weight)
    assert head_of(net).out_features == 3 and not torch.equal(head_of(net).weight[:3], base.classifier.weight[:3])
    assert not any(p.requires_grad for p in net.features.parameters())
    assert all(p.requires_grad for p in net.classifier.parameters())
    assert shape == (1, 8, 8)

    with pytest.raises(RuntimeError):
        init_from(arch.build(arch.make_params({"hidden_sizes": [32]}), (64,), 3), store, "mdl_source", reset_head=False, freeze=[])
