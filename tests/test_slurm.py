"""The cluster profile (profiles/slurm): what it asks Slurm for, and a real single-node Slurm run.

The first tests only read the profile (dry runs, no Slurm needed). The others start a Slurm with
accounting on this machine (.ci/slurm/start.sh: munged, MariaDB, slurmdbd, slurmctld, slurmd, one
fake GPU), run a small study through `snakemake --profile slurm` after `make slurm-profile`,
cancel its training with scancel mid-run, and stop exactly the daemons they started
(.ci/slurm/stop.sh, by recorded pid). They need root and the Debian packages of
.ci/slurm/install.sh: skipped without them, failed in CI (`CI` set), where .ci/run installs them.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from .conftest import REPO

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SCRIPTS = REPO / ".ci" / "slurm"
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
RUN = "results/runs/digits/step-mu0.5-rho10/seed1/baseline"
ITERATIONS = 4000

# One training, long enough (about 10 s here) to be cancelled mid-run, with its resume state saved
# every 100 iterations; no figures, so that the study is six jobs (the config's record in prep) in three
# submissions.
STUDY = {
    "datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "test_per_class": 20,
                            "model": "digits_cnn", "protocol": "digits"}},
    "protocols": {"digits": {"iterations": ITERATIONS, "batch_size": 16, "lr": 0.02,
                             "checkpoints": [ITERATIONS // 2, ITERATIONS], "resume_every": 100,
                             "lr_policy": {"name": "inv", "gamma": 1e-4, "power": 0.75}}},
    "methods": {"baseline": {"sampler": "none"}},
    "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline"],
              "profiles": {"step": {"mu": [0.5], "rho": [10]}}},
    "figures": {},
}


def cluster_env(**extra: str) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("IMBALANCE_STUDY_", "SLURM_", "SBATCH_"))}
    return {**env, **extra}


DEFAULT_STUDY = ("--configfile", str(REPO / "config.yaml"))


def dry_run(*arguments: str, env: dict, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "-n", *arguments], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def submissions(output: str) -> dict[str, int]:
    """What a run of the dry-run's plan submits: {group: count}, jobs outside groups by rule name."""
    groups = re.findall(r"Group job (\w+) \(jobs", output)
    counts: dict[str, int] = {}
    for group in groups:
        counts[group] = counts.get(group, 0) + 1
    # Jobs outside a group are printed as top-level "rule x:" blocks (group members are indented).
    for rule in re.findall(r"^rule (\w+):", output, flags=re.MULTILINE):
        if rule != "all":  # no output, no command: Snakemake runs it locally
            counts[rule] = counts.get(rule, 0) + 1
    return counts


# --- the profile itself (no Slurm needed) ---------------------------------------------------------

def test_a_missing_partition_is_a_clear_error(tmp_path):
    result = dry_run("--profile", "profiles/slurm", "--directory", str(tmp_path), env=cluster_env())
    assert result.returncode != 0
    assert "IMBALANCE_STUDY_PARTITION is not set" in result.stderr


def test_the_default_study_is_eleven_submissions(tmp_path):
    """config.yaml's 54 trainings in 9 jobs (one per profile, engine.runs_per_job 16), each its own
    submission; one more for the dataset and all index files, one for the table and figures (the
    docs quote this figure)."""
    result = dry_run("--profile", "profiles/slurm", "--directory", str(tmp_path), *DEFAULT_STUDY,
                     env=cluster_env(IMBALANCE_STUDY_PARTITION="cpu"))
    assert result.returncode == 0, result.stderr
    bundles = re.findall(r"^rule train_bundle:\n(?:.*\n)*?\s+output: \S+-(\d+)runs/scores.csv", result.stdout,
                         flags=re.MULTILINE)
    assert sum(map(int, bundles)) == 54, "the default study changed: update the figures in docs/cluster.md"
    assert submissions(result.stdout) == {"prep": 1, "train_bundle": 9, "summary": 1}
    assert sum(submissions(result.stdout).values()) == 11


