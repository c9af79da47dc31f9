"""Reading a local data set (``--dataset-path``, ``--eval-dataset-path``) and checking it.

Every row is read and checked against the run's column rules
(``thinnka.planning.datarules``) before anything is rented: a refusal names the file, the
row (the line, for JSONL and CSV) and the column. What the check learns (files, their
sha256, rows, columns, lengths) is recorded with the run (``LocalData.to_json``), so the
upload can skip a file the pod already holds and a file changed since is noticed.

Formats are those the pod's ``datasets`` loads by builder: ``.jsonl``/``.json`` (JSON
lines, or one JSON array of objects), ``.csv`` and ``.parquet`` (with pyarrow, the
``parquet`` extra). A folder holds files of one format (one builder reads them all).
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinnka.errors import ConfigError
from thinnka.planning.datarules import (
    MAX_DATA_BYTES,
    WARN_DATA_BYTES,
    ColumnRule,
    check_columns,
    check_row,
    measured_text,
)

__all__ = ["DataFile", "LengthStats", "LocalData", "file_sha256", "read_local_data"]

# File suffix -> the datasets builder that reads it on the pod.
FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """One file of a local data set and the name it gets on the pod."""

    local: str
    remote_name: str  # part-00000.jsonl: no split word, so `datasets` reads it as train
    size: int
    sha256: str


@dataclass(frozen=True)
class LengthStats:
    unit: str  # "tokens" (the model's tokenizer, found locally) or "characters"
    minimum: int
    median: int
    p95: int
    maximum: int

    def describe(self) -> str:
        return (
            f"{self.unit}: min {self.minimum:,}, median {self.median:,}, "
            f"95th percentile {self.p95:,}, max {self.maximum:,}"
        )


@dataclass(frozen=True)
class LocalData:
    """A checked local data set: JSON-safe, stored in the run's plan (``plan["data"]``)."""

    role: str  # "train" or "eval"
    path: str
    format: str  # json, csv or parquet: the datasets builder
    files: tuple[DataFile, ...]
    rows: int
    columns: tuple[str, ...]
    lengths: LengthStats | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def sha256(self) -> str:
        """The file's hash, or for a folder the hash of its files' names and hashes."""
        if len(self.files) == 1:
            return self.files[0].sha256
        listing = "".join(f"{Path(f.local).name}  {f.sha256}\n" for f in self.files)
        return hashlib.sha256(listing.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "path": self.path,
            "format": self.format,
            "sha256": self.sha256,
            "bytes": self.size,
            "rows": self.rows,
            "columns": list(self.columns),
            "files": [vars(f) for f in self.files],
            "lengths": vars(self.lengths) if self.lengths else None,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalData:
        lengths = data.get("lengths")
        return cls(
            role=data["role"],
            path=data["path"],
            format=data["format"],
            files=tuple(DataFile(**f) for f in data["files"]),
            rows=int(data["rows"]),
            columns=tuple(data["columns"]),
            lengths=LengthStats(**lengths) if lengths else None,
            warnings=tuple(data.get("warnings") or ()),
        )


def read_local_data(
    path: str,
    rule: ColumnRule,
    *,
    role: str = "train",
    measure: Callable[[list[str]], list[int]] | None = None,
    unit: str = "characters",
) -> LocalData:
    """Read and check every row of ``path``; ``ConfigError`` (exit 2) for what cannot train.

    ``measure`` turns texts into lengths (a tokenizer); without it, characters are counted.
    """
    flag = "--dataset-path" if role == "train" else "--eval-dataset-path"
    files, fmt = _files(Path(path), flag)
    size = sum(p.stat().st_size for p in files)
    if size > MAX_DATA_BYTES:
        raise ConfigError(
            f"{flag} {path} is {size / 1024**3:.1f} GiB; local data sets are capped at "
            f"{MAX_DATA_BYTES // 1024**3} GiB (each run uploads it). Push it as a private "
            "Hub data set and give --dataset-name."
        )
    warnings: list[str] = []
    if size > WARN_DATA_BYTES:
        # No path in it: a warning is an event too, and events never name the file.
        warnings.append(
            f"The local {role} data is {size / 1024**2:.0f} MB: it is uploaded to each pod "
            "over SFTP. A private Hub data set (--dataset-name, read with your token) "
            "downloads faster."
        )
    columns: list[str] = []
    shape = None
    texts: list[str] = []
    rows = 0
    for file in files:
        for where, row in _rows(file, fmt):
            if not columns:
                columns = list(row)
                shape = check_columns(columns, rule, f"{file}")
            assert shape is not None
            problem = check_row(row, rule, shape)
            if problem is not None:
                raise ConfigError(f"{flag} {file}, {where}: {problem}. {rule.describe()}.")
            texts.append(measured_text(row, rule, shape))
            rows += 1
    if rows == 0:
        raise ConfigError(f"{flag} {path} holds no rows.")
    lengths = _stats(
        measure(texts) if measure else [len(t) for t in texts], unit if measure else "characters"
    )
    described = [
        DataFile(str(p), f"part-{i:05d}{p.suffix.lower()}", p.stat().st_size, file_sha256(p))
        for i, p in enumerate(files)
    ]
    return LocalData(
        role, path, fmt, tuple(described), rows, tuple(columns), lengths, tuple(warnings)
    )


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------ reading
def _files(path: Path, flag: str) -> tuple[list[Path], str]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
        if not found:
            raise ConfigError(f"{flag} {path} holds no {', '.join(FORMATS)} file.")
    elif path.is_file():
        found = [path]
    else:
        raise ConfigError(f"{flag} {path} does not exist.")
    formats = {FORMATS.get(p.suffix.lower()) for p in found}
    if None in formats:
        raise ConfigError(
            f"{flag} {path}: {path.suffix or 'no suffix'} is not a data file thinnka reads "
            f"({', '.join(FORMATS)})."
        )
    if len(formats) > 1:
        raise ConfigError(
            f"{flag} {path} mixes formats ({', '.join(sorted(str(f) for f in formats))}); "
            "one builder reads a folder: keep one format."
        )
    return found, str(formats.pop())


def _rows(file: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        if fmt == "csv":
            yield from _csv_rows(file)
        elif fmt == "parquet":
            yield from _parquet_rows(file)
        elif file.suffix.lower() == ".json" and _starts_with_bracket(file):
            yield from _json_array_rows(file)
        else:
            yield from _json_lines(file)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file} is not UTF-8 text (byte {exc.start}).") from None
    except OSError as exc:
        raise ConfigError(f"{file} cannot be read ({exc.strerror or exc}).") from None


def _starts_with_bracket(file: Path) -> bool:
    with open(file, encoding="utf-8-sig") as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped.startswith("[")
    return False


def _json_lines(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(file, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{file}, line {number}: not JSON ({exc.msg} at column {exc.colno})."
                ) from None
            if not isinstance(row, dict):
                raise ConfigError(f"{file}, line {number}: a row must be a JSON object.")
            yield f"line {number}", row


def _json_array_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not JSON ({exc.msg} at line {exc.lineno}).") from None
    for number, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{file}, row {number}: a row must be a JSON object.")
        yield f"row {number}", row


def _csv_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(file, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if None in row:  # more fields than the header names
                raise ConfigError(
                    f"{file}, line {reader.line_num}: more fields than the header's "
                    f"{len(reader.fieldnames or [])}."
                )
            yield f"line {reader.line_num}", dict(row)


def _parquet_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            f"{file}: reading Parquet needs pyarrow (pip install 'thinnka[parquet]')."
        ) from None
    try:
        parquet = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise ConfigError(f"{file}: not a Parquet file ({exc}).") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            yield f"row {number}", row


def _stats(lengths: list[int], unit: str) -> LengthStats | None:
    if not lengths:
        return None
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return LengthStats(unit, ordered[0], int(statistics.median(ordered)), p95, ordered[-1])
