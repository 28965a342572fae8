"""The generative families: the GAN's networks and its adversarial loop, the RBM's model and its
contrastive-divergence loop, both run through the in-memory context on sklearn digits."""

import math

import pytest
import torch

from app.core.datasets.arrays import load_raw
from models.gan import ARCHITECTURE as GAN_ARCH
from models.gan import from_tanh_range
from models.rbm import ARCHITECTURE as RBM_ARCH
from models.registry import ArchitectureError
from worker.context import LocalContext
from worker.training.config import TrainConfig
from worker.training.data import TensorData, prepare
from worker.training.gan import DEFAULT_OPTIMIZER as GAN_DEFAULT
from worker.training.gan import GANTrainer
from worker.training.rbm import RBMTrainer

IMAGE_SHAPE = (1, 16, 16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The networks are tiny: a second thread buys nothing and, on a busy machine, oversubscription
    # makes each step several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def raw_digits():
    return load_raw("builtin:digits")


@pytest.fixture(scope="module")
def digits_images(raw_digits):
    return prepare(raw_digits, input_kind="image", input_size=(16, 16), input_channels=None, validation_fraction=0.0, seed=0)


@pytest.fixture(scope="module")
def binary_digits(raw_digits):
    """Digits as 64-long binary vectors: a pixel is on when it is above that pixel's training mean
    (standardised data are above 0 exactly then)."""
    tensors = prepare(raw_digits, input_kind="vector", input_size=None, input_channels=None,
                      validation_fraction=0.2, seed=0).tensors
    return TensorData((tensors.x_train > 0).float(), tensors.y_train, (tensors.x_val > 0).float(), tensors.y_val)


def make_gan(seed=0, input_shape=IMAGE_SHAPE, **params):
    torch.manual_seed(seed)
    return GAN_ARCH.build(GAN_ARCH.make_params(params), input_shape, 1)


def make_rbm(seed=0, hidden=64, k=1):
    torch.manual_seed(seed)
    return RBM_ARCH.build(RBM_ARCH.make_params({"hidden": hidden, "k": k}), (64,), 1)


def config(epochs=1, batch_size=64, **overrides):
    return TrainConfig(epochs=epochs, batch_size=batch_size, seed=0, train_loss_every_steps=5, **overrides)


def subset(data: TensorData, n: int) -> TensorData:
    return TensorData(data.x_train[:n], data.y_train[:n])


# -- GAN: the networks -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 16, 16), (1, 28, 28), (3, 32, 32)])
def test_generator_output_has_the_data_shape_and_lies_in_minus_one_to_one(shape):
    gan = make_gan(input_shape=shape).eval()
    with torch.no_grad():
        images = gan.generate(7, torch.Generator().manual_seed(1))
        logits = gan(images)
    assert images.shape == (7, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert logits.shape == (7, 1)


def test_generate_is_reproducible_from_a_seeded_generator():
    gan = make_gan().eval()
    with torch.no_grad():
        first = gan.generate(3, torch.Generator().manual_seed(5))
        again = gan.generate(3, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 16, 18), (64,), (1, 0, 0)])
def test_gan_rejects_shapes_not_divisible_by_four_naming_the_shape(shape):
    with pytest.raises(ArchitectureError, match=str(list(shape)).replace("[", r"\[").replace("]", r"\]")):
        GAN_ARCH.build(GAN_ARCH.make_params({}), shape, 1)


def test_registry_check_passes_with_one_logit_on_the_meta_device():
    count = GAN_ARCH.check(GAN_ARCH.make_params({"latent_dim": 8, "width": 4}), IMAGE_SHAPE, 1)
    assert count == sum(p.numel() for p in make_gan(latent_dim=8, width=4).parameters())


# -- GAN: the loop -----------------------------------------------------------------------------------


def discriminator_beats_chance(metrics):
    """True when the discriminator, averaged over the epoch, tells both classes apart better than
    chance at once and is right about three times in four overall.

    A discriminator that learnt nothing fails it: a constant (or identity-like) output calls every
    sample real, or every sample fake, so one of the two accuracies is 0 (and with logits exactly
    0 both are); a randomly initialised one puts its threshold somewhere arbitrary, so one side
    typically sits below 0.5 and the mean stays near 0.5. A run that learns on digits for one epoch
    calls ~95% of real digits real and most early generator output fake.
    """
    real, fake = metrics["d_real_accuracy"], metrics["d_fake_accuracy"]
    return real > 0.5 and fake > 0.5 and (real + fake) / 2 > 0.7


