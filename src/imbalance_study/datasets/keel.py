"""KEEL's ``.dat`` format: a header of ``@relation``, ``@attribute``, ``@inputs`` and ``@outputs``
lines, then ``@data`` and one comma-separated example per line.

An attribute is numeric (``real``, ``integer`` or ``numeric``, optionally with a ``[min, max]``
range) or nominal (``{a, b, c}``: its declared values, which become the categories of a one-hot
encoding even where a value never occurs in the training part). Missing values are ``?`` or
``<null>``. ``@inputs`` lists the feature attributes and ``@outputs`` the class; without them the
last attribute is the class. Lines starting with ``%`` are comments.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from .store import DatasetError

NUMERIC_TYPES = ("real", "integer", "numeric")
MISSING_MARKS = ("?", "<null>")
_ATTRIBUTE = re.compile(r"@attribute\s+('[^']*'|\"[^\"]*\"|[^\s{]+)\s*(.*)$", re.IGNORECASE)


@dataclass
class KeelHeader:
    relation: str
    attributes: list[str]
    nominal: dict[str, list[str]]  # nominal attribute -> its declared values, in declared order
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _names(text: str) -> list[str]:
    return [name.strip().strip("'\"") for name in text.split(",") if name.strip()]


def _header(lines: list[str], path: Path) -> tuple[KeelHeader, int]:
    """The parsed header and the number of the line after ``@data``."""
    header = KeelHeader(relation="", attributes=[], nominal={})
    for number, line in enumerate(lines):
        text = line.strip()
        lowered = text.lower()
        if not text or text.startswith("%"):
            continue
        if lowered.startswith("@relation"):
            header.relation = text[len("@relation"):].strip()
        elif lowered.startswith("@attribute"):
            match = _ATTRIBUTE.match(text)
            if match is None:
                raise DatasetError(f"{path}: line {number + 1}: cannot read the attribute '{text}'")
            name, kind = match[1].strip("'\""), match[2].strip()
            if kind.startswith("{"):
                if not kind.endswith("}"):
                    raise DatasetError(f"{path}: line {number + 1}: nominal attribute '{name}' lacks its closing '}}'")
                header.nominal[name] = _names(kind[1:-1])
            elif kind.split("[")[0].strip().lower() not in NUMERIC_TYPES:
                raise DatasetError(f"{path}: line {number + 1}: attribute '{name}' has type '{kind}', expected "
                                   f"one of {', '.join(NUMERIC_TYPES)} or {{value, ...}}")
            header.attributes.append(name)
        elif lowered.startswith("@inputs") or lowered.startswith("@input "):
            header.inputs = _names(text.split(None, 1)[1] if " " in text else "")
        elif lowered.startswith("@outputs") or lowered.startswith("@output "):
            header.outputs = _names(text.split(None, 1)[1] if " " in text else "")
        elif lowered.startswith("@data"):
            if not header.attributes:
                raise DatasetError(f"{path}: no @attribute line before @data")
            return header, number + 1
        else:
            raise DatasetError(f"{path}: line {number + 1}: expected a header line (@relation, @attribute, "
                               f"@inputs, @outputs, @data), found '{text[:60]}'")
    raise DatasetError(f"{path}: no @data line: not a KEEL .dat file")


def read_keel(path: str | Path):
    """The examples of a KEEL file as a pandas DataFrame (numeric attributes float64, nominal ones
    text, missing values NaN) and its header."""
    import pandas as pd

    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read the KEEL file ({error})") from error
    header, start = _header(lines, path)
    unknown = [name for name in header.inputs + header.outputs if name not in header.attributes]
    if unknown:
        raise DatasetError(f"{path}: @inputs/@outputs name {unknown}, which no @attribute declares")
    rows = [number for number in range(start, len(lines))
            if lines[number].strip() and not lines[number].lstrip().startswith("%")]
    body = "\n".join(lines[number] for number in rows)
    try:
        frame = pd.read_csv(io.StringIO(body), header=None, names=header.attributes, dtype=str,
                            na_values=list(MISSING_MARKS), keep_default_na=False, skipinitialspace=True,
                            index_col=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise DatasetError(f"{path}: the @data section does not match the {len(header.attributes)} declared "
                           f"attributes ({error})") from error
    for name in header.attributes:
        text = frame[name].str.strip()
        text = text.mask(text.isin(MISSING_MARKS))
        if name in header.nominal:
            frame[name] = text
            undeclared = sorted(set(text.dropna()) - set(header.nominal[name]))
            bad = text.isin(undeclared)
            problem = f"values {undeclared[:5]} that its @attribute line does not declare ({header.nominal[name]})"
        else:
            frame[name] = pd.to_numeric(text, errors="coerce").astype("float64")
            bad = frame[name].isna() & text.notna()
            problem = f"non-numeric values such as '{text[bad].iloc[0]}'" if bad.any() else ""
        if bad.any():
            line = rows[int(bad.to_numpy().argmax())] + 1
            raise DatasetError(f"{path}: attribute '{name}' has {problem} in {int(bad.sum())} rows "
                               f"(the first at line {line})")
    return frame, header
