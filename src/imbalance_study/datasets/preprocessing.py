"""The transforms fitted on a training pool and stored with the dataset: GCN + ZCA for CIFAR-10 and
standardisation for tabular features (a user's table: ``tables.encode``); ``apply_preprocessing``
repeats a stored one on new examples.
"""

from __future__ import annotations

import h5py
import numpy as np

from .store import DatasetError

# Global contrast normalisation and ZCA as in Goodfellow et al.'s maxout CIFAR-10 preprocessing
# (pylearn2's make_cifar10_gcn_whitened.py), which All-CNN (Springenberg et al. 2015) reuses:
# pylearn2's global_contrast_normalize(X, scale=55.) divides each centred image by its L2 NORM over
# all 3,072 values (use_std=False), not by its standard deviation, so every image gets norm 55,
# i.e. a root-mean-square value of 55 / sqrt(3072) ~ 0.99 per pixel; divisors below 1e-8 become 1.
GCN_SCALE = 55.0
GCN_MIN_DIVISOR = 1e-8
# pylearn2's ZCA(filter_bias=0.1): P = V diag(1 / sqrt(lambda + 0.1)) V^T with the biased (1/N)
# covariance of the GCN'd training pool. The bias is absolute, on the GCN scale above (pixel
# variance ~1): directions with eigenvalue lambda keep variance lambda / (lambda + 0.1).
ZCA_FILTER_BIAS = 0.1
# The whitening runs over this many images at a time, so 60,000 CIFAR images need ~0.5 GB, not ~3 GB.
_CHUNK = 5000


def global_contrast_normalize(images: np.ndarray, scale: float = GCN_SCALE,
                              min_divisor: float = GCN_MIN_DIVISOR) -> np.ndarray:
    """Each image (flattened) minus its mean, divided by its L2 norm / ``scale`` (pylearn2's convention)."""
    design = images.reshape(len(images), -1).astype(np.float64)
    design -= design.mean(axis=1, keepdims=True)
    normalizers = np.sqrt((design ** 2).sum(axis=1)) / scale
    normalizers[normalizers < min_divisor] = 1.0  # a flat image stays zero instead of blowing up
    design /= normalizers[:, None]
    return design


