"""The conda environments (envs/*.yaml) and pyproject.toml must pin the same versions."""

import re
import tomllib

import pytest
import yaml

from .conftest import REPO


def pins(requirements) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", requirement.strip())
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


PYPROJECT = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda path: path.name)
def test_env_file_pins_agree_with_pyproject(env_file):
    environment = yaml.safe_load(env_file.read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    env_pins = pins(pip_section)
    assert env_pins, f"{env_file.name} pins nothing"
    disagreeing = {name: (version, PYPROJECT.get(name)) for name, version in env_pins.items()
                   if PYPROJECT.get(name) != version}
    assert not disagreeing, f"{env_file.name} vs pyproject.toml: {disagreeing}"


def test_every_rule_environment_exists():
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    for name in set(re.findall(r'"\.\./\.\./envs/([\w.]+)"', rules)):
        assert (REPO / "envs" / name).is_file(), name


def test_the_scripts_of_the_analysis_environment_run_without_pytorch():
    """envs/analysis.yaml has no PyTorch: what its rules' scripts import (every figure's plotting
    module too) must import with torch unavailable."""
    import subprocess
    import sys

    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    scripts = set(re.findall(r'envs/analysis\.yaml"\s+script:\s+"\.\./\.\./scripts/(\w+\.py)"', rules))
    assert {"aggregate_scores.py", "plot_figure.py", "make_indices.py", "record_provenance.py"} <= scripts
    imports = set()
    for script in scripts:
        imports |= set(re.findall(r"^(from imbalance_study[\w.]* import [\w, ]+)$", (REPO / "scripts" / script).read_text(),
                                  flags=re.MULTILINE))
    probe = "\n".join([
        "import importlib, importlib.abc, sys",
        "class NoTorch(importlib.abc.MetaPathFinder):",
        "    def find_spec(self, name, path=None, target=None):",
        "        if name.split('.')[0] in ('torch', 'torchvision'):",
        "            raise ImportError(f'{name}: not in envs/analysis.yaml')",
        "sys.meta_path.insert(0, NoTorch())",
        *sorted(imports),
        "from imbalance_study import figures",
        "for name in figures.FIGURES: figures.FIGURES[name]",
        "print('ok')"])
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO / "src")})
    assert result.stdout.strip() == "ok", result.stderr
