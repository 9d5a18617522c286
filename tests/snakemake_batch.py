"""Many `snakemake` command lines in one Python start-up.

``python -m tests.snakemake_batch JOBS.json PARALLEL`` (or :func:`run_all`): Snakemake, the
workflow's package (src/imbalance_study, with PyTorch) and their libraries are imported once; each
command line then runs in a forked copy of that process, exactly as the ``snakemake`` executable
runs it (``snakemake.cli.main`` on its arguments), with its stdout and stderr in files of its own
and its exit status recorded. A fork shares nothing back with the process it came from, so each
command line sees the state of a fresh interpreter that has only imported these modules: what is
saved is the seconds of imports per command line, nothing of what Snakemake does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(arguments: list[str], stdout: str, stderr: str) -> None:
    for fd, path in ((1, stdout), (2, stderr)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    code = 1
    try:
        from snakemake.cli import main

        sys.argv = [str(Path(sys.executable).parent / "snakemake"), *arguments]
        main(arguments)
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported in the job's stderr, as the executable would
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _batch(jobs: list[dict], parallel: int) -> None:
    # What the Snakefile imports (workflow/rules/common.smk), and Snakemake itself: once, here.
    sys.path.insert(0, str(REPO / "src"))
    import snakemake.api  # noqa: F401
    import snakemake.cli  # noqa: F401
    import snakemake.dag  # noqa: F401
    import snakemake.parser  # noqa: F401
    import snakemake.workflow  # noqa: F401
    from imbalance_study import config, plan, source_facts, your_data  # noqa: F401
    from imbalance_study.figures import catalog  # noqa: F401
    # Snakemake's plugin registries are singletons that import every installed plugin when first
    # made; made here, each command line finds the same plugins already collected.
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
    from snakemake_interface_report_plugins.registry import ReportPluginRegistry
    from snakemake_interface_scheduler_plugins.registry import SchedulerPluginRegistry
    from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

    for registry in (ExecutorPluginRegistry, StoragePluginRegistry, ReportPluginRegistry, LoggerPluginRegistry,
                     SchedulerPluginRegistry):
        registry()

    sys.stdout.flush()
    sys.stderr.flush()
    running: dict[int, dict] = {}

    def reap() -> None:
        pid, status = os.wait()
        job = running.pop(pid)
        Path(job["returncode"]).write_text(str(os.waitstatus_to_exitcode(status)))

    for job in jobs:
        while len(running) >= parallel:
            reap()
        pid = os.fork()
        if pid == 0:
            _child(job["arguments"], job["stdout"], job["stderr"])
        running[pid] = job
    while running:
        reap()


def run_all(commands: dict[str, list[str]], folder: Path, parallel: int = 2,
            timeout: float = 3600) -> dict[str, subprocess.CompletedProcess]:
    """Runs ``snakemake *arguments`` for every name of ``commands``, ``parallel`` at a time, in one
    Python start-up; their results by name, as ``subprocess.run(..., capture_output=True,
    text=True)`` would give them."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [{"name": name, "arguments": list(map(str, arguments)), "stdout": str(folder / f"{index}.out"),
             "stderr": str(folder / f"{index}.err"), "returncode": str(folder / f"{index}.rc")}
            for index, (name, arguments) in enumerate(commands.items())]
    (folder / "jobs.json").write_text(json.dumps(jobs))
    batch = subprocess.run([sys.executable, "-m", "tests.snakemake_batch", str(folder / "jobs.json"), str(parallel)],
                           cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert batch.returncode == 0, batch.stdout + batch.stderr
    results = {}
    for job in jobs:
        returncode = Path(job["returncode"])
        assert returncode.exists(), f"{job['name']}: no exit status recorded\n{batch.stdout}{batch.stderr}"
        results[job["name"]] = subprocess.CompletedProcess(
            ["snakemake", *job["arguments"]], int(returncode.read_text()), Path(job["stdout"]).read_text(),
            Path(job["stderr"]).read_text())
    return results


if __name__ == "__main__":
    _batch(json.loads(Path(sys.argv[1]).read_text()), int(sys.argv[2]))