def fit_zca(design: np.ndarray, filter_bias: float = ZCA_FILTER_BIAS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening matrix V diag(1 / sqrt(lambda + filter_bias)) V^T of the rows of ``design``.

    lambda, V: eigenvalues and eigenvectors of the biased (1/N) covariance, as pylearn2's ZCA. With
    fewer rows than columns (small pools, tests) the same matrix comes from a thin SVD, exactly.
    """
    mean = design.mean(axis=0)
    if len(design) < design.shape[1]:
        return mean, _zca_by_svd(design - mean, filter_bias)
    return mean, _zca_by_eigh(design, mean, filter_bias)


def _zca_by_eigh(design: np.ndarray, mean: np.ndarray, filter_bias: float) -> np.ndarray:
    covariance = np.zeros((design.shape[1], design.shape[1]))
    for start in range(0, len(design), _CHUNK):
        centred = design[start:start + _CHUNK] - mean
        covariance += centred.T @ centred
    covariance /= len(design)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # rounding makes the null space's eigenvalues ~ -1e-15
    return (eigenvectors / np.sqrt(eigenvalues + filter_bias)) @ eigenvectors.T


def _zca_by_svd(centred: np.ndarray, filter_bias: float) -> np.ndarray:
    # The covariance has eigenvalues s^2 / N along the right singular vectors and 0 on the rest, where
    # the whitening matrix is 1 / sqrt(filter_bias): P = I / sqrt(b) + V (1/sqrt(lambda + b) - 1/sqrt(b)) V^T.
    _, singular_values, right = np.linalg.svd(centred, full_matrices=False)
    eigenvalues = singular_values ** 2 / len(centred)
    gains = 1.0 / np.sqrt(eigenvalues + filter_bias) - 1.0 / np.sqrt(filter_bias)
    matrix = (right.T * gains) @ right
    matrix[np.diag_indices_from(matrix)] += 1.0 / np.sqrt(filter_bias)
    return matrix


def _gcn_zca(images: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) to float32 (N, H, W, C) through GCN and the given ZCA (HWC flattening)."""
    result = np.empty(images.shape, dtype=np.float32)
    for start in range(0, len(images), _CHUNK):
        design = global_contrast_normalize(images[start:start + _CHUNK])
        result[start:start + _CHUNK] = ((design - mean) @ matrix).reshape(design.shape[:1] + images.shape[1:])
    return result


def _standardise(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((features.astype(np.float64) - mean) / scale).astype(np.float32)


def method_for(source: str, kind: str, spec: dict) -> str:
    """The transform a dataset gets: ``spec["preprocessing"]`` for CIFAR-10, else fixed by its kind.

    The spec's preprocessing key is CIFAR-10's alone: the config schema writes its default into every
    dataset, so elsewhere it is ignored. Tabular features are always standardised.
    """
    method = {"images": "none", "tabular": "standardise", "image_folder": "none"}[kind]
    if source == "torchvision_cifar10":
        method = spec["preprocessing"]
    return method


def preprocess(method: str, parts: dict) -> tuple[dict, dict, dict]:
    """Fit ``method`` on the training pool and apply it to every split.

    Returns the transformed parts, the arrays to store under /preprocessing and its attrs.
    """
    if method == "none":
        return parts, {}, {"method": "none"}
    train_data = parts["train"][0]
    if method == "gcn_zca":
        mean, matrix = fit_zca(global_contrast_normalize(train_data))
        # What is stored is what is applied: float32 arrays, so apply_preprocessing can reproduce it.
        mean, matrix = mean.astype(np.float32), matrix.astype(np.float32)
        wide_mean, wide_matrix = mean.astype(np.float64), matrix.astype(np.float64)
        transformed = {split: (_gcn_zca(data, wide_mean, wide_matrix), labels) for split, (data, labels) in parts.items()}
        attrs = {"method": "gcn_zca", "gcn_scale": GCN_SCALE, "gcn_min_divisor": GCN_MIN_DIVISOR,
                 "zca_filter_bias": ZCA_FILTER_BIAS, "flattening": "HWC row-major"}
        return transformed, {"zca_mean": mean, "zca_matrix": matrix}, attrs
    if method == "standardise":
        mean = train_data.mean(axis=0)
        scale = train_data.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature is centred, not divided by zero (as scikit-learn)
        transformed = {split: (_standardise(data, mean, scale), labels) for split, (data, labels) in parts.items()}
        return transformed, {"standard_mean": mean, "standard_scale": scale}, {"method": "standardise"}
    raise DatasetError(f"preprocessing: unknown method '{method}', expected gcn_zca, standardise or none")


def apply_preprocessing(raw: np.ndarray, path_or_handle) -> np.ndarray:
    """Apply a prepared dataset's stored transform to new raw examples, exactly as to its own.

    ``raw``: uint8 images (N, H, W, C) for gcn_zca, features (N, F) for standardise, a DataFrame
    with the table's feature columns for columns (a user's table); returned
    unchanged when the dataset has no preprocessing. ``path_or_handle``: the dataset file or an open
    h5py File.
    """
    if isinstance(path_or_handle, h5py.File):
        return _apply_stored(raw, path_or_handle, path_or_handle.filename)
    try:
        with h5py.File(path_or_handle, "r") as handle:
            return _apply_stored(raw, handle, path_or_handle)
    except OSError as error:
        raise DatasetError(f"{path_or_handle}: cannot read the HDF5 file ({error})") from error


def _apply_stored(raw: np.ndarray, handle: h5py.File, path) -> np.ndarray:
    if "preprocessing" not in handle or handle["preprocessing"].attrs.get("method", "none") == "none":
        return raw
    group = handle["preprocessing"]
    method = group.attrs["method"]
    if method == "gcn_zca":
        if raw.dtype != np.uint8 or raw.shape[1:] != handle["train/images"].shape[1:]:
            raise DatasetError(f"{path}: gcn_zca expects uint8 images {handle['train/images'].shape[1:]}, "
                               f"got {raw.dtype} {raw.shape[1:]}")
        gcn = group["gcn"].attrs
        if gcn["scale"] != GCN_SCALE or gcn["min_divisor"] != GCN_MIN_DIVISOR:
            raise DatasetError(f"{path}: stored GCN constants {dict(gcn)} differ from this code's")
        return _gcn_zca(raw, group["zca_mean"][()].astype(np.float64), group["zca_matrix"][()].astype(np.float64))
    if method == "standardise":
        return _standardise(raw, group["standard_mean"][()], group["standard_scale"][()])
    if method == "columns":
        from .tables import apply_stored

        return apply_stored(raw, group, path)
    raise DatasetError(f"{path}: unknown preprocessing method '{method}'")

