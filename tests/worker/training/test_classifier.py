"""The real Trainer through its in-memory context: it learns, it stops when told, and a run
resumed from a checkpoint ends exactly where an uninterrupted one does."""

import pytest
import torch

import models
from app.core.datasets.arrays import load_raw
from worker.context import LocalContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig
from worker.training.data import prepare
from worker.training.loop import NonFiniteLoss
from worker.training.optim import build_optimizer

SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}


@pytest.fixture(scope="module")
def digits_vector():
    raw = load_raw("builtin:digits")
    return prepare(raw, input_kind="vector", input_size=None, input_channels=None, validation_fraction=0.25, seed=0)


def make_trainer(prepared, ctx, *, epochs=3, optimizer=SGD, seed=0, l1=0.0, params=None, **config):
    arch = models.get("mlp")
    torch.manual_seed(seed)
    net = arch.build(arch.make_params(params or {"hidden_sizes": [32], "dropout": 0.1}), prepared.preprocessing.input_shape, 10)
    opt = build_optimizer(net, optimizer)
    train_config = TrainConfig(epochs=epochs, batch_size=32, seed=seed, l1=l1, train_loss_every_steps=5, **config)
    return ClassifierTrainer(net, opt, prepared.tensors, train_config, ctx)


def test_learns_digits_well_above_chance_on_held_out_data(digits_vector):
    ctx = LocalContext()
    result = make_trainer(digits_vector, ctx).fit()
    assert result.stop_reason is None and result.epochs_done == 3
    assert result.final_metrics["val_accuracy"] > 0.85  # chance is 0.10
    losses = [v for _, v in ctx.series("train_loss")]
    assert losses[-1] < losses[0]
    names = {name for name, *_ in ctx.points}
    assert {"train_loss", "val_loss", "val_accuracy", "learning_rate", "samples_per_second", "epoch_seconds"} <= names
    assert len(ctx.series("val_accuracy")) == 3


def test_train_loss_is_recorded_every_n_steps(digits_vector):
    ctx = LocalContext()
    trainer = make_trainer(digits_vector, ctx, epochs=1)
    trainer.fit()
    per_step = [s for s, _ in ctx.series("train_loss")][:-1]  # the last is the epoch mean
    assert per_step == list(range(5, trainer.steps_per_epoch + 1, 5))


def test_stops_between_batches_when_asked(digits_vector):
    ctx = LocalContext(stop_after_step=7)
    result = make_trainer(digits_vector, ctx, epochs=5).fit()
    assert result.stop_reason == "cancelled"
    assert result.steps_done == 7


def test_resume_from_checkpoint_ends_with_identical_weights(digits_vector):
    straight = make_trainer(digits_vector, LocalContext(), epochs=4)
    straight.fit()

    first_ctx = LocalContext()
    make_trainer(digits_vector, first_ctx, epochs=2).fit()
    resumed_ctx = LocalContext()
    resumed_ctx.checkpoints = first_ctx.checkpoints[-1:]  # what a new attempt would find
    resumed = make_trainer(digits_vector, resumed_ctx, epochs=4, seed=0)
    resumed.fit()

    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


TIMING = {"samples_per_second", "epoch_seconds"}


def _values(ctx):
    return sorted((n, s, v) for n, s, _, v in ctx.points if n not in TIMING)


SCHEDULED = {"lr_schedule": {"name": "plateau", "patience": 0, "factor": 0.5, "warmup_epochs": 0.5}, "grad_clip_norm": 1.0, "label_smoothing": 0.1}


@pytest.mark.parametrize("stop_at_batch,config", [(1, {}), (37, {}), (43, {}), (44, {}), (100, {}), (60, SCHEDULED), (100, SCHEDULED)])
def test_shutdown_mid_epoch_checkpoints_and_resume_is_exact(digits_vector, stop_at_batch, config):
    """SIGTERM's path: stop between batches, checkpoint there, a new attempt resumes. Weights and
    the metric series equal those of a run that never stopped (43 batches make an epoch here)."""
    straight_ctx = LocalContext()
    straight = make_trainer(digits_vector, straight_ctx, epochs=3, **config)
    straight.fit()

    first = LocalContext(stop_after_step=stop_at_batch, stop_with="shutdown")
    result = make_trainer(digits_vector, first, epochs=3, **config).fit()
    assert result.stop_reason == "shutdown" and result.steps_done == stop_at_batch
    assert first.checkpoints[-1]["step"] == stop_at_batch

    second = LocalContext()
    second.checkpoints = first.checkpoints[-1:]
    second.points = list(first.points)
    resumed = make_trainer(digits_vector, second, epochs=3, seed=12345, **config)  # the seed must not matter on resume
    resumed.fit()

    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert _values(second) == _values(straight_ctx)


