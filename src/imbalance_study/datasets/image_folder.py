"""Reading an image-folder dataset's images on the fly: ``ImageFolderSubset``, a torch-style dataset
of one split's listed paths, decoded, resized, cropped (randomly when training) and normalised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .store import Dataset, DatasetError

# ImageNet statistics of pixels scaled to [0, 1] (torchvision's convention for its ImageNet models).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageFolderSubset:
    """Images of one split of an image-folder dataset, decoded and augmented on the fly.

    Training: shorter side resized to ``resize``, a random ``crop`` x ``crop`` crop, a random
    horizontal flip; test: resize, then the centre crop. Output: ``(image, label)`` with image a
    float32 tensor (3, crop, crop) of pixels / 255 (torchvision's ToTensor scale, which the ImageNet
    statistics assume) normalised with ImageNet's mean and std per channel.

    Randomness (crop offsets, flips) comes from the subset's own ``torch.Generator``, never the
    global one, so it is reproducible:
      * in one process, ``ImageFolderSubset(..., seed=s)`` or ``reseed(s)`` fixes the stream;
      * with DataLoader workers, pass ``worker_init_fn=ImageFolderSubset.seed_worker`` and
        ``generator=torch.Generator().manual_seed(s)``: each worker reseeds its copy with the seed
        torch gives it (derived from that generator plus the worker id), so runs repeat exactly;
      * an item key ``(position, seed)`` instead of ``position`` draws that item's augmentation from
        ``seed`` alone, independent of workers and order (e.g. seed = f(run seed, iteration, slot)
        for resumable training).
    """

    def __init__(self, dataset: Dataset, split: str, indices=None, train: bool = False, resize: int = 256,
                 crop: int = 224, seed: int = 0):
        paths = getattr(dataset, f"{split}_paths", None)
        if dataset.kind != "image_folder" or paths is None:
            raise DatasetError(f"dataset {dataset.name}: no {split} split of an image folder")
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than the resized shorter side {resize}")
        indices = np.arange(len(paths)) if indices is None else np.asarray(indices)
        root = Path(dataset.roots[split])
        self.paths = [root / paths[index] for index in indices]
        self.labels = getattr(dataset, f"{split}_labels")[indices]
        self.train, self.resize, self.crop = train, resize, crop
        self.generator = None
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        import torch

        self.generator = torch.Generator().manual_seed(int(seed) % (2 ** 63))

    @staticmethod
    def seed_worker(worker_id: int) -> None:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        info.dataset.reseed(info.seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        import torch
        from PIL import Image
        from torchvision.transforms import functional

        if isinstance(item, tuple):
            position, seed = item
            generator = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        else:
            position, generator = item, self.generator
        path = self.paths[position]
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise DatasetError(f"{path}: cannot read the image ({error})") from error
        image = functional.resize(image, self.resize)
        if self.train:
            width, height = image.size
            top = int(torch.randint(0, height - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.crop + 1, (1,), generator=generator))
            image = functional.crop(image, top, left, self.crop, self.crop)
            if torch.rand(1, generator=generator).item() < 0.5:
                image = functional.hflip(image)
        else:
            image = functional.center_crop(image, [self.crop, self.crop])
        tensor = functional.normalize(functional.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)
        return tensor, int(self.labels[position])
