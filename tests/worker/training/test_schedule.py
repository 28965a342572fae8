import math

import pytest

from worker.training.schedule import Schedule


def rates(spec, steps=100, per_epoch=10, base=0.1):
    s = Schedule(spec, base, per_epoch, steps)
    return s, [s.lr(i) for i in range(steps)]


def test_constant_is_the_base_rate():
    assert set(rates(None)[1]) == {0.1}


def test_warmup_ramps_linearly_then_cosine_decays_to_min_lr():
    _, lr = rates({"name": "cosine", "warmup_epochs": 2, "min_lr": 0.001})
    assert lr[:20] == pytest.approx([0.1 * (i + 1) / 20 for i in range(20)])
    assert lr[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lr[20:], lr[21:]))
    assert lr[-1] == pytest.approx(0.001, abs=1e-4)


def test_step_multiplies_by_gamma_every_step_epochs():
    _, lr = rates({"name": "step", "step_epochs": 3, "gamma": 0.5})
    assert lr[29] == pytest.approx(0.1) and lr[30] == pytest.approx(0.05) and lr[60] == pytest.approx(0.025)


def test_onecycle_rises_to_the_peak_then_falls_far_below_the_start():
    _, lr = rates({"name": "onecycle"})
    peak = max(range(100), key=lambda i: lr[i])
    assert 25 <= peak <= 31 and lr[peak] == pytest.approx(0.1, rel=1e-2)
    assert lr[0] == pytest.approx(0.004) and lr[-1] < lr[0]


def test_plateau_reduces_after_patience_epochs_without_improvement_and_its_state_round_trips():
    s = Schedule({"name": "plateau", "patience": 1, "factor": 0.5}, 0.1, 10, 100)
    for loss in (1.0, 0.9, 0.95, 0.95):
        s.end_of_epoch({"val_loss": loss})
    assert s.lr(0) == pytest.approx(0.05)
    copy = Schedule({"name": "plateau", "patience": 1, "factor": 0.5}, 0.1, 10, 100)
    copy.load_state_dict(s.state_dict())
    assert copy.lr(0) == s.lr(0) and copy.plateau_best == 0.9 and not math.isinf(copy.plateau_best)