def test_training_asks_for_a_gpu_with_runtime_and_memory_per_model(tmp_path):
    study = yaml.safe_load(yaml.safe_dump(STUDY))
    study["study"]["methods"] = ["baseline", "under"]
    study["methods"] = {"baseline": {"sampler": "none"}, "under": {"sampler": "under"}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    env = cluster_env(IMBALANCE_STUDY_PARTITION="short", IMBALANCE_STUDY_GPU_PARTITION="gpu",
                      IMBALANCE_STUDY_ACCOUNT="lab", IMBALANCE_STUDY_GPU_MODEL="a100")
    arguments = ("--profile", "profiles/slurm", "--directory", str(tmp_path), "--configfile",
                 str(tmp_path / "study.yaml"))
    result = dry_run(*arguments, env=env)
    assert result.returncode == 0, result.stderr
    resources = {rule: dict(re.findall(r"(\w+)=([^,\s]+)", line)) for rule, line in
                 re.findall(r"rule (\w+):\n(?:.*\n)*?\s+resources: (.*)", result.stdout)}
    # digits (digits_cnn): 10 min plus 2 min a run, two runs in the job; 4 GB.
    expected = {"gpu": "1", "gpu_model": "a100", "slurm_partition": "gpu", "slurm_account": "lab",
                "runtime": "14", "mem_mb": "4000"}
    assert {key: resources["train_bundle"].get(key) for key in expected} == expected
    assert resources["indices"]["slurm_partition"] == "short"
    assert "gpu" not in resources["indices"]
    assert submissions(result.stdout) == {"prep": 1, "train_bundle": 1, "summary": 1}
    # One run per job: every training runs in parallel, on its own GPU.
    (tmp_path / "one_each.yaml").write_text(yaml.safe_dump({**study, "engine": {"runs_per_job": 1}}))
    one_each = dry_run(*arguments[:-1], str(tmp_path / "one_each.yaml"), env=env)
    assert submissions(one_each.stdout) == {"prep": 1, "train_bundle": 2, "summary": 1}


def test_make_slurm_profile_makes_the_name_slurm_work(tmp_path):
    config_home = tmp_path / "config"
    make = subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(config_home)})
    assert make.returncode == 0, make.stdout + make.stderr
    installed = config_home / "snakemake" / "slurm"
    assert installed.is_symlink() and installed.resolve() == (REPO / "profiles" / "slurm").resolve()
    env = cluster_env(IMBALANCE_STUDY_PARTITION="cpu", XDG_CONFIG_HOME=str(config_home))
    workdir = tmp_path / "study"
    workdir.mkdir()
    (workdir / "study.yaml").write_text(yaml.safe_dump(STUDY))
    by_name = dry_run("--profile", "slurm", "--snakefile", str(REPO / "Snakefile"), "--configfile", "study.yaml",
                      env=env, cwd=workdir)
    assert by_name.returncode == 0, by_name.stderr
    assert "Using profiles slurm and workflow specific profile" in by_name.stderr
    assert "Group job prep" in by_name.stdout


# --- a real Slurm -------------------------------------------------------------------------------

def slurm_missing() -> str | None:
    if os.geteuid() != 0:
        return "the single-node Slurm needs root"
    missing = [binary for binary in ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch")
               if shutil.which(binary) is None]
    if missing:
        return f"Slurm packages missing ({', '.join(missing)}): run .ci/slurm/install.sh as root"
    return None


