"""The cluster profile (profiles/slurm): what it asks Slurm for, and a real single-node Slurm run.

The first tests only read the profile (dry runs, no Slurm needed). The others start a Slurm with
accounting on this machine (.ci/slurm/start.sh: munged, MariaDB, slurmdbd, slurmctld, slurmd, one
fake GPU, partitions cpu (the default) and gpu), run a small study through `snakemake --profile slurm`
after `make slurm-profile`, first with no IMBALANCE_STUDY_* variable (every job in the default
partition) up to its training, which they cancel with scancel mid-run, then the rest with the
variables; they check that a wrong partition is Slurm's own error, and stop exactly the daemons they
started (.ci/slurm/stop.sh, by recorded pid). They need root and the Debian packages of
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


def resources(output: str) -> dict[str, list[dict[str, str]]]:
    """The resources of each planned job in a dry run's output: {rule: [{name: value}, ...]}."""
    found: dict[str, list[dict[str, str]]] = {}
    for rule, line in re.findall(r"rule (\w+):\n(?:[ \t]+.*\n)*?[ \t]+resources: (.*)", output):
        found.setdefault(rule, []).append(dict(re.findall(r"(\w+)=([^,\s]+)", line)))
    return found


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

@pytest.fixture(scope="module")
def default_study_plan(tmp_path_factory) -> str:
    """A dry run of `snakemake --profile profiles/slurm` on config.yaml with no IMBALANCE_STUDY_*
    variable set: the command the README gives."""
    result = dry_run("--profile", "profiles/slurm", "--directory", str(tmp_path_factory.mktemp("plan")),
                     *DEFAULT_STUDY, env=cluster_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_variables_the_profile_loads_and_names_no_partition(default_study_plan):
    """Nothing set: no job carries slurm_partition (nor slurm_account), so the plugin submits to the
    cluster's default partition, as sbatch without -p would; training still asks for its GPU."""
    planned = resources(default_study_plan)
    assert set(planned) >= {"prepare_dataset", "indices", "train_bundle", "aggregate_scores", "figure"}
    for rule, jobs in planned.items():
        for job in jobs:
            assert "slurm_partition" not in job and "slurm_account" not in job, (rule, job)
    assert all(job["gpu"] == "1" for job in planned["train_bundle"])
    assert not any("gpu" in job for rule, jobs in planned.items() if rule != "train_bundle" for job in jobs)


@pytest.mark.parametrize("variables, cpu_partition, gpu_partition", [
    ({"IMBALANCE_STUDY_PARTITION": "short"}, "short", "short"),  # training follows the CPU partition
    ({"IMBALANCE_STUDY_GPU_PARTITION": "gpu"}, None, "gpu"),     # CPU jobs: the cluster's default
])
def test_each_partition_variable_alone(tmp_path, variables, cpu_partition, gpu_partition):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY))
    result = dry_run("--profile", "profiles/slurm", "--directory", str(tmp_path), "--configfile",
                     str(tmp_path / "study.yaml"), env=cluster_env(**variables))
    assert result.returncode == 0, result.stderr
    planned = resources(result.stdout)
    assert [job.get("slurm_partition") for job in planned["train_bundle"]] == [gpu_partition]
    for rule in ("prepare_dataset", "indices", "aggregate_scores"):
        assert [job.get("slurm_partition") for job in planned[rule]] == [cpu_partition], rule


