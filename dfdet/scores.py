"""Score files: the table that `score` writes and `evaluate`, `calibrate` and `ensemble` read (DESIGN.md).

A dfdet score file is a TSV with a header, one row per utterance, sorted by `utt_id`; columns `utt_id`, `score` and,
where known, `path`, `p_spoof`, `decision`, `label`, then any passthrough columns (system, speaker, domain, ...).
`score` is BONA-FIDE-POSITIVE natural-log odds (an LLR after calibration), as in the ASVspoof evaluation package;
`p_spoof` = sigmoid(-score). Scores are written to 9 significant digits (every float32 model score exactly), p_spoof
to 6. Rows are sorted when a whole table is written; `ScoreWriter` streams rows in arrival order.

A score file written to a path can carry a provenance sidecar, `FILE.prov.json` beside it (`sidecar_path`): what
scored it (detector kind, path and content hash, member models, calibration), on what input, how many rows, the
file's own content hash (so a sidecar left beside a rewritten file is recognised as stale) and the run's provenance.

The score contract (README "Scores are a contract"): audio scoring forwards every file on its own (a batch of one,
one torch thread), so a file's score is bit-identical whatever else is in the run, its order, `-j` or stdin timing,
on a given CPU and torch build. Fusion and calibration are float64 with a fixed-order sum (no BLAS), so they add no
layout- or CPU-dependent bits. Anything that changes the network's float32 arithmetic (a store scored in blocks
versus files one by one, another thread count, another CPU) keeps scores within `SCORE_ATOL + SCORE_RTOL * |score|`;
a decision can then differ only for a row that close to the threshold (`scores_agree`).

Reading is tolerant: TSV or CSV with a header (ASVspoof 5 `filename`/`cm-score`/`cm-label` names accepted), and
header-less ASVspoof files: `utt_id score`, the 2019 CM score file `utt_id system key score`, and the ASVspoof 5
README's `speaker utt_id score key`. Every error names the file, the line and a fix.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from dfdet.atomic import atomic_open, atomic_path
from dfdet.errors import DfdetError, InputError
from dfdet.inputs import META_COLUMNS
from dfdet.labels import BONAFIDE, SPOOF, UNKNOWN, label_name, parse_label

__all__ = [
    "FORMATS",
    "SIDECAR_SUFFIX",
    "SCORE_ATOL",
    "SCORE_RTOL",
    "KeyTable",
    "ScoreTable",
    "ScoreWriter",
    "attach_keys",
    "file_record",
    "format_p",
    "format_score",
    "is_sidecar_doc",
    "read_keys",
    "near_threshold",
    "scores_agree",
    "read_scores",
    "read_sidecar",
    "score_to_p_spoof",
    "sidecar_fields",
    "sidecar_path",
    "upstream_detector",
    "write_scores",
]

# float32 network logits: batching moves a score by <= 4.8e-7 here (benchmarks/score_contract.py; another CPU saw
# 1e-7), a 20x margin to the bound.
SCORE_ATOL = 1e-5
SCORE_RTOL = 1e-5

CORE_COLUMNS = ("utt_id", "score", "path", "p_spoof", "decision", "label")
SIDECAR_SUFFIX = ".prov.json"  # FILE.tsv -> FILE.tsv.prov.json (the whole name kept: a.tsv and a.csv never share one)
SIDECAR_SCHEMA_VERSION = 1
# Header names accepted when reading (lower-cased), first match wins; ASVspoof 5 uses filename / cm-score / cm-label.
ID_NAMES = ("utt_id", "uttid", "utt", "filename", "file_id", "trial", "trial_anon", "id", "utterance", "file")
SCORE_NAMES = ("score", "cm-score", "cm_score", "llr", "cm-llr")
LABEL_NAMES = ("label", "cm-label", "cm_label", "key", "class")
PATH_NAMES = ("path", "audio", "audio_path", "wav")
# (`attack` is not renamed: it is the ASVspoof 5 attack tag, a column of its own; ATTACK_LABEL A01.. is the system.)
EXTRA_RENAMES = {"spk": "speaker", "tar_spk_anon": "speaker", "speaker_id": "speaker", "attack_anon": "system",
                 "attack_id": "system", "attack_label": "system", "system_id": "system"}  # fmt: skip
_FORMAT_HINT = (
    "expected a TSV/CSV with a header holding utt_id and score (and optionally path, p_spoof, decision, label), "
    "or ASVspoof-style lines 'utt_id score' / 'utt_id system key score'"
)


def score_to_p_spoof(score: Any) -> np.ndarray:
    """P(spoof) from a bona-fide-positive natural-log-odds score: sigmoid(-score), stable for large |score|."""
    s = np.asarray(score, dtype=np.float64)
    return 0.5 * (1.0 - np.tanh(s / 2.0))


def scores_agree(a: Any, b: Any) -> np.ndarray:
    """Per row: do two scores of one utterance from different code paths meet the score contract?"""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) <= SCORE_ATOL + SCORE_RTOL * np.maximum(np.abs(a), np.abs(b))


def near_threshold(score: Any, threshold: float) -> np.ndarray:
    """Rows whose decision may legitimately differ between code paths: within the contract's tolerance of the
    threshold."""
    s = np.asarray(score, dtype=np.float64)
    return np.abs(s - threshold) <= SCORE_ATOL + SCORE_RTOL * np.maximum(np.abs(s), abs(threshold))


def _codes(values: Any, n: int, what: str) -> np.ndarray:
    """0/1/-1 codes from ints or label words (bonafide/spoof/'')."""
    if values is None:
        return np.full(n, UNKNOWN, dtype=np.int8)
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        out = arr.astype(np.int8)
    else:
        out = np.array([parse_label(str(v), numeric=True, where=f"{what}: ") for v in arr], dtype=np.int8)
    if out.shape != (n,):
        raise DfdetError(f"{what} has {out.size} values for {n} utterances", "pass one value per utterance")
    if not np.isin(out, (BONAFIDE, SPOOF, UNKNOWN)).all():
        raise DfdetError(f"{what} values must be 0 (bona fide), 1 (spoof) or -1 (unknown)", "fix the values")
    return out


@dataclass
class ScoreTable:
    """One row per utterance. `label` and `decision` are int8 codes (0 bona fide, 1 spoof, -1 unknown); words are
    accepted on construction. `p_spoof` is NaN where unknown; `extra` holds passthrough string columns."""

    utt_id: list[str]
    score: np.ndarray
    path: list[str] | None = None
    p_spoof: np.ndarray | None = None
    decision: np.ndarray | None = None
    label: np.ndarray | None = None
    extra: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.utt_id = [str(u) for u in self.utt_id]
        n = len(self.utt_id)
        self.score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        if self.score.size != n:
            raise DfdetError(f"{self.score.size} scores for {n} utt_ids", "pass one score per utterance")
        if self.path is not None:
            self.path = [str(p) for p in self.path]
            if len(self.path) != n:
                raise DfdetError(f"{len(self.path)} paths for {n} utt_ids", "pass one path per utterance")
        if self.p_spoof is not None:
            self.p_spoof = np.asarray(self.p_spoof, dtype=np.float64).reshape(-1)
            if self.p_spoof.size != n:
                raise DfdetError(f"{self.p_spoof.size} p_spoof values for {n} utt_ids", "pass one per utterance")
        self.label = _codes(self.label, n, "label")
        if self.decision is not None:
            self.decision = _codes(self.decision, n, "decision")
        for name, col in list(self.extra.items()):
            self.extra[name] = [str(v) for v in col]
            if len(self.extra[name]) != n:
                raise DfdetError(f"column {name!r} has {len(col)} values for {n} utt_ids", "pass one per utterance")
            if name in CORE_COLUMNS:
                raise DfdetError(f"extra column {name!r} clashes with a core column", "rename it")
        seen: dict[str, int] = {}
        for i, u in enumerate(self.utt_id):
            if not u:
                raise DfdetError(
                    f"{self.source or 'score table'}: row {i + 1} has an empty utt_id", "give every row an id"
                )
            if u in seen:
                raise DfdetError(
                    f"{self.source or 'score table'}: duplicate utt_id {u!r} (rows {seen[u] + 1} and {i + 1})",
                    "each utterance must appear once",
                )
            seen[u] = i

    @classmethod
    def from_scores(
        cls, utt_id: Sequence[str], score: Any, threshold: float | None = None, **kwargs: Any
    ) -> ScoreTable:
        """A table with `p_spoof` = sigmoid(-score) and, given `threshold`, decisions (score >= thr: bona fide)."""
        s = np.asarray(score, dtype=np.float64)
        decision = None if threshold is None else np.where(s >= threshold, BONAFIDE, SPOOF).astype(np.int8)
        return cls(list(utt_id), s, p_spoof=score_to_p_spoof(s), decision=decision, **kwargs)

    def __len__(self) -> int:
        return len(self.utt_id)

    @property
    def has_labels(self) -> bool:
        return bool((self.label != UNKNOWN).any())

    @property
    def columns(self) -> list[str]:
        """The header a TSV of this table gets (optional columns only where known)."""
        cols = ["utt_id", "score"]
        if self.path is not None:
            cols.append("path")
        if self.p_spoof is not None:
            cols.append("p_spoof")
        if self.decision is not None:
            cols.append("decision")
        if self.has_labels:
            cols.append("label")
        return cols + list(self.extra)

    def column(self, name: str) -> list[str]:
        """A string column by name (extra columns, path, label or decision words)."""
        if name in self.extra:
            return self.extra[name]
        if name == "path" and self.path is not None:
            return self.path
        if name == "label":
            return [label_name(c) for c in self.label]
        if name == "decision" and self.decision is not None:
            return [label_name(c) for c in self.decision]
        have = ", ".join(self.columns)
        raise DfdetError(
            f"{self.source or 'score table'}: no column {name!r} (columns: {have})", "pick a column it has"
        )

    def subset(self, idx: Any) -> ScoreTable:
        """Rows `idx` (indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64).reshape(-1)
        take = idx.tolist()
        return ScoreTable(
            [self.utt_id[i] for i in take],
            self.score[idx],
            None if self.path is None else [self.path[i] for i in take],
            None if self.p_spoof is None else self.p_spoof[idx],
            None if self.decision is None else self.decision[idx],
            self.label[idx],
            {k: [v[i] for i in take] for k, v in self.extra.items()},
            self.source,
        )

    def sorted(self) -> ScoreTable:
        """Rows sorted by utt_id (the on-disk order)."""
        return self.subset(np.array(sorted(range(len(self)), key=self.utt_id.__getitem__), dtype=np.int64))