@dataclass
class Cluster:
    state: Path
    env: dict

    def pids(self) -> dict[str, int]:
        return {name: int((self.state / "run" / f"{name}.pid").read_text()) for name in DAEMONS
                if (self.state / "run" / f"{name}.pid").exists()}

    def run(self, *command: str) -> str:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=True,
                              timeout=60).stdout


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm tests: {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_CI_DIR": str(state)}
    cluster = Cluster(state, cluster_env(SLURM_CONF=str(state / "etc" / "slurm.conf")))
    try:
        started = subprocess.run(["bash", str(SCRIPTS / "start.sh")], env=env, capture_output=True, text=True,
                                 timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        yield cluster
    finally:
        pids = cluster.pids()
        stopped = subprocess.run(["bash", str(SCRIPTS / "stop.sh")], env=env, capture_output=True, text=True,
                                 timeout=300)
        print(stopped.stdout, stopped.stderr)
        for name, pid in pids.items():
            assert not Path(f"/proc/{pid}/cmdline").exists() or name not in Path(
                f"/proc/{pid}/cmdline").read_text(errors="replace"), f"{name} (pid {pid}) still runs"


@dataclass
class SlurmStudy:
    workdir: Path
    env: dict
    output: str
    returncode: int
    run_id: str
    cancelled_job: str
    cancelled_at: int  # the iteration of the resume state when scancel was sent
    seconds: float


@pytest.fixture(scope="module")
def slurm_study(slurm, tmp_path_factory):
    """`snakemake --profile slurm` on STUDY; its training job is cancelled with scancel mid-run."""
    base = tmp_path_factory.mktemp("slurm_study")
    config_home = base / "config"
    make = subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(config_home)})
    assert make.returncode == 0, make.stdout + make.stderr
    # Only for the test: check job states every few seconds instead of the profile's 20.
    fast = base / "fast"
    fast.mkdir()
    (fast / "config.yaml").write_text("slurm-init-seconds-before-status-checks: 2\n")
    workdir = base / "study"
    workdir.mkdir()
    (workdir / "study.yaml").write_text(yaml.safe_dump(STUDY))
    env = {**slurm.env, "XDG_CONFIG_HOME": str(config_home), "IMBALANCE_STUDY_PARTITION": "cpu",
           "IMBALANCE_STUDY_GPU_PARTITION": "gpu", "IMBALANCE_STUDY_ACCOUNT": "study"}

    started = time.monotonic()
    log = open(workdir / "snakemake.log", "w")
    process = subprocess.Popen([SNAKEMAKE, "--profile", "slurm", "--profile", str(fast), "--snakefile",
                                str(REPO / "Snakefile"), "--configfile", "study.yaml"],
                               cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        resume = workdir / RUN / "resume.pt"
        deadline = time.monotonic() + 300
        while not resume.exists():
            assert process.poll() is None, "snakemake ended before the training started"
            assert time.monotonic() < deadline, "the training did not start within 300 s"
            time.sleep(0.1)
        running = slurm.run("squeue", "-h", "-p", "gpu", "-t", "RUNNING", "-o", "%i").split()
        assert len(running) == 1, f"expected one running GPU job, found {running}"
        slurm.run("scancel", running[0])
        time.sleep(0.5)
        cancelled_at = torch.load(resume, weights_only=True)["iteration"]
        assert not (workdir / RUN / "run.json").exists(), "the training finished before it was cancelled"
        returncode = process.wait(timeout=420)
    finally:
        if process.poll() is None:  # a hung run: stop it (Ctrl-C cancels its jobs) before teardown
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
    output = (workdir / "snakemake.log").read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    return SlurmStudy(workdir, env, output, returncode, run_id, running[0], cancelled_at,
                      time.monotonic() - started)


def accounting(slurm, run_id: str) -> pd.DataFrame:
    """The study's Slurm jobs as slurmdbd recorded them (sacct), in submission order."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    text = slurm.run("sacct", "-X", "-P", "-n", "-S", since, "--name", run_id, "-o",
                     "JobID,Partition,Account,State,AllocTRES,Timelimit")
    rows = [line.split("|") for line in text.splitlines() if line]
    table = pd.DataFrame(rows, columns=["job", "partition", "account", "state", "tres", "timelimit"])
    return table.sort_values("job", key=lambda job: job.astype(int), ignore_index=True)


def test_the_study_completes_through_slurm(slurm_study):
    assert slurm_study.returncode == 0, slurm_study.output[-5000:]
    table = pd.read_csv(slurm_study.workdir / "results" / "scores.csv")
    assert set(table["iteration"]) == {ITERATIONS // 2, ITERATIONS}
    manifest = yaml.safe_load((slurm_study.workdir / RUN / "run.json").read_text())
    # Slurm gave the job a (fake) GPU; the code saw no CUDA and fell back to the CPU.
    assert manifest["device"] == "cpu"
    print(f"slurm study: {slurm_study.seconds:.0f} s")


def test_jobs_are_grouped_and_training_gets_a_gpu(slurm, slurm_study):
    jobs = accounting(slurm, slurm_study.run_id)
    # prep (dataset + index), the training and scoring job, its retry after scancel, summary (table)
    assert len(jobs) == 4, jobs
    assert len(re.findall(r"has been submitted with SLURM jobid", slurm_study.output)) == 4
    assert (jobs["account"] == "study").all(), jobs
    prep, runs, retry, summary = (jobs.iloc[i] for i in range(4))
    assert prep["partition"] == "cpu" and "gres/gpu" not in prep["tres"]
    for job in (runs, retry):
        assert job["partition"] == "gpu" and "gres/gpu=1" in job["tres"], jobs
    assert summary["partition"] == "cpu" and summary["state"] == "COMPLETED"


def test_a_cancelled_training_is_retried_and_resumes(slurm, slurm_study):
    jobs = accounting(slurm, slurm_study.run_id)
    cancelled = jobs[jobs["job"] == slurm_study.cancelled_job].iloc[0]
    assert cancelled["state"].startswith("CANCELLED"), jobs
    retry = jobs.iloc[jobs.index[jobs["job"] == slurm_study.cancelled_job][0] + 1]
    assert retry["state"] == "COMPLETED" and retry["partition"] == "gpu", jobs
    assert "Trying to restart job" in slurm_study.output
    # The retry continued from the saved state instead of starting over.
    train_log = slurm_study.workdir / "logs" / "train_bundle" / "digits" / "step-mu0.5-rho10" / "bundle00-1runs.log"
    resumed = re.search(r"resuming \S+ at iteration (\d+) of (\d+)", train_log.read_text())
    assert resumed, train_log.read_text()
    assert int(resumed.group(1)) >= slurm_study.cancelled_at > 0
    assert int(resumed.group(2)) == ITERATIONS
    # Nothing lost: every checkpoint is there and scored, and the resume state is gone.
    run_dir = slurm_study.workdir / RUN
    assert not (run_dir / "resume.pt").exists()
    manifest = yaml.safe_load((run_dir / "run.json").read_text())
    assert [entry["iteration"] for entry in manifest["checkpoints"]] == [ITERATIONS // 2, ITERATIONS]
    scores = pd.read_csv(slurm_study.workdir / "results/bundles/digits/step-mu0.5-rho10/bundle00-1runs/scores.csv")
    assert set(scores["iteration"]) == {ITERATIONS // 2, ITERATIONS}


def test_a_finished_study_has_nothing_to_do(slurm_study):
    result = dry_run("--profile", "slurm", "--snakefile", str(REPO / "Snakefile"), "--configfile", "study.yaml",
                     env=slurm_study.env, cwd=slurm_study.workdir)
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr
