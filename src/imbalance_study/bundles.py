"""One job of the workflow: train a bundle of runs, then score every checkpoint of each.

A bundle (``study.bundles``) is up to ``engine.runs_per_job`` runs of one (dataset, profile) that
share a model and a protocol. One process loads the dataset and the test set once for all of them,
trains them, stacked (``stacked``, K networks per step) or one after another (``training.train``),
and scores them (``scoring.score_run``). Every run keeps its own directory (checkpoints, run.json,
predictions.h5); the job's declared outputs are the bundle's score table and its list of runs.

Engine ``stack: auto`` stacks on CUDA, where small networks should be bound by kernel launches, so
that K networks cost little more than one (not yet measured on a GPU); on a CPU, one network at a
time in channels-last layout is faster (scripts/benchmark.py measures both). ``always`` and ``never`` force the choice; models with
batch normalisation always train one at a time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A run of a bundle as the rule describes it (``params.runs``)."""

    seed: int
    method: str
    model: str
    model_options: dict
    protocol: dict
    index: str
    phase_one: str | None


def choose_engine(stack: str, device, model, in_memory: bool) -> str:
    from . import stacked

    if stack == "never" or not in_memory or not stacked.supports(model):
        return "one_at_a_time"
    if stack == "always" or device.type == "cuda":
        return "stacked"
    return "one_at_a_time"


def run_bundle(config: dict, dataset_name: str, profile: str, members: list[dict], dataset_path: str,
               run_dir_template: str, index_template: str, scores_path: str, runs_path: str,
               device: str = "auto", stack: str = "auto", scoring_settings: dict | None = None,
               threads: int = 1) -> dict:
    """Train and score the bundle's runs; write ``scores_path`` (all their score rows) and
    ``runs_path`` (each run's directory, fingerprint and timings). Returns the timings.

    ``members`` describe the runs (``Member``); ``config`` gives their identity columns; the
    templates place run directories and index files; ``scoring_settings`` is the config's
    ``scoring`` section and ``stack`` the engine's choice (``choose_engine``).
    """
    from . import datasets, imbalance, models, scoring, stacked, study, training

    members = [Member(**member) for member in members]
    torch_device = training.resolve_device(device)
    dataset = datasets.load(dataset_path)
    pool_size = len(dataset.train_labels)

    def place(template: str, member: Member, **names) -> str:
        return template.format(dataset=dataset_name, profile=profile, seed=member.seed, **names)

    loaded: dict[str, np.ndarray] = {}  # the runs of one seed share the imbalanced set, often their index file too

    def indices_at(path: str) -> np.ndarray:
        if path not in loaded:
            loaded[path] = imbalance.load_indices(path, pool_size)
        return loaded[path]

    runs, imbalanced_sets = [], []
    for member in members:
        index_path = place(index_template, member, index=member.index)
        spec = training.RunSpec(dataset=dataset_name, profile=profile, seed=member.seed, method=member.method,
                                model=member.model, model_options=member.model_options,
                                protocol=training.Protocol.from_config(member.protocol))
        phase_one = None
        if member.phase_one:
            phase_one = json.loads((Path(place(run_dir_template, member, method=member.phase_one)) / "run.json").read_text())
        run_dir = Path(place(run_dir_template, member, method=member.method))
        runs.append(stacked.StackedRun(
            spec=spec, indices=indices_at(index_path), run_dir=run_dir,
            manifest_path=run_dir / "run.json", phase_one=phase_one,
            fingerprint_extra={"index_file": Path(index_path).name, "index_sha256": training.file_sha256(index_path),
                               "dataset_sha256": dataset.digest}))
        imbalanced_sets.append(indices_at(place(index_template, member, index="imbalanced")))

    in_memory = dataset.kind != "image_folder"
    probe_model = models.build(members[0].model, dataset.n_classes, dataset.image_shape, members[0].model_options)
    engine = choose_engine(stack, torch_device, probe_model, in_memory)
    log.info("%s/%s: %d runs, engine %s on %s", dataset_name, profile, len(runs), engine, torch_device)
    started = time.perf_counter()
    if engine == "stacked":
        manifests = stacked.train_stacked(runs, training.TensorBatches(dataset.train_images, dataset.train_labels,
                                                                       torch_device), dataset.n_classes, device)
    else:
        manifests = []
        # The pool goes to the device once for all the job's runs; image folders are decoded per batch.
        pool = training.TensorBatches(dataset.train_images, dataset.train_labels, torch_device) if in_memory else None
        for run in runs:
            batches = pool or training.ImageFolderBatches(dataset, run.spec.init_seed(), torch_device,
                                                          threads=max(1, threads))
            manifests.append(training.train(run.spec, dataset.train_images, dataset.train_labels, run.indices,
                                            batches=batches, run_dir=run.run_dir, manifest_path=run.manifest_path,
                                            fingerprint_extra=run.fingerprint_extra, device=device,
                                            phase_one=run.phase_one))
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    scoring_settings = scoring_settings or {}
    splits = scoring_settings.get("splits", list(scoring.SPLITS))
    store = [split for split in scoring_settings.get("store_predictions", splits) if split in splits]
    cache: dict = {}
    rows = []
    for member, run, manifest, imbalanced_set in zip(members, runs, manifests, imbalanced_sets):
        identity = study.run_identity(config, dataset_name, profile, member.seed, member.method, dataset.n_classes)
        rows.extend(scoring.score_run(manifest, dataset, imbalanced_set, identity, training=run.indices,
                                      splits=splits, device=device,
                                      silhouette_per_class=scoring_settings.get("silhouette_per_class", 0),
                                      cache=cache, store_splits=store,
                                      train_sample_per_class=scoring_settings.get("train_sample_per_class", 0),
                                      predictions_path=run.run_dir / "predictions.h5" if store else None))
        if not store:
            (run.run_dir / "predictions.h5").unlink(missing_ok=True)
    score_seconds = time.perf_counter() - started
    timings = {"engine": engine, "device": str(torch_device), "runs": len(runs),
               "train_seconds": round(train_seconds, 3), "score_seconds": round(score_seconds, 3)}
    scoring.write_rows(rows, scores_path)
    write_json(runs_path, {
        "dataset": dataset_name, "profile": profile, "timings": timings,
        "runs": [{"seed": member.seed, "method": member.method, "run_dir": str(run.run_dir),
                  "fingerprint": manifest["fingerprint"], "train_seconds": manifest["train_seconds"]}
                 for member, run, manifest in zip(members, runs, manifests)]})
    # Against the runs' own training time, which is also known for runs trained by an earlier job.
    trained_for = sum(manifest["train_seconds"] for manifest in manifests)
    log.info("trained in %.1f s, scored in %.1f s (%.0f%% of the %.1f s its runs' training took)", train_seconds,
             score_seconds, 100 * score_seconds / max(trained_for, 1e-9), trained_for)
    return timings
