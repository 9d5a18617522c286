"""What a run trains on, batch by batch: its data order and the batches it gathers."""

from __future__ import annotations

import numpy as np
import torch

from . import augment, models


class EpochShuffler:
    """Batches drawn in order from a permutation of the index file, reshuffled at each epoch's end.

    A batch that crosses an epoch boundary continues into the next permutation, as Caffe's data layer
    does, so every run sees exactly ``iterations * batch_size`` examples however large its set.
    """

    def __init__(self, indices: np.ndarray, rng: np.random.Generator):
        if len(indices) == 0:
            raise ValueError("the index file is empty: nothing to train on")
        self.indices = np.asarray(indices)
        self.rng = rng
        self.epoch = 0
        self.position = 0
        self.order = self.rng.permutation(self.indices)

    def next_batch(self, size: int) -> np.ndarray:
        parts, needed = [self.order[:0]], size
        while needed:
            if self.position == len(self.order):
                self.order = self.rng.permutation(self.indices)
                self.position = 0
                self.epoch += 1
            taken = self.order[self.position: self.position + needed]
            self.position += len(taken)
            needed -= len(taken)
            parts.append(taken)
        return np.concatenate(parts)

    def next_batches(self, steps: int, size: int) -> np.ndarray:
        """The batches of the next ``steps`` iterations, (steps, size): the same examples in the same
        order, and the same reshuffles, as ``steps`` calls of ``next_batch``, drawn in one piece."""
        return self.next_batch(steps * size).reshape(steps, size)

    def state_dict(self) -> dict:
        """Plain numbers, strings and a tensor: what ``torch.load(..., weights_only=True)`` reads."""
        return {"rng": self.rng.bit_generator.state, "epoch": self.epoch, "position": self.position,
                "order": torch.from_numpy(self.order.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.epoch, self.position, self.order = state["epoch"], state["position"], state["order"].numpy()


def upload(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Batch indices to the device without making the host wait: from pinned memory, asynchronously,
    on CUDA (the caching host allocator keeps the pinned copy alive until the transfer is done)."""
    tensor = torch.from_numpy(rows)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


class TensorBatches:
    """Batches of an in-memory dataset: the whole pool lives on the device, a batch is one gather,
    with no loader and no host copies."""

    in_memory = True

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device):
        self.inputs = models.to_input(torch.from_numpy(images)).to(device)
        self.targets = torch.from_numpy(labels).to(device)
        self.labels = np.asarray(labels)  # on the host, for samplers that draw by class
        self.device = device
        self.input_shape = tuple(images.shape[1:])
        # Image batches go channels-last (NHWC), the layout oneDNN's and cuDNN's fastest convolution
        # kernels take: on 2 CPU cores it trains LeNet-5 about 1.5x faster (scripts/benchmark.py).
        self.channels_last = self.inputs.ndim == 4

    def gather(self, rows: torch.Tensor, offsets: torch.Tensor | None = None, flips: torch.Tensor | None = None,
               padding: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of pool rows already on the device: a batch (B,), or K runs' batches (K, B).
        With ``offsets`` and ``flips`` (on the device, shaped as ``rows`` plus (2,) and ()), each image is
        cropped from its ``padding``-padded self and flipped (``augment.apply``), before the layout changes."""
        inputs = self.inputs[rows]
        if offsets is not None:
            inputs = augment.apply(inputs, offsets, flips, padding)
        if self.channels_last and rows.ndim == 1:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, self.targets[rows]


class ImageFolderBatches:
    """Batches of an image-folder dataset (ImageNet), decoded and augmented on the fly by threads.

    Each example's crop and flip are drawn from a seed derived from (run, iteration, slot), so a
    resumed run sees exactly the augmentations an uninterrupted one would, whatever the threads do.
    """

    in_memory = False
    channels_last = False

    def __init__(self, dataset, run_seed: int, device: torch.device, threads: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        from .datasets import ImageFolderSubset

        self.subset = ImageFolderSubset(dataset, "train", train=True, resize=dataset.resize, crop=dataset.crop)
        self.run_seed, self.device = run_seed, device
        self.labels = np.asarray(dataset.train_labels)  # for samplers that draw by class
        self.input_shape = dataset.image_shape
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def __call__(self, batch: np.ndarray, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        keys = [(int(index), int(np.random.SeedSequence([self.run_seed, iteration, slot]).generate_state(1)[0]))
                for slot, index in enumerate(batch)]
        items = list(self.pool.map(self.subset.__getitem__, keys))
        inputs = torch.stack([image for image, _ in items]).to(self.device, non_blocking=True)
        targets = torch.tensor([label for _, label in items], dtype=torch.int64).to(self.device)
        return inputs, targets
