import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.core import preprocessing


def test_resize_matches_torch_bilinear():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 16, size=(5, 8, 8)).astype(np.float32)
    pre = preprocessing.plan(sample_shape=(8, 8), value_max=16, input_kind="image", input_size=(32, 32))
    ours = preprocessing.apply(pre, raw)
    theirs = F.interpolate(torch.from_numpy(raw / 16).unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False)
    assert ours.shape == (5, 1, 32, 32)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


def test_fit_standardises_training_split_per_channel():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 255, size=(200, 3, 6, 6))
    pre = preprocessing.plan(sample_shape=(3, 6, 6), value_max=255, input_kind="image")
    fitted = preprocessing.fit(pre, raw)
    x = preprocessing.apply(fitted, raw)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-3)


def test_vector_layout_flattens_and_standardises_per_feature():
    raw = np.stack([np.full((8, 8), 2.0), np.full((8, 8), 4.0)])
    pre = preprocessing.fit(preprocessing.plan(sample_shape=(8, 8), value_max=16, input_kind="vector"), raw)
    assert pre.input_shape == (64,)
    x = preprocessing.apply(pre, raw)
    assert x.shape == (2, 64)
    np.testing.assert_allclose(x[0], -1.0, atol=1e-6)


def test_round_trips_through_json_dict():
    pre = preprocessing.fit(preprocessing.plan(sample_shape=(8, 8), value_max=16, input_kind="image", input_size=(32, 32)), np.ones((3, 8, 8)))
    assert preprocessing.Preprocessing.from_dict(pre.to_dict()) == pre


def test_image_network_rejects_vector_samples():
    with pytest.raises(preprocessing.IncompatibleInput):
        preprocessing.plan(sample_shape=(13,), value_max=1, input_kind="image", input_size=(32, 32))