def test_one_epoch_on_digits_teaches_the_discriminator(digits_images):
    ctx = LocalContext()
    trainer = GANTrainer(make_gan(), digits_images.tensors, config(), ctx)
    result = trainer.fit()
    assert result.stop_reason is None and result.epochs_done == 1
    metrics = result.final_metrics
    assert {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "samples_per_second", "epoch_seconds"} <= set(metrics)
    assert discriminator_beats_chance(metrics), metrics
    assert metrics["d_loss"] < 2 * math.log(2)  # the loss of a discriminator that always says 1/2
    assert [s for s, _ in ctx.series("d_loss")][:-1] == list(range(5, trainer.steps_per_epoch + 1, 5))
    assert len(ctx.series("g_loss")) == len(ctx.series("d_loss"))
    assert len(ctx.checkpoints) == 1 and ctx.checkpoints[0]["epoch"] == 1

    # Control: the same run with nothing learnt (lr 0) must fail the check, or it checks nothing.
    frozen = GANTrainer(make_gan(), digits_images.tensors, config(), LocalContext(), optimizer={**GAN_DEFAULT, "lr": 0.0}).fit()
    assert not discriminator_beats_chance(frozen.final_metrics), frozen.final_metrics

    with torch.no_grad():
        images = trainer.gan.eval().generate(4)
    assert images.shape == (4, *IMAGE_SHAPE) and images.abs().max() <= 1
    assert from_tanh_range(images, trainer.data_low, trainer.data_high).shape == images.shape


def test_gan_training_stops_when_told(digits_images):
    result = GANTrainer(make_gan(), digits_images.tensors, config(epochs=3), LocalContext(stop_after_step=3)).fit()
    assert result.stop_reason == "cancelled"
    assert result.steps_done == 3 and result.epochs_done == 0


def test_gan_resumed_mid_epoch_ends_where_an_uninterrupted_run_does(digits_images):
    data = subset(digits_images.tensors, 320)  # 5 steps an epoch: cheap, and the stop lands mid-epoch
    straight = GANTrainer(make_gan(), data, config(epochs=2), LocalContext())
    straight.fit()

    ctx = LocalContext(stop_after_step=7, stop_with="shutdown")
    first = GANTrainer(make_gan(), data, config(epochs=2), ctx)
    assert first.fit().stop_reason == "shutdown"
    ctx.stop_after_step = None
    resumed = GANTrainer(make_gan(seed=99), data, config(epochs=2), ctx)  # weights come from the checkpoint
    result = resumed.fit()

    assert result.stop_reason is None and result.steps_done == straight.total_steps
    for name, value in straight.gan.state_dict().items():
        assert torch.equal(value, resumed.gan.state_dict()[name]), name


# -- RBM: the model ----------------------------------------------------------------------------------


def test_rbm_transform_gives_hidden_probabilities(binary_digits):
    rbm = make_rbm(hidden=48)
    v = binary_digits.x_val[:10]
    features = rbm(v)
    assert features.shape == (10, 48)
    assert features.min() >= 0 and features.max() <= 1
    assert rbm.reconstruct(v).shape == (10, 64)
    assert rbm.free_energy(v).shape == (10,)
    h = rbm.sample_h(v, torch.Generator().manual_seed(0))
    assert set(h.unique().tolist()) <= {0.0, 1.0}
    assert rbm.sample_v(h).shape == (10, 64)


def test_rbm_takes_images_flattened():
    rbm = RBM_ARCH.build(RBM_ARCH.make_params({"hidden": 5}), (1, 4, 4), 1)
    assert rbm(torch.rand(3, 1, 4, 4)).shape == (3, 5)


# -- RBM: the loop -----------------------------------------------------------------------------------


def test_contrastive_divergence_learns_binary_digits(binary_digits):
    ctx = LocalContext()
    trainer = RBMTrainer(make_rbm(), binary_digits, config(epochs=5, batch_size=32), ctx)
    result = trainer.fit()
    assert result.stop_reason is None and result.epochs_done == 5

    errors = [v for _, v in ctx.series("reconstruction_error")]
    pll = [v for _, v in ctx.series("pseudo_log_likelihood")]
    assert len(errors) == len(pll) == 5
    assert errors[-1] < errors[0]
    assert all(math.isfinite(v) for v in pll) and pll[-1] > pll[0]
    train_errors = [s for s, _ in ctx.series("train_reconstruction_error")]
    assert len(train_errors) == trainer.total_steps // 5 + 5  # every 5 steps, and each epoch's mean
    assert {"samples_per_second", "epoch_seconds"} <= {name for name, *_ in ctx.points}
    assert len(ctx.checkpoints) == 5