# --------------------------------------------------------------------------------------------------- reading
def _read_text(path: str | os.PathLike) -> tuple[str, str]:
    if str(path) == "-":
        return "<stdin>", sys.stdin.read()
    p = Path(path)
    if p.is_dir():
        raise InputError(p, "is a directory, not a score file", "pass the score TSV written by `dfdet score`")
    if not p.exists():
        raise InputError(p, "score file not found", "check the path")
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            return str(p), fh.read()
    except UnicodeDecodeError as exc:
        raise InputError(p, f"not UTF-8 text ({exc.reason})", "pass a text score file") from exc
    except OSError as exc:
        raise InputError(p, f"cannot read ({exc.strerror or exc})", "check the file permissions") from exc


def _lines(text: str) -> list[tuple[int, str]]:
    return [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]


def _parse_score(text: str, where: str, what: str = "score") -> float:
    try:
        v = float(text)
    except ValueError:
        raise DfdetError(f"{where}: {what} {text!r} is not a number", f"write a numeric {what}") from None
    if math.isnan(v):
        raise DfdetError(f"{where}: {what} is NaN", "fix or drop that utterance (metrics need real numbers)")
    return v


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_label(text: str) -> bool:
    try:
        return parse_label(text) != UNKNOWN or text.strip() == "-"
    except DfdetError:
        return False


def _pick(header: list[str], names: Iterable[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _header_fields(line: str) -> tuple[str, list[str]] | None:
    """(delimiter, lower-cased names) when `line` is a header naming an id or score column."""
    for delim in ("\t", ",", None):
        if delim is not None and delim not in line:
            continue
        names = [
            c.strip().lower() for c in (line.split() if delim is None else next(csv.reader([line], delimiter=delim)))
        ]
        if _pick(names, ID_NAMES) is not None or _pick(names, SCORE_NAMES) is not None:
            return (delim or " "), names
    return None


def _table_rows(name: str, text: str, delim: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    if delim == " ":
        for lineno, line in _lines(text):
            fields = line.split()
            if header is None:
                header = [f.lower() for f in fields]
            else:
                rows.append((lineno, fields))
    else:
        reader = csv.reader(io.StringIO(text), delimiter=delim)
        try:
            for row in reader:
                if not any(c.strip() for c in row) or (header is None and row[0].lstrip().startswith("#")):
                    continue
                if header is None:
                    header = [c.strip().lower() for c in row]
                else:
                    rows.append((reader.line_num, [c.strip() for c in row]))
        except csv.Error as exc:
            raise DfdetError(
                f"{name}:{reader.line_num}: malformed line ({exc})", "fix the quoting on that line"
            ) from exc
    assert header is not None
    sep = {"\t": "tab", ",": "comma", " ": "space"}[delim]
    for lineno, row in rows:
        if len(row) != len(header):
            raise DfdetError(
                f"{name}:{lineno}: {len(row)} fields but the header has {len(header)}",
                f"write one {sep}-separated value per header column",
            )
    return header, rows


def _check_id(ident: str, where: str, seen: dict[str, int], name: str, lineno: int) -> None:
    if not ident:
        raise DfdetError(f"{where}: missing utt_id", "every row needs an utterance id in the first column")
    if ident in seen:
        raise DfdetError(
            f"{name}:{lineno}: duplicate utt_id {ident!r} (first on line {seen[ident]})",
            "each utterance must appear once; remove the duplicate row",
        )
    seen[ident] = lineno


def _read_header_table(name: str, text: str, delim: str, numeric_labels: bool) -> ScoreTable:
    header, rows = _table_rows(name, text, delim)
    if len(set(header)) != len(header):
        raise DfdetError(f"{name}:1: repeated column names in header {header}", "give every column a distinct name")
    i_id, i_score = _pick(header, ID_NAMES), _pick(header, SCORE_NAMES)
    if i_id is None:
        raise DfdetError(f"{name}:1: no utt_id column in header {header}", f"name the id column one of {ID_NAMES[:2]}")
    if i_score is None:
        raise DfdetError(f"{name}:1: no score column in header {header}", "name the score column 'score'")
    i_label, i_path = _pick(header, LABEL_NAMES), _pick(header, PATH_NAMES)
    i_p, i_dec = _pick(header, ("p_spoof",)), _pick(header, ("decision",))
    used = {i for i in (i_id, i_score, i_label, i_path, i_p, i_dec) if i is not None}
    extra_idx = {EXTRA_RENAMES.get(h, h): i for i, h in enumerate(header) if i not in used}
    if not rows:
        raise InputError(name, "score file has a header but no rows", "score some utterances first")
    ids, scores, labels, paths, ps, decs = [], [], [], [], [], []
    seen: dict[str, int] = {}
    for lineno, row in rows:
        where = f"{name}:{lineno}"
        _check_id(row[i_id], where, seen, name, lineno)
        ids.append(row[i_id])
        scores.append(_parse_score(row[i_score], where))
        if i_label is not None:
            labels.append(parse_label(row[i_label], numeric=numeric_labels, where=f"{where}: "))
        if i_path is not None:
            paths.append(row[i_path])
        if i_p is not None:
            ps.append(float("nan") if row[i_p] == "" else _parse_score(row[i_p], where, "p_spoof"))
        if i_dec is not None:
            decs.append(parse_label(row[i_dec], where=f"{where}: decision: "))
    return ScoreTable(
        ids,
        np.array(scores),
        paths if i_path is not None else None,
        np.array(ps) if i_p is not None else None,
        np.array(decs, dtype=np.int8) if i_dec is not None else None,
        np.array(labels, dtype=np.int8) if i_label is not None else None,
        {k: [row[i] for _, row in rows] for k, i in extra_idx.items()},
        name,
    )


def _headerless_layout(name: str, lineno: int, fields: list[str]) -> dict[str, int]:
    """Column roles of an ASVspoof-style line, decided from the first line."""
    n = len(fields)
    if n == 2 and _is_number(fields[1]):
        return {"id": 0, "score": 1}
    if n == 3 and _is_number(fields[1]) and _is_label(fields[2]):
        return {"id": 0, "score": 1, "label": 2}
    if n == 3 and _is_number(fields[2]):
        return {"id": 0, "score": 2}
    if n == 4 and _is_number(fields[3]) and _is_label(fields[2]):
        return {"id": 0, "system": 1, "label": 2, "score": 3}  # ASVspoof 2019 CM score file
    if n == 4 and _is_number(fields[2]) and _is_label(fields[3]):
        return {"speaker": 0, "id": 1, "score": 2, "label": 3}  # ASVspoof 5 README example
    raise DfdetError(f"{name}:{lineno}: cannot tell the score file format from {' '.join(fields)[:80]!r}", _FORMAT_HINT)


def _read_headerless(name: str, lines: list[tuple[int, str]], numeric_labels: bool) -> ScoreTable:
    first_no, first = lines[0]
    layout = _headerless_layout(name, first_no, first.split())
    width = len(first.split())
    ids, scores, labels, system, speaker = [], [], [], [], []
    seen: dict[str, int] = {}
    for lineno, line in lines:
        fields = line.split()
        where = f"{name}:{lineno}"
        if len(fields) != width:
            raise DfdetError(
                f"{where}: {len(fields)} fields but line {first_no} has {width}", "use the same columns on every line"
            )
        _check_id(fields[layout["id"]], where, seen, name, lineno)
        ids.append(fields[layout["id"]])
        scores.append(_parse_score(fields[layout["score"]], where))
        if "label" in layout:
            labels.append(parse_label(fields[layout["label"]], numeric=numeric_labels, where=f"{where}: "))
        if "system" in layout:
            system.append(fields[layout["system"]])
        if "speaker" in layout:
            speaker.append(fields[layout["speaker"]])
    extra = {}
    if "system" in layout:
        extra["system"] = system
    if "speaker" in layout:
        extra["speaker"] = speaker
    lab = np.array(labels, dtype=np.int8) if "label" in layout else None
    return ScoreTable(ids, np.array(scores), label=lab, extra=extra, source=name)


def read_scores(path: str | os.PathLike, numeric_labels: bool = False) -> ScoreTable:
    """Read a score file (dfdet TSV, CSV with header, or ASVspoof-style lines; `-` = stdin), in file order.

    Raises DfdetError naming file and line for: empty file, missing or duplicate ids, unknown labels, NaN or
    non-numeric scores, ragged rows. Numeric labels (0 bona fide / 1 spoof) only with `numeric_labels`.
    """
    name, text = _read_text(path)
    lines = _lines(text)
    if not lines:
        raise InputError(name, "score file is empty", "score some utterances first (dfdet score MODEL AUDIO -o FILE)")
    head = _header_fields(lines[0][1])
    if head is not None:
        return _read_header_table(name, text, head[0], numeric_labels)
    return _read_headerless(name, lines, numeric_labels)


# --------------------------------------------------------------------------------------------------- writing
SCORE_DIGITS = 9  # significant digits of a written score: a float32 round-trips, so ranks and ties survive the file
P_DIGITS = 6  # significant digits of a written p_spoof (a display column: `score` carries the precision)


def format_score(x: float) -> str:
    """A score as written to a score file: 9 significant digits, '' for NaN.

    Why 9: raw model scores are float32 logits, and 9 digits identify a float32 exactly, so a file keeps every rank
    and tie of them; a calibrated or fused score keeps a relative precision of 5e-10, finer than its float32 inputs.
    More digits (repr of the float64) would only print float32 noise; fewer (%.6g) would tie distinct scores.
    """
    x = float(x)
    return "" if math.isnan(x) else repr(float(f"{x:.{SCORE_DIGITS}g}"))  # repr: 2.0, not 2


def format_p(x: float) -> str:
    """A probability as written to a score file: 6 significant digits, '' for NaN (1 - 3e-9 is written 1.0)."""
    x = float(x)
    return "" if math.isnan(x) else repr(float(f"{x:.{P_DIGITS}g}"))


def _word(code: Any) -> str:
    if code is None:
        return ""
    if isinstance(code, str):
        return label_name(parse_label(code, numeric=True))
    return label_name(int(code))


@dataclass(frozen=True)
class ScoreFormat:
    """A score-file layout other than dfdet's own TSV: its header line and how one row is written."""

    header: str | None
    row: Callable[[str, float, Any, dict[str, Any]], str]  # (utt_id, score, label, extra columns) -> line
    describe: str


def _key_row(utt_id: str, score: float, label: Any, extra: dict[str, Any]) -> str:
    word = _word(label)
    if not word:
        raise DfdetError(f"{utt_id}: no label for the ASVspoof key file", "attach labels first")
    return f"{utt_id}\t{word}\n"


_ASVSPOOF5 = ScoreFormat(
    "filename\tcm-score",
    lambda u, s, lab, ex: f"{u}\t{format_score(s)}\n",
    "ASVspoof 5 track-1 score file, what its evaluation package reads: `filename<TAB>cm-score` with that header",
)
# The one registry of score-file formats (`tsv`, dfdet's own, is written by ScoreWriter itself).
FORMATS: dict[str, ScoreFormat | None] = {
    "tsv": None,
    "asvspoof5": _ASVSPOOF5,
    "asvspoof": _ASVSPOOF5,  # the name it had first
    "asvspoof2019": ScoreFormat(
        None,
        lambda u, s, lab, ex: f"{u} {ex.get('system') or '-'} {_word(lab) or '-'} {format_score(s)}\n",
        "ASVspoof 2019/2021 CM score-file layout `utt_id system key score` (space-separated, `-` where unknown)",
    ),
    "asvspoof-keys": ScoreFormat(
        "filename\tcm-label", _key_row, "ASVspoof 5 key file `filename<TAB>cm-label` (bonafide/spoof)"
    ),
}


# --------------------------------------------------------------------------------------------------- provenance sidecar
def sidecar_path(score_path: str | os.PathLike) -> Path:
    """Where the provenance of a score file lives: `FILE.prov.json` beside it."""
    return Path(f"{os.fspath(score_path)}{SIDECAR_SUFFIX}")


def is_sidecar_doc(doc: Any) -> bool:
    """Whether a JSON document is a score file's provenance sidecar (not a calibration/ensemble/other artifact)."""
    return (
        isinstance(doc, dict)
        and doc.get("kind") == "scores"
        and isinstance(doc.get("scores"), dict)
        and isinstance(doc.get("detector"), dict)
    )


def read_sidecar(score_path: str | os.PathLike, file_hash: str | None = None) -> dict[str, Any] | None:
    """The provenance sidecar of a score file, or None when it has none, it is unreadable or newer than this dfdet, or
    it describes other content: it records the score file's hash, so one left beside a file that was rewritten by
    hand or by a tool that writes no sidecar is ignored rather than believed. `file_hash`: the score file's
    `dfdet.provenance.file_hash` when the caller has it already."""
    side = sidecar_path(score_path)
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not is_sidecar_doc(doc):
        return None
    ver = doc.get("schema_version")
    if not isinstance(ver, int) or ver > SIDECAR_SCHEMA_VERSION:
        return None
    if file_hash is None:
        from dfdet.provenance import file_hash as hash_of

        try:
            file_hash = hash_of(score_path)
        except OSError:
            return None
    return doc if doc["scores"].get("hash") == file_hash else None


def file_record(path: str | os.PathLike, hashes: dict[str, str | None] | None = None) -> dict[str, Any]:
    """`{"path", "hash"}` of a file a score file was made from (hash None for `-` or anything not a regular file).
    `hashes`: a cache by absolute path shared between calls, so a file named twice (a model that is also its
    detector's only member) is read once."""
    from dfdet.provenance import file_hash

    key = os.path.abspath(path)
    cache = {} if hashes is None else hashes
    if key not in cache:
        cache[key] = file_hash(path) if str(path) != "-" and os.path.isfile(path) else None
    return {"path": str(path), "hash": cache[key]}


def sidecar_fields(
    detector: str | os.PathLike,
    kind: str,
    members: Sequence[dict[str, Any]],
    source: dict[str, Any],
    *,
    command: str,
    calibration: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    skipped: Sequence[dict[str, str]] = (),
    hashes: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The fields a command records in a score file's sidecar (`provenance=` of ScoreWriter / write_scores).

    detector: the file that made the scores (model, calibration, ensemble), recorded with its content hash and
    `kind`; members: the models inside it (`{"name", "path", "hash"}`, more keys allowed), so a report can match the
    scores to a model by content (dfdet.report.artifacts.sidecar_model: the detector's hash, else the hash of a sole
    member); source: what was scored (`{"kind": ...}`); calibration, labels: extra files applied (path + hash); the
    inputs skipped; and the run's provenance under `command`.
    """
    from dfdet.provenance import provenance

    def optional(path: str | os.PathLike | None) -> dict[str, Any] | None:
        return file_record(path, hashes) if path is not None else None

    return {
        "detector": {**file_record(detector, hashes), "kind": kind, "members": [dict(m) for m in members]},
        "calibration": optional(calibration),
        "input": source,
        "labels": optional(labels),
        "skipped": [dict(f) for f in skipped],
        "provenance": provenance(command=command),
    }


def upstream_detector(score_path: str | os.PathLike, hashes: dict[str, str | None] | None = None) -> dict | None:
    """What made an input score file, from its own sidecar (None for stdin, or when it has no valid sidecar): the
    recorded `detector` block (path, hash, kind, members)."""
    if str(score_path) == "-":
        return None
    side = read_sidecar(score_path, file_record(score_path, hashes)["hash"])
    return dict(side["detector"]) if side is not None else None


@contextlib.contextmanager
def _score_file(target: str | os.PathLike, describe: Callable[[Path], dict[str, Any]] | None) -> Iterator[IO[str]]:
    """Open a score output atomically. With `describe` (temp score file -> sidecar document) the sidecar commits right
    after the score file, both atomic; if anything fails neither new file remains, so a score file never stands
    beside a sidecar that does not describe it. Without it, a sidecar left from an earlier run is removed (it
    described the file just replaced)."""
    if str(target) == "-":
        with atomic_open(target, "w") as fh:
            yield fh
        return
    side = sidecar_path(target)
    if describe is None:
        with atomic_open(target, "w") as fh:
            yield fh
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        return
    from dfdet.jsonio import dumps

    committed = False
    try:
        with atomic_path(side) as side_tmp:
            with atomic_path(target) as tmp:
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    yield fh
                side_tmp.write_text(dumps(describe(tmp)) + "\n", encoding="utf-8")
            committed = True
    except BaseException:
        if committed:  # the sidecar could not follow the score file: take both back
            for p in (Path(target), side):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        raise


class ScoreWriter:
    """Writes a score file row by row (header first): for `score` reading paths from stdin, rows appear as they are
    ready. Rows are written in arrival order (`write_scores` sorts a whole table). A file target is atomic (it
    appears only when the block succeeds); `-` writes to stdout and flushes every row.

    columns: header of a `tsv` file: `utt_id`, `score`, then any of path, p_spoof, decision, label and extra names.
    provenance: for a file target, the fields of its `FILE.prov.json` sidecar (a dict, or a function called when the
    file commits, so counts known only at the end can go in); the writer adds the schema, the file's name, content
    hash, row count, format and columns. Ignored for stdout.
    """

    def __init__(
        self,
        target: str | os.PathLike,
        columns: Sequence[str] = ("utt_id", "score"),
        format: str = "tsv",
        provenance: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
    ):
        if format not in FORMATS:
            raise DfdetError(f"unknown score file format {format!r}", f"use one of {', '.join(FORMATS)}")
        cols = list(columns)
        if cols[:2] != ["utt_id", "score"] or len(set(cols)) != len(cols):
            raise DfdetError(f"score columns must start with utt_id, score and be distinct (got {cols})", "fix columns")
        self.target, self.columns, self.format = target, cols, format
        self.provenance = provenance
        self.streaming = str(target) == "-"
        self._stack: contextlib.ExitStack | None = None
        self._fh: IO[str] | None = None
        self._writer: Any = None
        self._seen: set[str] = set()
        self.n_rows = 0

    def __enter__(self) -> ScoreWriter:
        self._stack = contextlib.ExitStack()
        describe = self._sidecar if self.provenance is not None else None
        self._fh = self._stack.enter_context(_score_file(self.target, describe))
        if self.format == "tsv":
            self._writer = csv.writer(self._fh, delimiter="\t", lineterminator="\n")
            self._writer.writerow(self.columns)
        elif FORMATS[self.format].header is not None:
            self._fh.write(FORMATS[self.format].header + "\n")
        self._flush()
        return self

    def _sidecar(self, written: Path) -> dict[str, Any]:
        """The sidecar document of the score file just written to the temp path `written`."""
        from dfdet.provenance import file_hash

        fields = self.provenance() if callable(self.provenance) else dict(self.provenance or {})
        scores = {"file": Path(self.target).name, "hash": file_hash(written), "rows": self.n_rows}
        scores.update(format=self.format, columns=self.columns if self.format == "tsv" else None)
        return {"schema_version": SIDECAR_SCHEMA_VERSION, "kind": "scores", "scores": scores, **fields}

    def _flush(self) -> None:
        if self.streaming and self._fh is not None:
            self._fh.flush()

    def write(
        self,
        utt_id: str,
        score: float,
        path: str | None = None,
        p_spoof: float | None = None,
        decision: Any = None,
        label: Any = None,
        **extra: Any,
    ) -> None:
        """One row; unknown optional values are written empty. Duplicate ids and NaN scores are refused."""
        if self._fh is None:
            raise RuntimeError("ScoreWriter.write outside its `with` block")
        utt_id = str(utt_id)
        if not utt_id:
            raise DfdetError("empty utt_id in a score row", "give every utterance an id")
        if utt_id in self._seen:
            raise DfdetError(f"duplicate utt_id {utt_id!r} in score output", "each utterance must appear once")
        if math.isnan(float(score)):
            raise DfdetError(f"{utt_id}: score is NaN", "fix the scorer or skip that input")
        self._seen.add(utt_id)
        if self.format == "tsv":
            values = {"utt_id": utt_id, "score": format_score(score), "path": "" if path is None else str(path)}
            values["p_spoof"] = "" if p_spoof is None else format_p(p_spoof)
            values["decision"], values["label"] = _word(decision), _word(label)
            values.update({k: "" if v is None else str(v) for k, v in extra.items()})
            self._writer.writerow([values.get(c, "") for c in self.columns])
        else:
            self._fh.write(FORMATS[self.format].row(utt_id, score, label, extra))
        self.n_rows += 1
        self._flush()

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._stack is not None
        self._fh = None
        return bool(self._stack.__exit__(exc_type, exc, tb))


def write_scores(
    target: str | os.PathLike,
    table: ScoreTable,
    format: str = "tsv",
    provenance: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Write `table` sorted by utt_id, atomically (`-` = stdout); with `provenance`, a file target gets its
    `FILE.prov.json` sidecar (see ScoreWriter).

    Formats (FORMATS): `tsv` (dfdet score file), `asvspoof5` (alias `asvspoof`: what the ASVspoof 5 evaluation
    package reads, TSV `filename`, `cm-score`), `asvspoof-keys` (its key file: `filename`, `cm-label`),
    `asvspoof2019` (`utt_id system key score`, the 2019/2021 CM score-file layout, `-` where unknown).
    """
    t = table.sorted()
    if format == "asvspoof-keys" and not (t.label != UNKNOWN).all():
        raise DfdetError(f"{int((t.label == UNKNOWN).sum())} utterance(s) have no label", "attach labels first")
    with ScoreWriter(target, t.columns, format, provenance) as w:
        for i, u in enumerate(t.utt_id):
            w.write(
                u,
                t.score[i],
                path=None if t.path is None else t.path[i],
                p_spoof=None if t.p_spoof is None else t.p_spoof[i],
                decision=None if t.decision is None else t.decision[i],
                label=t.label[i],
                **{k: v[i] for k, v in t.extra.items()},
            )


# --------------------------------------------------------------------------------------------------- keys
@dataclass
class KeyTable:
    """Labels (and speaker/system/domain) by utt_id, from a key/protocol file."""

    utt_id: list[str]
    label: np.ndarray
    extra: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""


def _keys_from_lines(name: str, text: str, numeric_labels: bool) -> KeyTable:
    lines = _lines(text)
    if not lines:
        raise InputError(name, "key file is empty", "pass a protocol or key file with utt_id and label")
    head = _header_fields(lines[0][1])
    ids, labels = [], []
    extra: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    if head is not None:  # e.g. the ASVspoof 5 key file `filename cm-label`, or `utt_id label [speaker ...]`
        header, rows = _table_rows(name, text, head[0])
        i_id, i_label = _pick(header, ID_NAMES), _pick(header, LABEL_NAMES)
        if i_id is None or i_label is None:
            raise DfdetError(f"{name}:1: key file needs an id and a label column (header {header})", _KEY_HINT)
        keep = {EXTRA_RENAMES.get(h, h): i for i, h in enumerate(header) if EXTRA_RENAMES.get(h, h) in _KEY_EXTRA}
        for lineno, row in rows:
            _check_id(row[i_id], f"{name}:{lineno}", seen, name, lineno)
            ids.append(row[i_id])
            labels.append(parse_label(row[i_label], numeric=numeric_labels, where=f"{name}:{lineno}: "))
        extra = {k: [row[i] for _, row in rows] for k, i in keep.items()}
    else:  # ASVspoof protocols: `SPEAKER FILE_ID ... SYSTEM KEY ...` (2019: 5 fields; 2021 trial_metadata: more)
        first = lines[0][1].split()
        if len(first) == 2:
            i_id, i_label, i_sys, i_spk = 0, 1, None, None
        else:
            i_label = next((i for i in range(2, len(first)) if first[i].lower() in ("bonafide", "spoof")), None)
            if i_label is None:
                raise DfdetError(f"{name}:{lines[0][0]}: cannot find the bonafide/spoof key column", _KEY_HINT)
            i_id, i_sys, i_spk = 1, i_label - 1, 0
        extra = {"speaker": [], "system": []} if i_sys is not None else {}
        for lineno, line in lines:
            fields = line.split()
            if len(fields) != len(first):
                raise DfdetError(f"{name}:{lineno}: {len(fields)} fields, expected {len(first)}", _KEY_HINT)
            _check_id(fields[i_id], f"{name}:{lineno}", seen, name, lineno)
            ids.append(fields[i_id])
            labels.append(parse_label(fields[i_label], numeric=numeric_labels, where=f"{name}:{lineno}: "))
            if i_sys is not None:
                extra["speaker"].append(fields[i_spk])
                extra["system"].append("" if fields[i_sys] == "-" else fields[i_sys])
    return KeyTable(ids, np.array(labels, dtype=np.int8), extra, name)


_KEY_EXTRA = META_COLUMNS
_KEY_HINT = (
    "pass an ASVspoof protocol/key file (SPEAKER FILE_ID - SYSTEM KEY, trial_metadata.txt, filename/cm-label TSV), "
    "an In-the-Wild meta.csv, or a CSV/TSV with a header holding utt_id (or path) and label"
)


def read_keys(path: str | os.PathLike, numeric_labels: bool = False) -> KeyTable:
    """Labels by utt_id from a key file: the formats `dfdet.protocols.read_labels` knows (ASVspoof 2019 protocol,
    In-the-Wild meta.csv, path/label tables), plus key-only files (ASVspoof 5 `filename cm-label`, ASVspoof 2021
    trial_metadata, `utt_id label` tables)."""
    from dfdet import protocols

    name, text = _read_text(path)
    try:
        kind = protocols.detect_kind(name, text)
    except DfdetError:
        kind = None
    if kind is not None:
        utts = protocols.read_labels(path, kind=kind, numeric_labels=numeric_labels)
        extra = {k: [getattr(u, k) for u in utts] for k in _KEY_EXTRA}
        return KeyTable([u.utt_id for u in utts], np.array([u.label for u in utts], dtype=np.int8), extra, name)
    return _keys_from_lines(name, text, numeric_labels)


def _stem(utt_id: str) -> str:
    return Path(utt_id.replace("\\", "/")).name


def attach_keys(table: ScoreTable, keys: KeyTable) -> tuple[ScoreTable, int]:
    """Fill unknown labels (and missing speaker/system/domain columns) from `keys`, joining by utt_id, then by the
    last path component when that is unambiguous (score ids like `eval/LA_E_1` meet protocol ids `LA_E_1`).

    Returns (new table, number of rows still without a label). A label that contradicts the score file is an error.
    """
    index = {u: i for i, u in enumerate(keys.utt_id)}
    by_stem: dict[str, int | None] = {}
    for i, u in enumerate(keys.utt_id):
        by_stem[_stem(u)] = None if _stem(u) in by_stem else i
    rows = []
    for u in table.utt_id:
        j = index.get(u)
        if j is None:
            j = by_stem.get(_stem(u))
        rows.append(j)
    matched = [j for j in rows if j is not None]
    if not matched:
        raise DfdetError(
            f"{table.source}: no utt_id matches the key file {keys.source} (e.g. {table.utt_id[0]!r} vs "
            f"{keys.utt_id[0]!r})",
            "pass the key file of this set, or score with ids that match it",
        )
    label = table.label.copy()
    for i, j in enumerate(rows):
        if j is None:
            continue
        k = keys.label[j]
        if label[i] != UNKNOWN and k != UNKNOWN and label[i] != k:
            raise DfdetError(
                f"{table.source}: label of {table.utt_id[i]!r} is {label_name(label[i])} but {keys.source} says "
                f"{label_name(k)}",
                "drop --labels or fix one of the files",
            )
        if label[i] == UNKNOWN:
            label[i] = k
    extra = dict(table.extra)
    for name, col in keys.extra.items():
        if name not in extra and any(col):
            extra[name] = ["" if j is None else col[j] for j in rows]
    out = ScoreTable(table.utt_id, table.score, table.path, table.p_spoof, table.decision, label, extra, table.source)
    return out, int((label == UNKNOWN).sum())


def read_threshold(path: str | os.PathLike) -> tuple[float, str]:
    """A decision threshold (bona-fide-positive score scale) and where it came from: a model `.pt` or calibration /
    ensemble JSON (its `threshold`), a labelled score file (its EER threshold: fix the operating point on a dev set,
    apply it to eval), or a text file holding one number."""
    import json

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "threshold file not found", "pass a model, calibration JSON or labelled score file")
    if p.suffix.lower() == ".json":
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(p, f"not valid JSON ({exc})", "pass a calibration or ensemble JSON") from exc
        thr = obj.get("threshold") if isinstance(obj, dict) else None
        if isinstance(thr, dict):
            thr = thr.get("value")
        if not isinstance(thr, (int, float)) or isinstance(thr, bool):
            raise InputError(p, "has no numeric 'threshold'", "fit one with `dfdet calibrate --threshold ...`")
        return float(thr), f"{p} (threshold)"
    if p.suffix.lower() in (".pt", ".pth"):
        import torch

        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a dfdet model"
            raise InputError(p, f"cannot load model file ({exc})", "pass a model written by `dfdet train`") from exc
        thr = obj.get("threshold") if isinstance(obj, dict) else None
        if thr is None:
            raise InputError(p, "model file has no threshold", "pass --threshold X instead")
        return float(thr), f"{p} (model threshold)"
    _, text = _read_text(p)
    lines = _lines(text)
    if len(lines) == 1 and _is_number(lines[0][1].strip()):
        return _parse_score(lines[0][1].strip(), f"{p}:{lines[0][0]}", "threshold"), str(p)
    from dfdet.metrics import eer

    table = read_scores(p)
    known = table.label != UNKNOWN
    if not known.any():
        raise InputError(p, "score file has no labels to fix an EER threshold on", "pass a labelled (dev) score file")
    _, thr = eer(table.score[known], table.label[known])
    return float(thr), f"{p} (EER threshold)"
