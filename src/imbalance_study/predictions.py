"""Stored predictions (a run's predictions.h5): every checkpoint's log-probabilities per split, so a
run can be scored again, by a new metric too, without its network."""

from __future__ import annotations

import numpy as np

from .metrics import score

PREDICTIONS_FORMAT = 2


def write_predictions(path, manifest: dict, splits: dict, train_counts: np.ndarray) -> None:
    """Per split: ``log_probs`` (checkpoints x examples x classes, float32) and, for the train split,
    ``rows`` (the pool rows evaluated) and ``weights`` (each one's weight in the scores, see
    ``train_split_rows``); attributes name the run and its checkpoints' iterations."""
    import h5py

    from .atomic import atomic_path

    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            handle.attrs["format"] = PREDICTIONS_FORMAT
            handle.attrs["fingerprint"] = manifest["fingerprint"]
            handle.attrs["iterations"] = [entry["iteration"] for entry in manifest["checkpoints"]]
            handle.attrs["train_counts"] = np.asarray(train_counts)
            for split, arrays in splits.items():
                group = handle.create_group(split)
                group.create_dataset("log_probs", data=arrays["log_probs"], compression="gzip", shuffle=True)
                for name in ("rows", "weights"):
                    if arrays[name] is not None:
                        group.create_dataset(name, data=arrays[name], compression="gzip")


def rescore(predictions_path, dataset, minority: np.ndarray, identity: dict, *, taus=()) -> list[dict]:
    """Score rows again from stored predictions, without checkpoints or a network: what a new
    metric needs, and post-hoc logit adjustment at other ``taus`` (tau 0 and 1 are always scored;
    pass the config's ``scoring.logit_adjustment_taus`` for the rows a job wrote). Silhouettes need
    features, which are not stored, and are left out."""
    import h5py

    rows = []
    with h5py.File(predictions_path, "r") as handle:
        if handle.attrs.get("format") != PREDICTIONS_FORMAT:
            raise ValueError(f"{predictions_path}: not a predictions file of format {PREDICTIONS_FORMAT}")
        iterations = [int(value) for value in handle.attrs["iterations"]]
        counts = np.asarray(handle.attrs["train_counts"])
        for split in handle:
            group = handle[split]
            log_probs = group["log_probs"][...].astype(np.float64)
            weights, labels = None, getattr(dataset, f"{split}_labels")
            if "rows" in group:
                labels = dataset.train_labels[group["rows"][...]]
                weights = group["weights"][...]
            for position, iteration in enumerate(iterations):
                rows.extend(score(log_probs[position], labels, counts, minority, iteration, split, weights,
                                  taus=taus))
    return [{**identity, **row} for row in rows]
