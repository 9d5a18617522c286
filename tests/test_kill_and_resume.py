"""A training process killed with SIGKILL resumes and ends bit-identical to an uninterrupted run."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from imbalance_study import rundir
from imbalance_study.atomic import TEMPORARY_PREFIX

TRAIN = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    import torch
    from imbalance_study import imbalance, plan, stacked, training
    from imbalance_study.batches import TensorBatches
    from imbalance_study.loop import Trainee
    from imbalance_study.protocol import Protocol
    from imbalance_study.sampling import IMBALANCED
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    images = rng.integers(0, 255, size=(90, 8, 8), dtype=np.uint8)
    protocol = Protocol.from_config({
        "iterations": 1500, "batch_size": 16, "lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4,
        "momentum_form": "caffe", "precision": "fp32",
        "lr_policy": {"name": "inv", "gamma": 1e-3, "power": 0.75}, "checkpoints": [750, 1500],
        "resume_every": 25,
        # Adam: its moments and shared step count are part of the resume state.
        **({"optimizer": "adam", "betas": [0.9, 0.999], "eps": 1e-8, "lr": 0.001} if sys.argv[3] == "adam" else {}),
        # Random crops and flips: drawn from the run's seed and the iteration, nothing saved.
        **({"augment": {"crop_padding": 2, "flip": True}} if sys.argv[3] == "augmented" else {})})
    plain = plan.Method(name="over", variant="over", sampler="none", ratio=1.0, index=IMBALANCED,
                        protocol=protocol, base_lr=0.02)
    method, indices = plain, np.arange(90)
    if sys.argv[3] == "long_tail":  # LDAM-DRW (its weights switched on at 750) on class-balanced batches
        loss = {"name": "ldam", "weights": "effective_number", "beta": 0.999, "weights_from": 0.5, "gamma": 2.0,
                "max_margin": 0.5, "scale": 1.0, "tau": 1.0}
        method = plan.Method(name="ldam_drw", variant="ldam_drw", sampler="none", ratio=1.0, index=IMBALANCED,
                             protocol=protocol, base_lr=0.02, loss=loss, batches="class_balanced")
        indices = np.concatenate([np.arange(30), np.arange(30, 42), np.arange(60, 64)])  # 30 / 12 / 4
    def trainee(seed, method, indices, run_dir):
        return Trainee(plan.Run("toy", imbalance.step(0.5, 2), seed, method, "digits_cnn"), indices, run_dir,
                       class_counts=np.bincount(labels[indices], minlength=3))
    batches = TensorBatches(images, labels, torch.device("cpu"))
    if sys.argv[2] == "one_at_a_time":
        training.train(trainee(3, method, indices, sys.argv[1]), batches, 3)
    else:  # the stacked engine, with a second (plain) run beside it
        stacked.train_stacked([trainee(3, method, indices, sys.argv[1]),
                               trainee(4, plain, np.arange(60), sys.argv[1] + "-other")], batches, 3)
""")


@pytest.fixture(params=[("one_at_a_time", "plain"), ("stacked", "plain"), ("one_at_a_time", "long_tail"),
                        ("stacked", "long_tail"), ("one_at_a_time", "adam"), ("stacked", "adam"),
                        ("one_at_a_time", "augmented"), ("stacked", "augmented")], ids="-".join)
def engine(request):
    """The engine, and the run: the paper's method, LDAM-DRW on class-balanced batches, the paper's
    method trained with Adam, or with random crops and flips."""
    return request.param


def start(run_dir, engine):
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(run_dir), *engine])


def test_sigkill_mid_run_then_rerun_is_bit_identical(tmp_path, engine):
    whole = start(tmp_path / "whole", engine)
    assert whole.wait(timeout=300) == 0

    victim = start(tmp_path / "killed", engine)
    resume = tmp_path / "killed" / "resume.pt"
    deadline = time.monotonic() + 120
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "run.json").exists(), "the run finished before it could be killed"
    killed_at = torch.load(resume, weights_only=True)["iteration"]
    assert 0 < killed_at < 1500

    rerun = start(tmp_path / "killed", engine)
    assert rerun.wait(timeout=300) == 0
    for iteration in (750, 1500):
        expected = torch.load(rundir.checkpoint_path(tmp_path / "whole", iteration), weights_only=True)["model"]
        resumed = torch.load(rundir.checkpoint_path(tmp_path / "killed", iteration), weights_only=True)["model"]
        assert all(torch.equal(expected[name], resumed[name]) for name in expected)
    assert not list((tmp_path / "killed").rglob(f"{TEMPORARY_PREFIX}*")), "a temporary file was left under the run"


def hold_run_dir(run_dir):
    """Another process that holds the run directory (as a job of an earlier workflow still running)."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from imbalance_study import rundir
        with rundir.exclusive({str(run_dir)!r}):
            print("held", flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_stops_naming_the_process_that_holds_the_run(tmp_path, monkeypatch):
    from imbalance_study import rundir

    from .test_stacked import bundle_job

    run_dir = tmp_path / "job" / "results/runs/digits/step-mu0.5-rho5/seed2/over"
    holder = hold_run_dir(run_dir)
    try:
        with pytest.raises(rundir.RunLockedError,
                           match=rf"seed2/over is being written by process {socket.gethostname()}:{holder.pid} "):
            bundle_job(tmp_path / "job", monkeypatch, "cpu", "never")
        assert not (run_dir / "run.json").exists() and not (run_dir / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    # The lock died with its process: the job runs now.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job").rename(tmp_path / "first")
    timings, scores = bundle_job(tmp_path / "job", monkeypatch, "cpu", "never")
    assert timings["runs"] == 4 and (run_dir / "run.json").exists()


@pytest.mark.workflow
def test_a_training_job_ends_when_snakemake_is_killed(tmp_path):
    """SIGKILL to Snakemake (a closed laptop lid, an OOM kill): its training job stops within seconds
    instead of training on re-parented to init beside the next run's job."""
    import yaml

    from .test_workflow import REPO

    config = {"datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "test_per_class": 20,
                                      "model": "digits_cnn", "protocol": "long"}},
              "protocols": {"long": {"iterations": 100_000, "batch_size": 16, "lr": 0.02, "resume_every": 200}},
              "methods": {"baseline": {"sampler": "none"}},
              "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline"],
                        "profiles": {"step": {"mu": [0.5], "rho": [10]}}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    workflow = subprocess.Popen([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                                 "--directory", str(tmp_path), "--configfile", str(tmp_path / "study.yaml"),
                                 "--cores", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = tmp_path / "results/runs/digits/step-mu0.5-rho10/seed1/baseline/resume.pt"
    deadline = time.monotonic() + 180
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert resume.exists(), "training never started"
    job = next(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()  # the Python process
               and _descends(int(entry.name), workflow.pid) and b"train_bundle.py" in _cmdline(entry)
               and Path(_cmdline(entry).split(b"\0")[0].decode()).name.startswith("python"))
    os.kill(workflow.pid, signal.SIGKILL)
    workflow.wait()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{job}").exists() and _state(job) != "Z" and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = Path(f"/proc/{job}").exists() and _state(job) != "Z"
    if alive:
        os.kill(job, signal.SIGKILL)
    assert not alive, "the training job kept running after Snakemake was killed"
    log = (tmp_path / "logs/train_bundle/digits/step-mu0.5-rho10/bundle00-1runs.log").read_text()
    assert "is gone; stopping" in log


def _descends(pid: int, ancestor: int) -> bool:
    from imbalance_study.bundles import parent_of

    while pid > 1:
        pid = parent_of(pid)
        if pid == ancestor:
            return True
    return False


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