def test_rbm_training_stops_when_told(binary_digits):
    result = RBMTrainer(make_rbm(), binary_digits, config(epochs=3), LocalContext(stop_after_step=3)).fit()
    assert result.stop_reason == "cancelled" and result.steps_done == 3


def test_rbm_resumed_mid_epoch_ends_where_an_uninterrupted_run_does(binary_digits):
    straight = RBMTrainer(make_rbm(k=2), binary_digits, config(epochs=2), LocalContext())
    expected = straight.fit().final_metrics

    ctx = LocalContext(stop_after_step=30, stop_with="shutdown")
    assert RBMTrainer(make_rbm(k=2), binary_digits, config(epochs=2), ctx).fit().stop_reason == "shutdown"
    ctx.stop_after_step = None
    resumed = RBMTrainer(make_rbm(seed=99, k=2), binary_digits, config(epochs=2), ctx)
    result = resumed.fit()

    assert result.stop_reason is None and result.steps_done == straight.total_steps
    for name, value in straight.rbm.state_dict().items():
        assert torch.equal(value, resumed.rbm.state_dict()[name]), name
    for name in ("reconstruction_error", "pseudo_log_likelihood", "train_reconstruction_error"):
        assert result.final_metrics[name] == pytest.approx(expected[name], rel=1e-6), name


# -- both: every optimizer and schedule, through the one loop -----------------------------------------

ADAM = {"name": "adam", "lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
SGD_MOMENTUM = {"name": "sgd", "lr": 0.01, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0}
COSINE = {"name": "cosine", "warmup_epochs": 0.5, "min_lr": 0.0}


def test_rbm_learns_with_adam_and_a_cosine_schedule(binary_digits):
    ctx = LocalContext()
    result = RBMTrainer(make_rbm(), binary_digits, config(epochs=4, batch_size=32, lr_schedule=COSINE), ctx, optimizer=ADAM).fit()
    assert result.stop_reason is None
    errors = [v for _, v in ctx.series("reconstruction_error")]
    assert errors[-1] < errors[0]
    rates = [v for _, v in ctx.series("learning_rate")]
    assert len(rates) == 4 and rates[-1] < rates[1] < ADAM["lr"]  # warmed up, then annealed


@pytest.mark.parametrize("family", ["gan", "rbm"])
def test_resume_mid_epoch_is_exact_with_another_optimizer_and_a_schedule(digits_images, binary_digits, family):
    if family == "gan":
        data = subset(digits_images.tensors, 320)

        def make(seed, ctx):
            return GANTrainer(make_gan(seed=seed), data, config(epochs=2, lr_schedule=COSINE), ctx, optimizer=SGD_MOMENTUM)
    else:
        def make(seed, ctx):
            return RBMTrainer(make_rbm(seed=seed), binary_digits, config(epochs=2, lr_schedule=COSINE), ctx, optimizer=ADAM)
    straight = make(0, LocalContext())
    straight.fit()

    ctx = LocalContext(stop_after_step=7, stop_with="shutdown")
    assert make(0, ctx).fit().stop_reason == "shutdown"
    ctx.stop_after_step = None
    resumed = make(99, ctx)  # weights, optimizer state and schedule come from the checkpoint
    assert resumed.fit().steps_done == straight.total_steps
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_rbm_gradient_clipping_bounds_each_update(binary_digits):
    """grad_clip_norm applies to the contrastive-divergence gradient too: clipped to almost nothing,
    one epoch of plain SGD leaves the weights almost where they started."""
    sgd = {**SGD_MOMENTUM, "lr": 0.1, "momentum": 0.0}

    def moved(clip):
        rbm = make_rbm()
        start = rbm.weight.detach().clone()
        RBMTrainer(rbm, binary_digits, config(grad_clip_norm=clip), LocalContext(), optimizer=sgd).fit()
        return (rbm.weight.detach() - start).norm().item()

    steps = math.ceil(len(binary_digits.x_train) / 64)
    assert moved(1e-6) <= 0.1 * 1e-6 * steps + 1e-9  # each step moves at most lr * clip
    assert moved(None) > 100 * moved(1e-6)
