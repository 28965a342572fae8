import torch

from worker.training.augment import augment, horizontal_flip, random_crop


def test_random_crop_keeps_the_shape_and_shifts_content_within_the_padding():
    torch.manual_seed(0)
    batch = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    out = random_crop(batch, padding=2)
    assert out.shape == batch.shape
    for original, cropped in zip(batch, out):
        # Every nonzero value of the crop is a value of the original, displaced by at most 2 pixels.
        for y, x in torch.nonzero(cropped[0]):
            source = (original[0] == cropped[0, y, x]).nonzero()[0]
            assert abs(int(source[0]) - int(y)) <= 2 and abs(int(source[1]) - int(x)) <= 2
    assert not torch.equal(out, batch)  # with 25 possible offsets per sample, two identity crops are unlikely


def test_horizontal_flip_flips_about_half_of_a_large_batch_and_nothing_else():
    torch.manual_seed(1)
    batch = torch.randn(400, 1, 3, 5)
    out = horizontal_flip(batch)
    flipped = [torch.equal(o, b.flip(-1)) for o, b in zip(out, batch)]
    kept = [torch.equal(o, b) for o, b in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 150 < sum(flipped) < 250


def test_augment_is_repeatable_from_the_global_seed():
    batch = torch.randn(8, 3, 10, 10)
    torch.manual_seed(5)
    a = augment(batch, crop_padding=3, flip=True)
    torch.manual_seed(5)
    b = augment(batch, crop_padding=3, flip=True)
    assert torch.equal(a, b)
