"""One job of the workflow: train a bundle of runs, then score every checkpoint of each.

A bundle (``plan.Bundle``) is up to ``engine.runs_per_job`` runs of one (dataset, profile) that
share a model and a protocol. One process loads the dataset and the test set once for all of them,
trains them, stacked (``stacked``, K networks per step) or one after another (``training``), and
scores them (``scoring.score_run``); a tau-normalisation run trains nothing and only rescales its
first phase's checkpoints (``posthoc``). Every run keeps its own directory (checkpoints, run.json,
predictions.h5); the job's declared outputs are the bundle's score table and its list of runs.

Engine ``stack: auto`` stacks on CUDA, where small networks should be bound by kernel launches, so
that K networks cost little more than one (not yet measured on a GPU); on a CPU, one network at a
time in channels-last layout is faster (scripts/benchmark.py measures both). ``always`` and ``never``
force the choice; models with batch normalisation always train one at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from .atomic import file_sha256, write_json

log = logging.getLogger(__name__)

SCORING_SHARE_NOTED = 0.10  # the share of training time above which a job's log says scoring is the cost


def _inherit_divergence(trainee, device) -> dict:
    """A second phase whose first phase diverged has nothing to start from: it is not trained, and is
    marked as diverged with it."""
    first = trainee.phase_one["diverged"]
    log.warning("%s: its first phase diverged at iteration %d; not trained", trainee.run_dir, first["iteration"])
    return trainee.finished() or trainee.write_manifest(
        trained_layers=[], epochs_started=0, train_seconds=0.0, engine={"name": "none", "networks_at_once": 0},
        device=device, diverged={"iteration": 0, "loss": None,
                                 "reason": f"its first phase diverged at iteration {first['iteration']} "
                                           f"({first['reason']})"})


def set_identity(run, counts: np.ndarray, dataset, trained_examples: int) -> dict:
    """The identity columns that only the drawn set tells: its realised imbalance ratio (largest over
    smallest class), its size, and how the test set was drawn; the size of an epoch (the set as
    sampled, ``trained_examples``, in batches of the protocol's size), for early stopping's epoch. A
    natural profile's rho and number of minority classes are the data's own."""
    from .imbalance import NATURAL, minority_mask

    realised = float(counts.max() / max(counts.min(), 1))
    columns = {"realised_rho": realised, "training_examples": int(counts.sum()), "test_set": dataset.test_set,
               "epoch_examples": int(run.protocol.examples or trained_examples),
               "batch_size": int(run.protocol.batch_size)}
    if run.profile.kind == NATURAL:
        columns.update(rho=realised, n_minority=int(minority_mask(counts).sum()))
    return columns


def choose_engine(stack: str, device, model, in_memory: bool) -> str:
    from . import stacked, training

    if stack == "never" or not in_memory or not stacked.supports(model):
        return training.ENGINE
    if stack == "always" or device.type == "cuda":
        return stacked.ENGINE
    return training.ENGINE


def parent_of(pid: int) -> int:
    """A process's parent, read from /proc (0 where it cannot be read)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def snakemake_ancestor() -> int | None:
    """The nearest process above this one that runs Snakemake (on a cluster node, the one there),
    whatever shell stands between; None where /proc cannot tell."""
    pid = os.getppid()
    while pid > 1:
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
        except OSError:
            return None
        if any(Path(word.decode(errors="replace")).name == "snakemake" for word in words):
            return pid
        pid = parent_of(pid)
    return None


def exit_with_snakemake(every: float = 2.0) -> None:
    """End this process when the Snakemake that started it dies, instead of training on as an orphan
    beside the next run's job: a thread checks every ``every`` seconds that it, and this process's
    parent, live on."""
    snakemake, parent = snakemake_ancestor(), os.getppid()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch():
        while os.getppid() == parent and (snakemake is None or alive(snakemake)):
            time.sleep(every)
        log.error("the Snakemake process that started this job (%s) is gone; stopping (the run resumes from its "
                  "last saved state when the workflow runs again)", snakemake or parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-snakemake", daemon=True).start()


def run_bundle(members: list[dict], dataset_path: str, indices_path: str, scores_path: str, runs_path: str,
               device: str, stack: str, scoring_settings: dict, *, conv: str, graphs: str, threads: int = 1) -> dict:
    """Train and score the bundle's runs, each run directory held by this process alone (``rundir.exclusive``).

    ``device``, ``stack``, ``conv``, ``graphs`` and ``scoring_settings`` are the config's (no defaults
    here: they live in the schema); ``threads`` the job's."""
    from . import rundir

    with contextlib.ExitStack() as held:
        for member in members:
            held.enter_context(rundir.exclusive(member["run_dir"]))
        return _run_bundle(members, dataset_path, indices_path, scores_path, runs_path, device, stack, conv, graphs,
                           scoring_settings, threads)


class IndexFileChanged(ValueError):
    """An index file is not the one its indices job wrote."""


def _run_bundle(members: list[dict], dataset_path: str, indices_path: str, scores_path: str, runs_path: str,
                device: str, stack: str, conv: str, graphs: str, scoring_settings: dict, threads: int) -> dict:
    """Train and score the bundle's runs; write ``scores_path`` (all their score rows) and
    ``runs_path`` (each run's directory, fingerprint and timings). Returns the timings.

    ``members`` are ``plan.Bundle.members()``: each run and where its files lie. ``stack`` is the
    engine's choice (``choose_engine``); ``conv`` the stacked engine's convolutions (grouped or gemm);
    ``graphs`` whether the stacked engine's step is compiled into CUDA graphs (``stacked_step.compiles``);
    ``scoring_settings`` the config's ``scoring`` section.
    """
    from . import batches, datasets, imbalance, models, plan, posthoc, scoring, stacked, training
    from .devices import resolve_device
    from .loop import Trainee

    torch_device = resolve_device(device)
    dataset = datasets.load(dataset_path)
    pool_size = len(dataset.train_labels)
    loaded: dict[str, np.ndarray] = {}  # the runs of one seed share the imbalanced set, often their index file too
    hashes: dict[str, str] = {}
    written = {entry["path"]: entry["sha256"] for files in json.loads(Path(indices_path).read_text()).values()
               for entry in files.values()}

    def indices_at(path: str) -> np.ndarray:
        if path not in loaded:
            hashes[path] = file_sha256(path)
            if hashes[path] != written.get(path):
                raise IndexFileChanged(f"{path}: not the index file its indices job wrote (its sha256 differs from "
                                       f"the one in {indices_path}); it was changed since: run `snakemake "
                                       f"--forcerun indices` to draw the index files again")
            loaded[path] = imbalance.load_indices(path, pool_size)
        return loaded[path]

    trainees, imbalanced_sets = [], []
    for member in members:
        run = plan.Run.from_dict(member["run"])
        phase_one = None
        if member["phase_one_dir"]:
            phase_one = json.loads((Path(member["phase_one_dir"]) / "run.json").read_text())
        index_path = member["index_path"]
        imbalanced_sets.append(indices_at(member["imbalanced_path"]))
        # A loss sees the class counts of the imbalanced set, before any sampling.
        counts = imbalance.class_counts_of(imbalanced_sets[-1], dataset.train_labels, dataset.n_classes)
        trainees.append(Trainee(run, indices_at(index_path), member["run_dir"], phase_one=phase_one, inputs={
            "index_file": Path(index_path).name, "index_sha256": hashes[index_path],
            "dataset_sha256": dataset.digest}, class_counts=counts))
        for warning in trainees[-1].warnings:
            log.warning("%s: %s", member["run_dir"], warning)
    first = trainees[0].run
    in_memory = dataset.kind != "image_folder"
    probe_model = models.build(first.model, dataset.n_classes, dataset.image_shape, first.model_options)
    engine = choose_engine(stack, torch_device, probe_model, in_memory)
    log.info("%s/%s: %d runs, engine %s on %s", first.dataset, first.profile.name, len(trainees), engine, torch_device)
    started = time.perf_counter()
    manifests = {position: _inherit_divergence(trainee, torch_device) for position, trainee in enumerate(trainees)
                 if trainee.phase_one is not None and trainee.phase_one.get("diverged")}
    # Tau-normalisation trains nothing: it rescales its first phase's checkpoints (posthoc).
    manifests.update({position: posthoc.normalise_run(trainee, dataset.n_classes, dataset.image_shape)
                      for position, trainee in enumerate(trainees)
                      if position not in manifests and not trainee.run.method.trains})
    to_train = [position for position in range(len(trainees)) if position not in manifests]
    # The pool goes to the device once for all the job's runs; image folders are decoded per batch.
    pool = (batches.TensorBatches(dataset.train_images, dataset.train_labels, torch_device)
            if in_memory and to_train else None)
    if engine == stacked.ENGINE:
        trained = stacked.train_stacked([trainees[position] for position in to_train], pool, dataset.n_classes, device,
                                        conv=conv, graphs=graphs)
    else:
        trained = [training.train(trainees[position], pool or batches.ImageFolderBatches(
                       dataset, trainees[position].run.init_seed(), torch_device, threads=max(1, threads)),
                       dataset.n_classes, device) for position in to_train]
    manifests.update(zip(to_train, trained))
    manifests = [manifests[position] for position in range(len(trainees))]
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    splits = scoring_settings["splits"]
    store = [split for split in scoring_settings["store_predictions"] if split in splits]
    cache: dict = {}
    rows = []
    for trainee, manifest, imbalanced_set in zip(trainees, manifests, imbalanced_sets):
        diverged = manifest.get("diverged")  # (absent from the manifests of earlier versions)
        identity = {**trainee.run.identity(dataset.n_classes),
                    **set_identity(trainee.run, trainee.class_counts, dataset, len(trainee.indices)),
                    "diverged_at": diverged and diverged["iteration"]}
        if diverged:
            # Its scores before it diverged are kept, marked; this row says when, even with none before.
            log.warning("%s diverged at iteration %d (%s): its rows are marked diverged_at and left out of "
                        "figures and selection", trainee.run_dir, diverged["iteration"], diverged["reason"])
            rows.append({**identity, **scoring.diverged_row(diverged)})
        if manifest["checkpoints"]:
            rows.extend(scoring.score_run(manifest, dataset, imbalanced_set, identity, training=trainee.indices,
                                          splits=splits, device=device,
                                          silhouette_per_class=scoring_settings["silhouette_per_class"],
                                          cache=cache, store_splits=store,
                                          train_sample_per_class=scoring_settings["train_sample_per_class"],
                                          logit_adjustment_taus=scoring_settings["logit_adjustment_taus"],
                                          predictions_path=trainee.run_dir / "predictions.h5" if store else None))
        if not store or not manifest["checkpoints"]:
            (trainee.run_dir / "predictions.h5").unlink(missing_ok=True)
    score_seconds = time.perf_counter() - started
    timings = {"engine": engine, "device": str(torch_device), "runs": len(trainees),
               "train_seconds": round(train_seconds, 3), "score_seconds": round(score_seconds, 3)}
    scoring.write_rows(rows, scores_path)
    write_json(runs_path, {
        "dataset": first.dataset, "profile": first.profile.name, "timings": timings,
        "runs": [{"seed": trainee.run.seed, "method": trainee.run.method.variant, "run_dir": str(trainee.run_dir),
                  "fingerprint": manifest["fingerprint"], "train_seconds": manifest["train_seconds"]}
                 for trainee, manifest in zip(trainees, manifests)]})
    # Against the runs' own training time, which is also known for runs trained by an earlier job (a
    # stacked run's is its share of its group's time, so the sum is what the device spent on them).
    trained_for = sum(manifest["train_seconds"] for manifest in manifests)
    share = score_seconds / max(trained_for, 1e-9)
    log.info("trained in %.1f s, scored in %.1f s (%.0f%% of the %.1f s its runs' training took)", train_seconds,
             score_seconds, 100 * share, trained_for)
    if share > SCORING_SHARE_NOTED:
        log.info("scoring took more than %.0f%% of training: scoring does not get faster when training is stacked; "
                 "scoring.train_sample_per_class, fewer checkpoints or fewer scored splits make it cheaper",
                 100 * SCORING_SHARE_NOTED)
    return timings
