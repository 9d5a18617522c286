"""Resource `gpu`: a training job asks for one where it trains on CUDA, none on the CPU, and the local
profile (profiles/default) offers one, so that jobs on a workstation's GPU queue for it.

No CUDA is needed. The requests come from dry runs (`snakemake -n`), which print every job's
resources. A dry run schedules nothing, though (it lists every ready job at once), so what runs
together comes from `snakemake --touch --verbose`: Snakemake's own scheduler, with the global
resources, picks each round of jobs ("Execute N jobs...") and the touch executor "runs" them by
touching outputs, without training anything. CUDA_VISIBLE_DEVICES="" hides any GPU of the machine
running the tests, so that `device: auto` means the CPU here.
"""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.workflow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

# Two training jobs (two profiles, one bundle each), nothing else to draw.
STUDY = {
    "datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "test_per_class": 20,
                            "model": "digits_cnn", "protocol": "digits"}},
    "protocols": {"digits": {"iterations": 80, "batch_size": 16, "lr": 0.02, "checkpoints": [20, 80],
                             "lr_policy": {"name": "inv", "gamma": 1e-4, "power": 0.75}}},
    "methods": {"baseline": {"sampler": "none"}, "over": {"sampler": "over"}},
    "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline", "over"],
              "profiles": {"step": {"mu": [0.5], "rho": [2, 10]}}},
    "figures": {},
}


def snakemake(workdir: Path, device: str, *arguments: str, env: dict | None = None) -> str:
    """Snakemake on STUDY with ``device``, in ``workdir``, on 2 cores, with the workflow's own
    profiles/default (found beside the Snakefile) as a plain `snakemake` would read it; ``env``
    replaces the environment (default: this one, with no GPU visible)."""
    (workdir / "study.yaml").write_text(yaml.safe_dump({**STUDY, "device": device}))
    if env is None:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env = {key: value for key, value in env.items() if key != "SNAKEMAKE_PROFILE"}
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "study.yaml"), "--cores", "2", *arguments]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def training_gpus(output: str) -> list[str]:
    """The gpu resource of each train_bundle job that the output lists ("" where it has none)."""
    blocks = re.findall(r"rule train_bundle:\n(?:.*\n)*?\s+resources: (.*)", output)
    return [dict(re.findall(r"(\w+)=([^,\s]+)", line)).get("gpu", "") for line in blocks]


def training_rounds(output: str) -> list[int]:
    """How many training jobs each scheduling round of a --verbose run started, rounds without one
    left out."""
    rounds = re.split(r"^Execute \d+ jobs\.\.\.$", output, flags=re.MULTILINE)[1:]
    counts = [len(re.findall(r"^(?:local)?rule train_bundle:$", part.split("Resources before job selection")[0],
                             flags=re.MULTILINE)) for part in rounds]
    return [count for count in counts if count]


@pytest.mark.parametrize("device, gpu", [("auto", "0"), ("cpu", "0"), ("cuda:1", "1")])
def test_training_asks_for_a_gpu_only_where_it_trains_on_cuda(tmp_path, device, gpu):
    """auto on this machine (no GPU visible) and cpu: gpu=0, so CPU-only training is not limited;
    cuda and cuda:N: gpu=1 (the profile offers 1, so Snakemake does not scale it down; device cuda
    is in the tests below)."""
    assert training_gpus(snakemake(tmp_path, device, "-n")) == [gpu, gpu]


@pytest.mark.parametrize("cuda_visible_devices, gpu", [(None, "1"), ("", "0")])
def test_auto_asks_for_a_gpu_where_nvidia_smi_lists_one(tmp_path, cuda_visible_devices, gpu):
    """device auto where Snakemake plans on a machine with a GPU (an nvidia-smi that lists one, first
    on PATH): gpu=1, unless CUDA_VISIBLE_DEVICES hides it."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: NVIDIA H200 (UUID: GPU-0000)"\n')
    (stubs / "nvidia-smi").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{stubs}{os.pathsep}{env.get('PATH', '')}"
    if cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    workdir = tmp_path / "study"
    workdir.mkdir()
    assert training_gpus(snakemake(workdir, "auto", "-n", env=env)) == [gpu, gpu]


@pytest.mark.parametrize("arguments", [(), ("--resources", "gpu=1")],
                         ids=["profile-default", "resources-gpu=1"])
def test_training_jobs_on_the_gpu_run_one_at_a_time(tmp_path, arguments):
    """With device cuda, two ready training jobs and 2 cores, the scheduler starts them one after the
    other: the default profile offers gpu=1, and so does --resources gpu=1."""
    output = snakemake(tmp_path, "cuda", "--touch", "--verbose", *arguments)
    assert re.search(r"^Provided resources:.*\bgpu=\D*1\b", output, flags=re.MULTILINE), output
    assert training_gpus(output) == ["1", "1"]
    assert training_rounds(output) == [1, 1], output


def test_training_on_the_cpu_is_not_limited(tmp_path):
    """device auto without a GPU: both training jobs start in the same round (what the test above
    would see, were the gpu resource not limiting them)."""
    output = snakemake(tmp_path, "auto", "--touch", "--verbose")
    assert training_gpus(output) == ["0", "0"]
    assert training_rounds(output) == [2], output


# --- the profile's guard: which calls get its `resources` ----------------------------------------

def profile_settings(monkeypatch, argv: list[str], snakemake_profile: str | None = None) -> dict:
    """profiles/default/config.yaml as Snakemake reads it for the command line ``argv``."""
    from snakemake.profiles import ProfileConfigFileParser

    monkeypatch.setattr(sys, "argv", ["snakemake", *argv])
    if snakemake_profile is None:
        monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    else:
        monkeypatch.setenv("SNAKEMAKE_PROFILE", snakemake_profile)
    path = REPO / "profiles" / "default" / "config.yaml"
    stream = io.StringIO(path.read_text())
    stream.name = str(path)
    return dict(ProfileConfigFileParser().parse(stream))


@pytest.mark.parametrize("argv, snakemake_profile, offers_a_gpu", [
    ([], None, True),                                       # plain `snakemake`: the local run
    (["-n", "--cores", "2"], None, True),
    (["--profile", "none"], "slurm", True),                 # `--profile none` ignores $SNAKEMAKE_PROFILE
    (["--executor", "local"], None, True),
    (["--profile", "slurm"], None, False),                  # the cluster: profiles/slurm's resources stay
    (["--profile=profiles/slurm", "-n"], None, False),
    ([], "slurm", False),
    (["--executor", "slurm"], None, False),
    (["-eslurm"], None, False),
])
def test_the_profile_offers_a_gpu_only_to_local_runs(monkeypatch, argv, snakemake_profile, offers_a_gpu):
    """Snakemake lets the workflow's profile replace a general profile's top-level keys: a
    `resources` here would drop profiles/slurm's (jobslot) and cap its training jobs' GPU request
    at this machine's count. So it is there only for a local run without another profile."""
    settings = profile_settings(monkeypatch, argv, snakemake_profile)
    assert settings["cores"] == "all" and settings["set-threads"] == ["train_bundle=1"]
    assert settings.get("resources") == (["gpu=1"] if offers_a_gpu else None)
