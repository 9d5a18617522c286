"""Tables a user brings: CSV, Parquet or KEEL ``.dat`` files, checked and encoded for an MLP.

``load_table(name, spec)`` reads the file (its format from the extension), picks the label column
and the feature columns (``feature_columns``; else every other column, or a KEEL file's ``@inputs``)
and checks them: missing values (rejected unless ``missing: impute``), text columns not listed in
``categorical_columns`` (KEEL's nominal attributes are categorical by declaration), a label with one
class. Every problem is named with the file, the config key and the column; ``table_problems`` gives
the same findings as a list, for checking a config before any job runs.

``encode`` fits scikit-learn's ``ColumnTransformer`` on the training part only (numeric columns:
median imputation where asked, then standardisation; categorical ones: most-frequent imputation
where asked, then one-hot encoding over the training part's values, or a KEEL attribute's declared
ones) and applies it to every part. Its fitted parameters are stored with the dataset, and
``apply_stored`` repeats the transform on new rows from them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .store import DatasetError

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet", ".dat": "keel"}
MISSING_POLICIES = ("reject", "impute")


@dataclass
class Table:
    """A checked table: its feature columns (numeric ones float64, categorical ones text) and labels."""

    path: Path
    features: object  # pandas DataFrame of the feature columns, in file order
    labels: np.ndarray  # int64, 0..K-1 in class_names order
    class_names: list[str]
    numeric: list[str]
    categorical: list[str]
    declared: dict[str, list[str]] = field(default_factory=dict)  # KEEL nominal values per column


def table_format(path: Path, source: str) -> str:
    """``csv`` for source csv; else from the file's extension."""
    if source == "csv":
        return "csv"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(f"{path}: unknown table format '{path.suffix}'; source table reads "
                           f"{', '.join(sorted(FORMATS))} (CSV, Parquet, KEEL .dat)")
    return fmt


def _read(path: Path, fmt: str):
    """The whole file as a DataFrame, and a KEEL file's header (None for other formats)."""
    import pandas as pd

    try:
        if fmt == "keel":
            from .keel import read_keel

            return read_keel(path)
        if fmt == "parquet":
            return pd.read_parquet(path), None
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ","), None
    except ImportError as error:  # pandas reads Parquet through pyarrow
        raise DatasetError(f"{path}: reading Parquet needs pyarrow ({error})") from error
    except (ValueError, OSError) as error:  # ParserError and EmptyDataError are ValueErrors
        raise DatasetError(f"{path}: cannot read the {fmt} file ({error})") from error


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _inspect(name: str, spec: dict):
    """(Table or None, problems): every problem of the file found in one pass."""
    import pandas as pd

    key = f"datasets.{name}"
    path = Path(spec["path"])
    if not path.is_file():
        return None, [f"{key}.path: no table file {path}"]
    try:
        fmt = table_format(path, spec["source"])
        frame, header = _read(path, fmt)
    except DatasetError as error:
        return None, [str(error)]
    label = spec["label_column"]
    columns = [str(column) for column in frame.columns]
    frame.columns = columns
    if label not in columns:
        hint = f"; its @outputs is {header.outputs}" if header is not None and header.outputs else ""
        return None, [f"{path}: no label column '{label}' ({key}.label_column); the columns are {columns}{hint}"]
    problems = []
    if spec.get("feature_columns"):
        features = list(spec["feature_columns"])
    elif header is not None and header.inputs:
        features = [column for column in header.inputs if column != label]
    else:
        features = [column for column in columns if column != label]
    absent = [column for column in features if column not in columns]
    if absent:
        problems.append(f"{path}: {key}.feature_columns names {absent}, which the file does not have "
                        f"(its columns are {columns})")
    if label in features:
        problems.append(f"{path}: {key}.feature_columns includes the label column '{label}'")
    features = [column for column in features if column in columns and column != label]
    if not features and not problems:
        problems.append(f"{path}: no feature columns besides the label column '{label}'")
    declared = {column: values for column, values in (header.nominal if header else {}).items() if column in features}
    categorical = list(dict.fromkeys(list(spec.get("categorical_columns") or []) + list(declared)))
    stray = [column for column in categorical if column not in features]
    if stray:
        problems.append(f"{path}: {key}.categorical_columns names {stray}, which are not feature columns")
    categorical = [column for column in features if column in categorical]
    numeric = [column for column in features if column not in categorical]
    text = [column for column in numeric if not pd.api.types.is_numeric_dtype(frame[column])]
    for column in text:
        example = frame[column].dropna().astype(str).iloc[0] if frame[column].notna().any() else ""
        problems.append(f"{path}: column '{column}' is not numeric (values such as '{example}'); list it in "
                        f"{key}.categorical_columns to one-hot encode it, or leave it out of {key}.feature_columns")
    missing = {column: int(frame[column].isna().sum()) for column in features if frame[column].isna().any()}
    empty = [column for column, count in missing.items() if count == len(frame)]
    if empty:
        problems.append(f"{path}: columns {empty} hold no values at all; leave them out of {key}.feature_columns")
    if missing and spec["missing"] != "impute":
        listed = ", ".join(f"'{column}' ({_rows(count)})" for column, count in missing.items())
        problems.append(f"{path}: missing values in column{'s' if len(missing) > 1 else ''} {listed}, "
                        f"{_rows(int(frame[list(missing)].isna().any(axis=1).sum()))} in all; set {key}.missing: "
                        f"impute to fill them from the training part (median, or most frequent value)")
    labels = frame[label]
    if labels.isna().any():
        first = int(np.flatnonzero(labels.isna().to_numpy())[0])
        where = f"file line {first + 2}" if fmt == "csv" else f"example {first + 1}"
        problems.append(f"{path}: label column '{label}' has missing values in {_rows(int(labels.isna().sum()))} "
                        f"(the first at {where})")
        labels = labels.dropna()
    if labels.nunique() == 0:
        problems.append(f"{path}: no labelled examples")
    elif labels.nunique() == 1:
        problems.append(f"{path}: label column '{label}' has one class only ('{labels.iloc[0]}'); "
                        f"a classifier needs at least two")
    if problems:
        return None, problems
    raw = labels if pd.api.types.is_numeric_dtype(labels) else labels.astype(str)
    classes, codes = np.unique(raw.to_numpy(), return_inverse=True)
    class_names = [str(value.item() if hasattr(value, "item") else value) for value in classes]
    table = frame[features].copy()
    for column in numeric:
        table[column] = table[column].astype("float64")
    for column in categorical:
        table[column] = _as_text(table[column])
    return Table(path, table, codes.astype(np.int64), class_names, numeric, categorical, declared), []