def test_the_default_study_is_twenty_nine_submissions(default_study_plan):
    """config.yaml's 180 trainings (2 repeats of 10 methods on 9 profiles) in 27 jobs: per profile one
    job of its 16 one-phase runs (engine.runs_per_job 16), one of its 2 cRT second phases and one of
    its 2 tau-normalisations, each its own submission; one more for the dataset, all index files and the
    config's record, one for the table, the figures and the comparison: 45 jobs (46 in Snakemake's
    count, with `all`) in 29 submissions (the README and docs/cluster.md quote these figures)."""
    plan = default_study_plan
    bundles = re.findall(r"^rule train_bundle:\n(?:.*\n)*?\s+output: \S+-(\d+)runs/scores.csv", plan,
                         flags=re.MULTILINE)
    assert sum(map(int, bundles)) == 180, "the default study changed: update the figures in docs/cluster.md"
    assert int(re.search(r"^total\s+(\d+)$", plan, flags=re.MULTILINE).group(1)) == 46, "update the README"
    assert submissions(plan) == {"prep": 1, "train_bundle": 27, "summary": 1}
    assert sum(submissions(plan).values()) == 29


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
    planned = {rule: jobs[0] for rule, jobs in resources(result.stdout).items()}
    # digits (digits_cnn): 10 min plus 2 min a run, two runs in the job; 4 GB.
    expected = {"gpu": "1", "gpu_model": "a100", "slurm_partition": "gpu", "slurm_account": "lab",
                "runtime": "14", "mem_mb": "4000"}
    assert {key: planned["train_bundle"].get(key) for key in expected} == expected
    assert planned["indices"]["slurm_partition"] == "short"
    assert "gpu" not in planned["indices"]
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
    env = cluster_env(XDG_CONFIG_HOME=str(config_home))
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

    def default_partition(self) -> str:
        """The partition sbatch uses without -p: the one sinfo marks with `*`."""
        marked = [name for name in self.run("sinfo", "-h", "-o", "%P").split() if name.endswith("*")]
        assert len(marked) == 1, f"the test cluster must have one default partition, sinfo says {marked}"
        return marked[0].rstrip("*")


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
class Part:
    """One `snakemake --profile slurm` on the study."""
    output: str
    returncode: int
    run_id: str
    seconds: float


@dataclass
class SlurmStudy:
    workdir: Path
    plain_env: dict  # no IMBALANCE_STUDY_* variable at all
    env: dict  # the variables: CPU jobs to `cpu`, training to `gpu`, account `study`
    default_partition: str
    plain: Part  # without variables: dataset, index files, config's record; the training, cancelled, retried
    routed: Part  # with the variables: the rest (the score table)
    cancelled_job: str
    cancelled_at: int  # the iteration of the resume state when scancel was sent


def snakemake_slurm(workdir: Path, env: dict, fast: Path, *arguments: str) -> subprocess.Popen:
    """`snakemake --profile slurm` on STUDY in workdir, its output in workdir/<first free>.log."""
    log_path = next(workdir / f"snakemake{n}.log" for n in range(100) if not (workdir / f"snakemake{n}.log").exists())
    with open(log_path, "w") as log:
        process = subprocess.Popen([SNAKEMAKE, "--profile", "slurm", "--profile", str(fast), "--snakefile",
                                    str(REPO / "Snakefile"), "--configfile", "study.yaml", *arguments],
                                   cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    process.log_path = log_path
    process.started = time.monotonic()
    return process


def finish(process: subprocess.Popen, timeout: float) -> Part:
    """Waits for a snakemake_slurm; a hung one is stopped (Ctrl-C cancels its jobs) before teardown."""
    try:
        returncode = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    output = process.log_path.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    return Part(output, returncode, run_id.group(1) if run_id else "", time.monotonic() - process.started)


@pytest.fixture(scope="module")
def slurm_profile(tmp_path_factory) -> tuple[Path, Path]:
    """`make slurm-profile` into a temporary XDG_CONFIG_HOME, and a test profile that only checks job
    states every few seconds instead of the profile's 20: (config home, test profile)."""
    base = tmp_path_factory.mktemp("slurm_profile")
    config_home = base / "config"
    make = subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(config_home)})
    assert make.returncode == 0, make.stdout + make.stderr
    fast = base / "fast"
    fast.mkdir()
    (fast / "config.yaml").write_text("slurm-init-seconds-before-status-checks: 2\n")
    return config_home, fast


