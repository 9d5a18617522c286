"""``snakemake --config data=path/to/table.csv label=y``: a complete study of a user's own table.

``categorical=colour,city`` (optional) names the text columns to one-hot encode; any other text
column is refused before a job runs, by name.

The short form names only the file and its label column; the study itself (the natural profile, a
stratified test set, an MLP with Adam in epochs, the methods and the figures) is the config
``configs/your_data.yaml``, which replaces the default study's. The dataset takes the file's name.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

SHORT_FORM = "configs/your_data.yaml"
TEMPLATE_DATASET = "your_data"
STUDY_KEYS = ("datasets", "protocols", "methods", "study", "figures")  # the short form's own, replacing the default's


class ShortFormError(ValueError):
    pass


def dataset_name(path: str) -> str:
    """A dataset name (``^[a-z][a-z0-9_]*$``) from a file name: ``Patients 2024.csv`` -> ``patients_2024``."""
    name = re.sub(r"[^a-z0-9_]+", "_", Path(path).stem.lower()).strip("_")
    return name if re.match(r"^[a-z]", name) else f"data_{name}"


def expand_short_form(config: dict, basedir: str | Path) -> None:
    """Replace ``config`` (in place) by the short form's study of ``data`` with label ``label``; a
    config without ``data`` is left as it is."""
    if "data" not in config:
        if "label" in config or "categorical" in config:
            raise ShortFormError("--config label=... and categorical=... describe a table given as data=path; "
                                 "give data= too")
        return
    path, label = str(config.pop("data")), str(config.pop("label", "label"))
    categorical = [column for column in str(config.pop("categorical", "")).split(",") if column]
    study = yaml.safe_load((Path(basedir) / SHORT_FORM).read_text())
    name = dataset_name(path)
    dataset = {**study["datasets"].pop(TEMPLATE_DATASET), "path": path, "label_column": label,
               "categorical_columns": categorical}
    study["datasets"] = {name: dataset}
    study["study"]["datasets"] = [name]
    # Settings given beside data= (device, engine, scoring) still apply; the study is the short form's.
    for key in STUDY_KEYS:
        config.pop(key, None)
    config.update({key: value for key, value in study.items() if key not in config})