def _as_text(values):
    """A categorical column as Python strings with NaN for missing values, whatever the file held
    (numbers, pandas' string type, None): the one form the imputer and encoder see."""
    return values.astype(str).astype(object).mask(values.isna(), np.nan)


def inspect_table(name: str, spec: dict) -> tuple[Table | None, list[str]]:
    """``_inspect``, remembered per file version and table settings: checking a config reads a table
    once, however many grids ask for its classes."""
    path = Path(spec["path"])
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    settings = json.dumps({key: spec.get(key) for key in ("source", "path", "label_column", "feature_columns",
                                                          "categorical_columns", "missing")}, sort_keys=True)
    return _remembered(name, settings, stamp)


@functools.lru_cache(maxsize=32)
def _remembered(name: str, settings: str, stamp) -> tuple[Table | None, list[str]]:
    return _inspect(name, json.loads(settings))


def load_table(name: str, spec: dict) -> Table:
    table, problems = _inspect(name, spec)
    if problems:
        raise DatasetError("\n".join(problems))
    return table


def table_problems(name: str, spec: dict) -> list[str]:
    """What ``load_table`` would refuse, as a list (empty for a good table)."""
    return inspect_table(name, spec)[1]


def encode(table: Table, parts: dict[str, np.ndarray], impute: bool) -> tuple[dict, dict, dict]:
    """Fit the column transform on the training rows, apply it to every part's rows.

    ``parts``: split -> row numbers into the table. Returns split -> float32 features, the arrays to
    store under /preprocessing, and its attrs (method ``columns``: the parameters ``apply_stored`` needs).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = table.features.iloc[parts["train"]]
    categories = [table.declared.get(column) or sorted(train[column].dropna().unique()) for column in table.categorical]
    numeric = make_pipeline(*([SimpleImputer(strategy="median")] if impute else []), StandardScaler())
    # A category the training part lacks (but the test part has) encodes as all zeros.
    onehot = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    categorical = make_pipeline(*([SimpleImputer(strategy="most_frequent")] if impute else []), onehot)
    transform = ColumnTransformer([("numeric", numeric, table.numeric), ("categorical", categorical, table.categorical)],
                                  verbose_feature_names_out=False)
    transform.fit(train)
    encoded = {split: transform.transform(table.features.iloc[rows]).astype(np.float32) for split, rows in parts.items()}
    arrays, attrs = {}, {"method": "columns", "numeric_columns": json.dumps(table.numeric),
                         "categorical_columns": json.dumps(table.categorical),
                         "categories": json.dumps([[str(value) for value in values] for values in categories]),
                         "feature_names": json.dumps([str(name) for name in transform.get_feature_names_out()])}
    if table.numeric:
        scaler = transform.named_transformers_["numeric"][-1]
        arrays.update(standard_mean=scaler.mean_, standard_scale=scaler.scale_)
        if impute:
            arrays["numeric_fill"] = transform.named_transformers_["numeric"][0].statistics_.astype(np.float64)
    if table.categorical and impute:
        attrs["categorical_fill"] = json.dumps([str(value) for value in
                                                transform.named_transformers_["categorical"][0].statistics_])
    return encoded, arrays, attrs


def apply_stored(frame, group, path) -> np.ndarray:
    """The stored column transform applied to new rows (a DataFrame with the table's feature columns)."""
    numeric, categorical = json.loads(group.attrs["numeric_columns"]), json.loads(group.attrs["categorical_columns"])
    absent = [column for column in numeric + categorical if column not in frame.columns]
    if absent:
        raise DatasetError(f"{path}: the rows lack the feature columns {absent}")
    blocks = []
    if numeric:
        values = frame[numeric].to_numpy(dtype=np.float64)
        if "numeric_fill" in group:
            values = np.where(np.isnan(values), group["numeric_fill"][()], values)
        blocks.append((values - group["standard_mean"][()]) / group["standard_scale"][()])
    fills = json.loads(group.attrs.get("categorical_fill", "null"))
    for position, (column, values) in enumerate(zip(categorical, json.loads(group.attrs["categories"]))):
        text = _as_text(frame[column])
        if fills is not None:
            text = text.mask(text.isna(), fills[position])
        blocks.append((text.to_numpy()[:, None] == np.array(values, dtype=object)[None, :]).astype(np.float64))
    return np.concatenate(blocks, axis=1).astype(np.float32)