@pytest.fixture(scope="module")
def slurm_study(slurm, slurm_profile, tmp_path_factory):
    """`snakemake --profile slurm` on STUDY in two parts. First with no IMBALANCE_STUDY_* variable, as
    the README tells a user to type it, up to the training, which is cancelled with scancel mid-run and
    retried; then the rest (the score table) with the variables."""
    config_home, fast = slurm_profile
    workdir = tmp_path_factory.mktemp("slurm_study")
    (workdir / "study.yaml").write_text(yaml.safe_dump(STUDY))
    plain_env = {**slurm.env, "XDG_CONFIG_HOME": str(config_home)}
    assert not any(key.startswith("IMBALANCE_STUDY_") for key in plain_env)
    env = {**plain_env, "IMBALANCE_STUDY_PARTITION": "cpu", "IMBALANCE_STUDY_GPU_PARTITION": "gpu",
           "IMBALANCE_STUDY_ACCOUNT": "study"}
    default = slurm.default_partition()

    process = snakemake_slurm(workdir, plain_env, fast, "--until", "train_bundle", "provenance")
    try:
        resume = workdir / RUN / "resume.pt"
        deadline = time.monotonic() + 300
        while not resume.exists():
            assert process.poll() is None, "snakemake ended before the training started"
            assert time.monotonic() < deadline, "the training did not start within 300 s"
            time.sleep(0.1)
        # No partition given: the training (with its GPU) runs in the default partition.
        running = slurm.run("squeue", "-h", "-p", default, "-t", "RUNNING", "-o", "%i").split()
        assert len(running) == 1, f"expected one running job in partition {default}, found {running}"
        slurm.run("scancel", running[0])
        time.sleep(0.5)
        cancelled_at = torch.load(resume, weights_only=True)["iteration"]
        assert not (workdir / RUN / "run.json").exists(), "the training finished before it was cancelled"
    finally:
        plain = finish(process, timeout=420)
    routed = finish(snakemake_slurm(workdir, env, fast), timeout=300)
    return SlurmStudy(workdir, plain_env, env, default, plain, routed, running[0], cancelled_at)


