"""A run's directory, the contract both engines write::

    checkpoints/iter0001000.pt   model weights at each configured iteration
    resume.pt                    everything needed to continue after a kill (not a Snakemake output,
                                 so Snakemake never deletes it when a job fails); removed once the
                                 run is complete
    run.json                     the manifest, written last: its presence means the run is complete
    .lock                        held (an OS file lock) by the one process that trains or scores the
                                 run; it names that process

Every state file carries the run's fingerprint (its settings, the index file and the dataset), so a
rerun with other settings starts afresh instead of resuming from stale state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import socket
from pathlib import Path

import torch
from torch import nn

from .atomic import TEMPORARY_PREFIX, atomic_path, ensure_space, file_sha256, write_json
from .provenance import TRAINING, software_versions

log = logging.getLogger(__name__)


class RunLockedError(RuntimeError):
    """Another process is writing the run."""


@contextlib.contextmanager
def exclusive(run_dir: Path):
    """Hold the run directory for this process alone while the block runs: a second writer (a job
    started again while a killed workflow's job still runs) stops at once, naming the process that
    holds it. The lock is the operating system's (``flock``): it dies with its process."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(f"{run_dir} is being written by process {holder} (it holds {run_dir / '.lock'}); "
                             f"let it finish or stop it, then run again") from None
    except OSError as error:  # a file system without flock (some cluster mounts): no lock to take
        log.warning("cannot lock %s (%s): nothing stops a second job from writing the run at the same time",
                    run_dir, error)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()}:{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def fingerprint(settings: dict, inputs: dict) -> str:
    """A run's identity: its settings (``Run.fingerprint_settings``) and inputs (index file, dataset,
    first phase)."""
    return hashlib.sha256(json.dumps({"spec": settings, **inputs}, sort_keys=True).encode()).hexdigest()


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"iter{iteration:07d}.pt"


def save(payload: dict, path: Path) -> None:
    """``torch.save`` atomically, after checking that the tensors fit on the disk."""
    ensure_space(path, sum(tensor.nbytes for tensor in _tensors(payload)))
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def _load_resume_state(path: Path, fingerprint_: str) -> dict | None:
    """The resume state at ``path`` if it is this run's. It holds tensors, numbers and strings only, and
    is read with ``weights_only=True``: a file that would need anything else (code from a results
    folder someone else wrote, say) is refused unread, never executed."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a state file that cannot be read safely is discarded, never trusted
        log.warning("refused the resume state %s: it is not one this code writes (%s); the run starts afresh",
                    path, str(error).splitlines()[0])
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint_:
        log.info("resume state %s belongs to other settings; the run starts afresh", path)
        return None
    return state


def start_run(run_dir: Path, fingerprint_: str, engine: str) -> dict | None:
    """Clear what a killed job left half-written and return the run's resume state, when it exists,
    matches the fingerprint and was written by ``engine`` (the engines keep momentum and random
    state differently). Without one, checkpoints of earlier settings are removed: the run starts
    afresh."""
    for half_written in run_dir.rglob(f"{TEMPORARY_PREFIX}*"):
        half_written.unlink()
    state = _load_resume_state(run_dir / "resume.pt", fingerprint_)
    if state is not None and state["engine"] != engine:
        log.info("resume state of %s was written by the %s engine, not %s; starting afresh", run_dir,
                 state["engine"], engine)
        state = None
    if state is None:
        for stale in (run_dir / "checkpoints").glob("iter*.pt"):
            stale.unlink()
    return state


def write_manifest(run_dir: Path, manifest: dict, checkpoints) -> dict:
    """Write run.json, the sign that a run is complete (with each checkpoint's sha256), then drop its
    resume state (it would double the run's disk use)."""
    manifest = {**manifest, "software": {**software_versions(TRAINING), "platform": platform.platform()},
                "checkpoints": [{"iteration": c, "path": str(checkpoint_path(run_dir, c)),
                                 "sha256": file_sha256(checkpoint_path(run_dir, c))} for c in sorted(checkpoints)]}
    write_json(run_dir / "run.json", manifest)
    (run_dir / "resume.pt").unlink(missing_ok=True)
    return manifest


def finished_manifest(manifest_path: str | Path, fingerprint_: str) -> dict | None:
    """The manifest of a finished run with this fingerprint whose checkpoints are all there, unaltered
    (sha256), else None."""
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        return None
    if manifest.get("fingerprint") != fingerprint_:
        return None
    for entry in manifest.get("checkpoints", []):
        if not Path(entry["path"]).exists() or file_sha256(entry["path"]) != entry["sha256"]:
            log.warning("%s: checkpoint %s is %s; the run is trained again", manifest_path.parent, entry["path"],
                        "missing" if not Path(entry["path"]).exists() else "not the one its manifest lists (sha256)")
            return None
    return manifest


def load_checkpoint(entry: dict, model: nn.Module, fingerprint_: str) -> None:
    """Load a checkpoint listed in a manifest, refusing one that was altered or belongs to another run."""
    path = Path(entry["path"])
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint listed in the run manifest is missing")
    if file_sha256(path) != entry["sha256"]:
        raise ValueError(f"{path}: checkpoint does not match the checksum in its run manifest (truncated or replaced)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["fingerprint"] != fingerprint_:
        raise ValueError(f"{path}: checkpoint belongs to another run")
    model.load_state_dict(payload["model"])
