"""Random crop with zero padding and horizontal flip on the device (imbalance_study.augment)."""

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as tvf

from imbalance_study import augment

PADDING = 4


def images(n=5, channels=3, height=8, width=6, dtype=torch.float32):
    """Every pixel distinct, none zero: a misplaced or padded pixel cannot go unnoticed."""
    return (torch.arange(n * channels * height * width, dtype=torch.float64) + 1).reshape(n, channels, height, width) \
        .to(dtype)


def shifted_by_hand(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The window of ``image`` moved by (dy, dx) pixels, zeros where it leaves the image."""
    channels, height, width = image.shape
    out = np.zeros_like(image)
    for i in range(height):
        for j in range(width):
            if 0 <= i + dy < height and 0 <= j + dx < width:
                out[:, i, j] = image[:, i + dy, j + dx]
    return out


def test_an_example_shifted_by_a_known_offset():
    batch = images()
    # Offset (row, column) in the padded image; (PADDING, PADDING) is the image itself.
    shifts = [(0, 0), (-4, -4), (4, 4), (-1, 3), (2, -4)]
    offsets = torch.tensor([(PADDING + dy, PADDING + dx) for dy, dx in shifts])
    out = augment.apply(batch, offsets, torch.zeros(len(shifts), dtype=torch.bool), PADDING)
    for k, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(out[k].numpy(), shifted_by_hand(batch[k].numpy(), dy, dx))
    assert out.shape == batch.shape and out.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_each_example_is_torchvisions_pad_crop_and_flip(dtype):
    batch = (images(n=16, height=32, width=32) % 251 + 1).to(dtype)
    draws = augment.draw(np.random.default_rng(7), 16, padding=PADDING, flip=True)
    assert draws.flips.any() and not draws.flips.all()
    out = augment.apply(batch, *augment.to_device(draws, torch.device("cpu")), PADDING)
    assert out.dtype == dtype
    for k, ((top, left), flip) in enumerate(zip(draws.offsets, draws.flips)):
        expected = tvf.crop(tvf.pad(batch[k], [PADDING], fill=0), int(top), int(left), 32, 32)
        if flip:
            expected = tvf.horizontal_flip(expected)
        assert torch.equal(out[k], expected), k


def test_flip_twice_is_the_identity_and_the_centre_offset_crops_nothing():
    batch = images()
    centre = torch.full((len(batch), 2), PADDING)
    flips = torch.ones(len(batch), dtype=torch.bool)
    once = augment.apply(batch, centre, flips, PADDING)
    assert torch.equal(once, batch.flip(-1))
    assert torch.equal(augment.apply(once, centre, flips, PADDING), batch)
    assert torch.equal(augment.apply(batch, centre, ~flips, PADDING), batch)
    assert torch.equal(augment.apply(batch, torch.zeros_like(centre), ~flips, 0), batch)  # no padding at all


def test_stacked_batches_and_channels_last_give_the_same_examples():
    k, b = 3, 4
    batch = images(n=k * b).reshape(k, b, 3, 8, 6)
    draws = augment.draw_batches(11, 0, k, b, padding=PADDING, flip=True)  # (K, B, ...) shaped as a step's
    offsets, flips = augment.to_device(draws, torch.device("cpu"))
    stacked = augment.apply(batch, offsets, flips, PADDING)
    for network in range(k):
        alone = augment.apply(batch[network], offsets[network], flips[network], PADDING)
        assert torch.equal(stacked[network], alone)
    flat = batch.reshape(k * b, 3, 8, 6)
    channels_last = augment.apply(flat.contiguous(memory_format=torch.channels_last), offsets.reshape(-1, 2),
                                  flips.reshape(-1), PADDING)
    assert torch.equal(channels_last, stacked.reshape(k * b, 3, 8, 6))


def test_offsets_and_flips_that_do_not_match_the_batch_are_refused():
    with pytest.raises(ValueError, match=r"augment: offsets \(4, 2\) and flips \(5,\).*\(5,\)"):
        augment.apply(images(), torch.zeros(4, 2, dtype=torch.int64), torch.zeros(5, dtype=torch.bool), PADDING)
    with pytest.raises(ValueError, match="crop_padding must be 0 or more"):
        augment.draw(np.random.default_rng(0), 3, padding=-1, flip=False)


def test_the_draw_is_reproducible_from_the_seed_and_iteration():
    first = augment.draw_batches(3, 100, 5, 128, padding=PADDING, flip=True)
    again = augment.draw_batches(3, 100, 5, 128, padding=PADDING, flip=True)
    assert np.array_equal(first.offsets, again.offsets) and np.array_equal(first.flips, again.flips)
    # A resumed run starting at iteration 102 draws what the uninterrupted one drew there.
    resumed = augment.draw_batches(3, 102, 3, 128, padding=PADDING, flip=True)
    assert np.array_equal(resumed.offsets, first.offsets[2:]) and np.array_equal(resumed.flips, first.flips[2:])
    other = augment.draw_batches(4, 100, 5, 128, padding=PADDING, flip=True)  # another network's seed
    assert not np.array_equal(other.offsets, first.offsets)
    assert first.offsets.shape == (5, 128, 2) and first.offsets.dtype == np.int64 and first.flips.shape == (5, 128)


def test_the_draw_is_uniform_over_offsets_and_fair_over_flips():
    n = 90_000
    draws = augment.draw(augment.iteration_rng(1, 0), n, padding=PADDING, flip=True)
    values = 2 * PADDING + 1
    counts = np.bincount(draws.offsets.ravel(), minlength=values)
    assert len(counts) == values  # every offset in [0, 2 * padding], none outside
    # Each count is binomial(2n, 1/9): within six of its standard deviations of 2n/9.
    expected, sd = 2 * n / values, np.sqrt(2 * n * (1 / values) * (1 - 1 / values))
    assert np.all(np.abs(counts - expected) < 6 * sd)
    assert abs(draws.flips.sum() - n / 2) < 6 * np.sqrt(n / 4)
    plain = augment.draw(augment.iteration_rng(1, 0), 50, padding=0, flip=False)
    assert not plain.offsets.any() and not plain.flips.any()


# ---- In the engines: each training batch is the documented draw of its run and iteration ----------

AUGMENT = {"crop_padding": 2, "flip": True}


def engine_runs(seeds_methods):
    from .test_training import spec

    return [spec(method=method, seed=seed, augment=AUGMENT) for seed, method in seeds_methods]


def expected_batch(batches, rows, run, iteration):
    """The documented draw: ``draw_batches(run_seed(run), iteration, 1, B)`` applied to the gathered rows."""
    draws = augment.draw_batches(augment.run_seed(run), iteration, 1, len(rows), padding=AUGMENT["crop_padding"],
                                 flip=AUGMENT["flip"])
    offsets, flips = augment.to_device(draws, torch.device("cpu"))
    return augment.apply(batches.inputs[rows], offsets[0], flips[0], AUGMENT["crop_padding"])


def test_the_one_at_a_time_batch_of_an_iteration_is_the_documented_draw(tmp_path):
    from imbalance_study import training
    from imbalance_study.batches import TensorBatches
    from imbalance_study.loop import Trainee

    from .test_training import tiny_data

    images, labels = tiny_data()
    batches = TensorBatches(images, labels, torch.device("cpu"))
    (run,) = engine_runs([(1, "baseline")])
    engine = training.OneAtATime(Trainee(run, np.arange(len(labels)), tmp_path / "run"), batches, 3,
                                 torch.device("cpu"))
    iteration = 0
    for steps in (3, 2):  # two stops: the second draw goes on from iteration 3
        engine.draw(steps)
        for step in range(steps):
            inputs, targets = engine.batch(step, iteration)
            rows = engine.ahead[step]
            assert torch.equal(inputs, expected_batch(batches, rows, run, iteration)), iteration
            assert inputs.is_contiguous(memory_format=torch.channels_last)  # augmented, then channels-last
            assert torch.equal(targets, batches.targets[rows])
            assert not torch.equal(inputs, batches.inputs[rows])  # cropped or flipped: not the plain batch
            iteration += 1


def test_each_stacked_networks_batch_is_its_runs_documented_draw(tmp_path, monkeypatch):
    """Three networks: two methods of seed 1 (the same draws: paired comparisons) and seed 2 (its own)."""
    from imbalance_study import stacked, stacked_step
    from imbalance_study.batches import TensorBatches
    from imbalance_study.loop import Trainee

    from .test_training import tiny_data

    images, labels = tiny_data()
    batches = TensorBatches(images, labels, torch.device("cpu"))
    runs = engine_runs([(1, "baseline"), (1, "over"), (2, "baseline")])
    members = [stacked._Started(Trainee(run, np.arange(len(labels)), tmp_path / f"run{k}"), 3, batches.input_shape)
               for k, run in enumerate(runs)]
    engine = stacked.Stacked(members, batches, torch.device("cpu"))
    seen = []

    def seeing(engine_, rows, lr, offsets, flips):
        assert offsets is engine_.offsets and flips is engine_.flips  # the static buffers, filled in place
        seen.append(engine_.batches.gather(rows, offsets, flips, AUGMENT["crop_padding"])[0].clone())
        return engine_.last_losses

    monkeypatch.setattr(stacked_step, "train_step", seeing)
    iteration = 0
    for steps in (2, 3):
        engine.draw(steps)
        for step in range(steps):
            engine.step(step, iteration, 0.01)
            for k, run in enumerate(runs):
                expected = expected_batch(batches, engine.ahead[step][k], run, iteration)
                assert torch.equal(seen[-1][k], expected), (iteration, k)
            iteration += 1
    offsets = augment.draw_networks([augment.run_seed(run) for run in runs], 0, 5, 8, padding=2, flip=True).offsets
    assert np.array_equal(offsets[:, 0], offsets[:, 1]) and not np.array_equal(offsets[:, 0], offsets[:, 2])


def test_augmentation_is_refused_for_rows_of_features():
    from imbalance_study.batches import TensorBatches

    from .test_training import protocol

    features = TensorBatches(np.random.default_rng(0).random((6, 4)), np.arange(6) % 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="in-memory image datasets only.*rows of features"):
        augment.training_settings(protocol(augment=AUGMENT), features)
    assert augment.training_settings(protocol(), features) is None  # off: nothing to refuse