def accounting(slurm, run_id: str) -> pd.DataFrame:
    """The jobs of one Snakemake run as slurmdbd recorded them (sacct), in submission order."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    text = slurm.run("sacct", "-X", "-P", "-n", "-S", since, "--name", run_id, "-o",
                     "JobID,Partition,Account,State,AllocTRES,Timelimit")
    rows = [line.split("|") for line in text.splitlines() if line]
    table = pd.DataFrame(rows, columns=["job", "partition", "account", "state", "tres", "timelimit"])
    return table.sort_values("job", key=lambda job: job.astype(int), ignore_index=True)


def test_the_study_completes_through_slurm(slurm_study):
    assert slurm_study.plain.returncode == 0, slurm_study.plain.output[-5000:]
    assert slurm_study.routed.returncode == 0, slurm_study.routed.output[-5000:]
    table = pd.read_csv(slurm_study.workdir / "results" / "scores.csv")
    assert set(table["iteration"]) == {ITERATIONS // 2, ITERATIONS}
    manifest = yaml.safe_load((slurm_study.workdir / RUN / "run.json").read_text())
    # Slurm gave the job a (fake) GPU; the code saw no CUDA and fell back to the CPU.
    assert manifest["device"] == "cpu"
    print(f"slurm study: {slurm_study.plain.seconds:.0f} s without variables (prep, training, retry), "
          f"{slurm_study.routed.seconds:.0f} s with them (table)")


def test_without_variables_every_job_runs_in_the_default_partition(slurm, slurm_study):
    """The README's command, nothing exported: the plugin found the cluster's default partition itself
    (it asks sinfo which one is marked `*`) and every job ran there, the training with its GPU; no
    account was given or guessed, so Slurm charged the user's default one (root's is `root`)."""
    assert slurm_study.default_partition == "cpu"
    jobs = accounting(slurm, slurm_study.plain.run_id)
    # prep (dataset + index + the config's record), the training and scoring job, its retry after scancel
    assert len(jobs) == 3, jobs
    assert (jobs["partition"] == slurm_study.default_partition).all(), jobs
    assert "study" not in set(jobs["account"]), jobs
    prep, runs, retry = (jobs.iloc[i] for i in range(3))
    assert prep["state"] == "COMPLETED" and "gres/gpu" not in prep["tres"], jobs
    for job in (runs, retry):
        assert "gres/gpu=1" in job["tres"], jobs
    assert "unable to find a default partition" not in slurm_study.plain.output


def test_jobs_are_grouped_and_training_gets_a_gpu(slurm, slurm_study):
    assert len(re.findall(r"has been submitted with SLURM jobid", slurm_study.plain.output)) == 3
    # With the variables: the summary (table) where IMBALANCE_STUDY_PARTITION says, under the account.
    routed = accounting(slurm, slurm_study.routed.run_id)
    assert len(routed) == 1, routed
    assert len(re.findall(r"has been submitted with SLURM jobid", slurm_study.routed.output)) == 1
    summary = routed.iloc[0]
    assert summary["partition"] == "cpu" and summary["account"] == "study", routed
    assert summary["state"] == "COMPLETED" and "gres/gpu" not in summary["tres"], routed


def test_a_cancelled_training_is_retried_and_resumes(slurm, slurm_study):
    jobs = accounting(slurm, slurm_study.plain.run_id)
    cancelled = jobs[jobs["job"] == slurm_study.cancelled_job].iloc[0]
    assert cancelled["state"].startswith("CANCELLED"), jobs
    retry = jobs.iloc[jobs.index[jobs["job"] == slurm_study.cancelled_job][0] + 1]
    assert retry["state"] == "COMPLETED" and retry["partition"] == slurm_study.default_partition, jobs
    assert "Trying to restart job" in slurm_study.plain.output
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
    for env in (slurm_study.plain_env, slurm_study.env):
        result = dry_run("--profile", "slurm", "--snakefile", str(REPO / "Snakefile"), "--configfile", "study.yaml",
                         env=env, cwd=slurm_study.workdir)
        assert result.returncode == 0, result.stderr
        assert "Nothing to be done" in result.stdout + result.stderr


def test_a_wrong_partition_is_slurms_own_error(slurm, slurm_profile, slurm_study, tmp_path):
    """A partition the cluster lacks reaches sbatch as given: the first submission to it fails at once
    and nothing is queued. A training job (its own submission; a wrong GPU partition, on a copy of the
    finished study with its training forced to run again) shows Slurm's message. For a group (a wrong
    CPU partition on a fresh study, whose first submission is the prep group) Snakemake 9.27.1 prints
    only `Error in group prep`: it drops the plugin's message for group jobs (docs/cluster.md)."""
    config_home, fast = slurm_profile
    again = tmp_path / "again"
    shutil.copytree(slurm_study.workdir, again, ignore=shutil.ignore_patterns("snakemake*.log"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "study.yaml").write_text(yaml.safe_dump(STUDY))
    cases = {"IMBALANCE_STUDY_GPU_PARTITION": (again, ("--forcerun", "train_bundle", "--until", "train_bundle")),
             "IMBALANCE_STUDY_PARTITION": (fresh, ())}
    for variable, (workdir, arguments) in cases.items():
        part = finish(snakemake_slurm(workdir, {**slurm_study.plain_env, variable: "nosuch"}, fast,
                                      "--retries", "0", *arguments), timeout=120)
        assert part.returncode != 0, part.output[-5000:]
        assert "has been submitted with SLURM jobid" not in part.output, part.output[-5000:]
        assert part.run_id and accounting(slurm, part.run_id).empty, "a job with a wrong partition was queued"
        if variable == "IMBALANCE_STUDY_GPU_PARTITION":
            assert "SLURM sbatch failed. The error message was 'sbatch: error: invalid partition specified: " \
                   "nosuch" in part.output, part.output[-5000:]
            assert re.search(r"sbatch call:\n\s+sbatch .* -p nosuch .*--gpus=1", part.output), part.output[-5000:]
        else:
            assert "Error in group prep" in part.output, part.output[-5000:]
        print(f"{variable}=nosuch: failed after {part.seconds:.1f} s")