def test_cancel_and_lease_loss_write_no_checkpoint(digits_vector):
    for reason in ("cancelled", "lease_lost"):
        ctx = LocalContext(stop_after_step=3, stop_with=reason)
        make_trainer(digits_vector, ctx, epochs=2).fit()
        assert ctx.checkpoints == []


def test_checkpoint_every_n_steps(digits_vector):
    ctx = LocalContext()
    trainer = make_trainer(digits_vector, ctx, epochs=2)
    trainer.config.checkpoint_every_steps = 20
    trainer.fit()
    assert [c["step"] for c in ctx.checkpoints] == [20, 40, 43, 60, 80, 86]


def test_non_finite_loss_names_the_step(digits_vector):
    ctx = LocalContext()
    trainer = make_trainer(digits_vector, ctx, optimizer={**SGD, "lr": 1e12, "momentum": 0.0})
    with pytest.raises(NonFiniteLoss, match=r"at step \d+"):
        trainer.fit()


def test_l1_penalty_shrinks_weights(digits_vector):
    plain = make_trainer(digits_vector, LocalContext(), epochs=2)
    plain.fit()
    sparse = make_trainer(digits_vector, LocalContext(), epochs=2, l1=1e-2)
    sparse.fit()
    l1 = lambda t: sum(p.abs().sum().item() for p in t.model.parameters() if p.ndim > 1)  # noqa: E731
    assert l1(sparse) < 0.8 * l1(plain)


def test_adam_trains_too(digits_vector):
    result = make_trainer(digits_vector, LocalContext(), optimizer={"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}).fit()
    assert result.final_metrics["val_accuracy"] > 0.85


def test_timeout_stops_between_batches_and_keeps_a_checkpoint(digits_vector):
    ctx = LocalContext()
    trainer = make_trainer(digits_vector, ctx, epochs=50)
    trainer.config.max_runtime_seconds = 0.2
    result = trainer.fit()
    assert result.stop_reason == "timeout" and result.epochs_done < 50
    assert ctx.checkpoints[-1]["step"] == result.steps_done


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_mse_and_bce_losses_train_too(digits_vector, loss):
    adam = {"name": "adam", "lr": 3e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    trainer = make_trainer(digits_vector, LocalContext(), optimizer=adam, loss=loss)
    result = trainer.fit()
    assert result.final_metrics["val_accuracy"] > 0.8


def test_the_three_losses_agree_on_a_perfect_prediction_and_differ_otherwise():
    from worker.training.classifier import classification_loss

    target = torch.tensor([0, 2])
    confident = torch.tensor([[20.0, -20.0, -20.0], [-20.0, -20.0, 20.0]])
    for kind in ("cross_entropy", "mse", "bce"):
        assert classification_loss(confident, target, kind).item() < 1e-6
    wrong = torch.tensor([[-5.0, 5.0, 0.0], [5.0, 0.0, -5.0]])
    values = {kind: classification_loss(wrong, target, kind).item() for kind in ("cross_entropy", "mse", "bce")}
    assert all(v > 0.5 for v in values.values()) and len(set(values.values())) == 3


def test_a_validation_or_test_metric_that_goes_non_finite_fails_the_run_naming_it(digits_vector):
    """JSON carries no NaN: a diverged val_* or test_* metric fails the job clearly, it never reaches an answer."""
    trainer = make_trainer(digits_vector, LocalContext(), epochs=1)
    trainer.evaluate = lambda: {"val_loss": float("inf"), "val_accuracy": 0.5}
    with pytest.raises(NonFiniteLoss, match=r"val_loss became inf at step \d+"):
        trainer.fit()
    trainer = make_trainer(digits_vector, LocalContext(), epochs=1)
    trainer.finish = lambda metrics: (metrics, {"test_loss": float("nan"), "test_accuracy": 0.1})
    with pytest.raises(NonFiniteLoss, match="test_loss became nan"):
        trainer.fit()


def test_step_checkpoints_have_a_floor_in_time(digits_vector):
    """checkpoint_every_steps=1 fsynced a checkpoint every step: at most one per min_checkpoint_seconds."""
    ctx = LocalContext()
    trainer = make_trainer(digits_vector, ctx, epochs=2, checkpoint_every_steps=1, min_checkpoint_seconds=3600)
    trainer.fit()
    assert [c["step"] for c in ctx.checkpoints] == [43, 86]  # each epoch's end still writes its own
