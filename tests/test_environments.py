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
