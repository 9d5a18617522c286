"""A training process killed with SIGKILL resumes and ends bit-identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time

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
        "resume_every": 25})
    method = plan.Method(name="over", variant="over", sampler="none", ratio=1.0, index=IMBALANCED,
                         protocol=protocol, base_lr=0.02)
    def run(seed):
        return plan.Run("toy", imbalance.step(0.5, 2), seed, method, "digits_cnn")
    batches = TensorBatches(images, labels, torch.device("cpu"))
    if sys.argv[2] == "one_at_a_time":
        training.train(Trainee(run(3), np.arange(90), sys.argv[1]), batches, 3)
    else:  # the stacked engine, with a second run beside it
        stacked.train_stacked([Trainee(run(3), np.arange(90), sys.argv[1]),
                               Trainee(run(4), np.arange(60), sys.argv[1] + "-other")], batches, 3)
""")


@pytest.fixture(params=["one_at_a_time", "stacked"])
def engine(request):
    return request.param


def start(run_dir, engine):
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(run_dir), engine])


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
