"""Label files -> utterances: ASVspoof 2019 CM and ASVspoof 5 protocols, In-the-Wild `meta.csv`, generic CSV/TSV tables.

Reading a label file never touches the audio (a corpus can be described before it is unpacked, and featurize reports
missing audio per file). Every error names the file and line and says how to fix it.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from dfdet.errors import DfdetError, UsageError
from dfdet.inputs import (
    Utterance,
    _abspath,
    _RealKeys,
    _supported_hint,
    check_unique_ids,
    common_root,
    ids_relative_to,
    list_audio_paths,
    utterances_from_paths,
)
from dfdet.labels import parse_label

__all__ = ["LABEL_KINDS", "Utterance", "detect_kind", "read_labels"]

LABEL_KINDS: tuple[str, ...] = ("auto", "asvspoof2019", "asvspoof5", "itw", "realspeech", "table")
PARTITIONS: tuple[str, ...] = ("train", "dev", "eval")
_ID_PARTITION = {"T": "train", "D": "dev", "E": "eval"}  # LA_T_1138215 -> train

# Column names accepted in generic tables, first match wins.
PATH_COLUMNS = ("path", "file", "filename", "audio", "audio_path", "wav")
LABEL_COLUMNS = ("label", "key", "class")
UTT_COLUMNS = ("utt_id", "uttid", "utt", "id")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "spk")
SYSTEM_COLUMNS = ("system", "system_id", "attack", "attack_id")
DOMAIN_COLUMNS = ("domain",)
FAMILY_COLUMNS = ("family",)
COLLECTION_COLUMNS = ("collection", "source_repo")
AUGMENT_COLUMNS = ("augment",)
# The shared realspeech corpus's labels.csv (its README): path,label,system,family,source_repo,commit,speaker,
# sample_rate,duration_s. Read as a table whose origin columns are required; sample_rate and duration_s are left out on
# purpose (they correlate with the label: a detector must not see them).
REALSPEECH_COLUMNS = ("path", "label", "system", "family", "source_repo")

_FORMATS_HINT = (
    "expected an ASVspoof 2019 CM protocol (SPEAKER FILE_ID - SYSTEM KEY), an ASVspoof 5 protocol (SPEAKER_ID "
    "FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP), an In-the-Wild meta.csv "
    "(file,speaker,label) or a CSV/TSV with a header containing path (or file) and label"
)


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise DfdetError(f"{path}: is a directory, not a label file", "pass the protocol / meta.csv / table file")
    if not path.exists():
        raise DfdetError(f"{path}: label file not found", "check the --labels path")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise DfdetError(f"{path}: label file is not UTF-8 text ({exc.reason})", "save it as UTF-8") from exc
    except OSError as exc:
        raise DfdetError(
            f"{path}: cannot read label file ({exc.strerror or exc})", "check the file permissions"
        ) from exc


def _first_line(text: str) -> tuple[int, str] | None:
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            return lineno, line
    return None


def _delimiter(line: str, path: Path) -> str:
    if "\t" in line or path.suffix.lower() == ".tsv":
        return "\t"
    return ","


def _header(line: str, delim: str) -> list[str]:
    return [c.strip().lower() for c in next(csv.reader([line], delimiter=delim))]


def _pick(header: list[str], names: Iterable[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _is_asvspoof_line(line: str) -> bool:
    fields = line.split()
    return len(fields) == 5 and fields[4].lower() in ("bonafide", "spoof")


def _is_asvspoof5_line(line: str) -> bool:
    fields = line.split()
    layout = _ASVSPOOF5_LAYOUTS.get(len(fields))
    return layout is not None and fields[layout["key"]].lower() in ("bonafide", "spoof")


def detect_kind(path: str | os.PathLike, text: str | None = None) -> str:
    """Which label format a file holds, from its first line: `asvspoof2019`, `asvspoof5`, `itw` or `table`."""
    p = Path(path)
    text = _read_text(p) if text is None else text
    first = _first_line(text)
    if first is None:
        raise DfdetError(f"{p}: label file is empty", _FORMATS_HINT)
    _, line = first
    if _is_asvspoof_line(line):
        return "asvspoof2019"
    if _is_asvspoof5_line(line):
        return "asvspoof5"
    header = _header(line, _delimiter(line, p))
    if sorted(header) == ["file", "label", "speaker"]:
        return "itw"
    if all(c in header for c in REALSPEECH_COLUMNS):
        return "realspeech"
    if _pick(header, PATH_COLUMNS) is not None and _pick(header, LABEL_COLUMNS) is not None:
        return "table"
    raise DfdetError(f"{p}: cannot tell the label file format from its first line {line.strip()[:80]!r}", _FORMATS_HINT)


def _check_duplicate(seen: dict[str, int], utt_id: str, where: str, lineno: int) -> None:
    if utt_id in seen:
        raise DfdetError(
            f"{where}:{lineno}: duplicate utt_id {utt_id!r} (first on line {seen[utt_id]})",
            "each utterance must appear once; remove or rename the duplicate row",
        )
    seen[utt_id] = lineno


def _sorted(utts: list[Utterance], p: Path) -> list[Utterance]:
    if not utts:
        raise DfdetError(f"{p}: label file has no utterances", _FORMATS_HINT)
    return sorted(utts, key=lambda u: u.utt_id)


# --- ASVspoof 2019 --------------------------------------------------------------------------------------------------


def _protocol_partition(p: Path) -> str | None:
    name = p.name.lower()
    for part in PARTITIONS:
        if f".{part}." in name or name.startswith(f"{part}.") or f"_{part}." in name:
            return part
    return None


class _AsvspoofAudio:
    """Finds `<root>/ASVspoof2019_<LA|PA>_<part>/flac/ID.flac`, tolerating a root that is the partition or flac dir."""

    def __init__(self, root: Path, access: str) -> None:
        self.root = root
        self.access = access
        self._dirs: dict[str, str] = {}

    def flac_dir(self, part: str) -> str:
        if part not in self._dirs:
            official = self.root / f"ASVspoof2019_{self.access}_{part}" / "flac"
            candidates = [official, self.root / "flac"]
            if self.root.name == "flac":
                candidates.append(self.root)
            self._dirs[part] = str(next((d for d in candidates if d.is_dir()), official))
        return self._dirs[part]

    def path(self, file_id: str, part: str | None) -> str:
        if part is None:
            fields = file_id.split("_")
            part = _ID_PARTITION.get(fields[1]) if len(fields) >= 3 else None
        if part is not None:
            return f"{self.flac_dir(part)}/{file_id}.flac"
        hits = [f"{self.flac_dir(q)}/{file_id}.flac" for q in PARTITIONS]
        return next((h for h in hits if os.path.exists(h)), hits[0])


def _read_asvspoof(p: Path, text: str, numeric: bool, audio_root: Path | None) -> list[Utterance]:
    root = audio_root if audio_root is not None else Path(_abspath(p)).parent.parent
    access = "PA" if ".pa." in p.name.lower() else "LA"
    finder = _AsvspoofAudio(Path(_abspath(root)), access)
    part = _protocol_partition(p)
    seen: dict[str, int] = {}
    utts: list[Utterance] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 5:
            raise DfdetError(
                f"{p}:{lineno}: expected 5 fields 'SPEAKER FILE_ID - SYSTEM KEY', got {len(fields)}",
                "fix the line, or pass --label-kind if this is not an ASVspoof 2019 CM protocol",
            )
        speaker, file_id, _, system, key = fields
        label = parse_label(key, numeric=numeric, where=f"{p}:{lineno}: ")
        _check_duplicate(seen, file_id, str(p), lineno)
        path = finder.path(file_id, part)
        utts.append(Utterance(file_id, path, label, speaker, "" if system == "-" else system))
    return _sorted(utts, p)


# --- ASVspoof 5 -----------------------------------------------------------------------------------------------------

# Column positions of the two protocol forms (space-separated, `-` = not applicable):
# track 1 and train (ASVspoof5.{train,dev.track_1,eval.track_1}.tsv):
#   SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP
# phase 1 (ASVspoof5.{train,dev}.metadata.txt): SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC ATTACK_LABEL KEY
_ASVSPOOF5_LAYOUTS: dict[int, dict[str, int]] = {
    10: {"speaker": 0, "file": 1, "gender": 2, "codec": 3, "codec_q": 4, "attack": 6, "system": 7, "key": 8},
    6: {"speaker": 0, "file": 1, "gender": 2, "codec": 3, "system": 4, "key": 5},
}
_ASVSPOOF5_FORMS = {
    10: "SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP",
    6: "SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC ATTACK_LABEL KEY",
}
# Audio of each partition, by the file id's prefix (T_0000000000 -> flac_T/); eval also as unpacked without _eval.
_ASVSPOOF5_DIRS = {"T": ("flac_T",), "D": ("flac_D",), "E": ("flac_E_eval", "flac_E")}
_PART_PREFIX = {"train": "T", "dev": "D", "eval": "E"}
_NOT_GIVEN = ("-", "bonafide")  # ATTACK_LABEL of bona fide rows is `bonafide`; other columns use `-`


class _Asvspoof5Audio:
    """Finds `<root>/flac_T/ID.flac` (flac_D, flac_E_eval); the root defaults to the protocol's directory when the
    flac_* folders sit beside the protocol, else its parent (the release's ASVspoof5_protocols/ sub-folder)."""

    def __init__(self, protocol: Path, audio_root: Path | None) -> None:
        if audio_root is not None:
            self.roots = [Path(_abspath(audio_root))]
        else:
            here = Path(_abspath(protocol)).parent
            self.roots = [here, here.parent]
        self._dirs: dict[str, str] = {}

    def flac_dir(self, prefix: str) -> str:
        if prefix not in self._dirs:
            names = _ASVSPOOF5_DIRS.get(prefix, (f"flac_{prefix}",))
            candidates = [root / name for root in self.roots for name in names]
            default = self.roots[-1] / names[0]
            self._dirs[prefix] = str(next((d for d in candidates if d.is_dir()), default))
        return self._dirs[prefix]

    def path(self, file_id: str, part: str | None) -> str:
        head = file_id.split("_", 1)[0]
        prefix = head if head in _ASVSPOOF5_DIRS or part is None else _PART_PREFIX[part]
        return f"{self.flac_dir(prefix)}/{file_id}.flac"


def _read_asvspoof5(p: Path, text: str, numeric: bool, audio_root: Path | None) -> list[Utterance]:
    finder = _Asvspoof5Audio(p, audio_root)
    part = _protocol_partition(p)
    seen: dict[str, int] = {}
    utts: list[Utterance] = []
    width: int | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if width is None:
            width = len(fields)
            if width not in _ASVSPOOF5_LAYOUTS:
                raise DfdetError(
                    f"{p}:{lineno}: expected an ASVspoof 5 protocol line of 10 (or 6) fields, got {width}",
                    f"write '{_ASVSPOOF5_FORMS[10]}', or pass --label-kind if this is another format",
                )
        if len(fields) != width:
            raise DfdetError(
                f"{p}:{lineno}: expected {width} fields '{_ASVSPOOF5_FORMS[width]}', got {len(fields)}",
                "fix the line (every line of a protocol has the same columns)",
            )
        col = {name: fields[i] for name, i in _ASVSPOOF5_LAYOUTS[width].items()}
        label = parse_label(col["key"], numeric=numeric, where=f"{p}:{lineno}: KEY: ")
        _check_duplicate(seen, col["file"], str(p), lineno)
        # interned: speakers, codecs, attacks repeat on every line (a 1 M-line protocol is held by every shard task)
        meta = {
            k: ("" if v.lower() in _NOT_GIVEN else sys.intern(v)) for k, v in col.items() if k not in ("file", "key")
        }
        utts.append(Utterance(col["file"], finder.path(col["file"], part), label, **meta))
    return _sorted(utts, p)


# --- CSV / TSV tables (In-the-Wild meta.csv is one) ------------------------------------------------------------------


def _rows(p: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased) and data rows with their line numbers; blank rows skipped, ragged rows rejected."""
    first = _first_line(text)
    if first is None:
        raise DfdetError(f"{p}: label file is empty", _FORMATS_HINT)
    delim = _delimiter(first[1], p)
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if header is None:
                if row[0].lstrip().startswith("#"):
                    continue
                header = [c.strip().lower() for c in row]
                continue
            if len(row) != len(header):
                sep = "tab" if delim == "\t" else "comma"
                raise DfdetError(
                    f"{p}:{reader.line_num}: malformed row: {len(row)} fields, header has {len(header)}",
                    f"use one {sep}-separated value per header column (quote values that contain the separator)",
                )
            rows.append((reader.line_num, [c.strip() for c in row]))
    except csv.Error as exc:
        raise DfdetError(f"{p}:{reader.line_num}: malformed CSV ({exc})", "fix the quoting on that line") from exc
    assert header is not None
    return header, rows


def _require(p: Path, header: list[str], names: tuple[str, ...], what: str) -> int:
    idx = _pick(header, names)
    if idx is None:
        raise DfdetError(f"{p}: no {what} column in header {','.join(header)}", f"name one column {' or '.join(names)}")
    return idx


def _read_itw(p: Path, text: str, numeric: bool) -> list[Utterance]:
    header, rows = _rows(p, text)
    i_file = _require(p, header, ("file",), "file")
    i_label = _require(p, header, ("label",), "label")
    i_spk = _require(p, header, ("speaker",), "speaker")
    base = os.path.dirname(_abspath(p))
    seen: dict[str, int] = {}
    utts: list[Utterance] = []
    for lineno, row in rows:
        name = row[i_file]
        if not name:
            raise DfdetError(f"{p}:{lineno}: empty file name", "fill in the file column")
        label = parse_label(row[i_label], numeric=numeric, where=f"{p}:{lineno}: ")
        path = _abspath(name, base)
        utt_id = ids_relative_to([path], base)[0] if not os.path.isabs(name) else Path(name).stem
        _check_duplicate(seen, utt_id, str(p), lineno)
        utts.append(Utterance(utt_id, path, label, row[i_spk], ""))
    return _sorted(utts, p)


def _check_realspeech_row(p: Path, lineno: int, row: list[str], header: list[str]) -> None:
    """A realspeech row names its system and family, and the family agrees with the label."""
    col = {name: row[header.index(name)] for name in REALSPEECH_COLUMNS}
    for name in ("system", "family", "source_repo"):
        if not col[name]:
            raise DfdetError(f"{p}:{lineno}: empty {name}", f"fill in the {name} column (see the corpus README)")
    bona = col["label"].lower() == "bonafide"
    if bona != (col["family"].lower() == "bonafide"):
        raise DfdetError(
            f"{p}:{lineno}: label {col['label']!r} disagrees with family {col['family']!r}",
            "family is 'bonafide' exactly for bona fide rows (tts, vc, vocoder for spoofs)",
        )


def _read_table(p: Path, text: str, numeric: bool, realspeech: bool = False) -> list[Utterance]:
    header, rows = _rows(p, text)
    i_path = _require(p, header, PATH_COLUMNS, "path")
    i_label = _require(p, header, LABEL_COLUMNS, "label")
    if realspeech:
        for name in REALSPEECH_COLUMNS:
            _require(p, header, (name,), name)
    i_utt, i_spk = _pick(header, UTT_COLUMNS), _pick(header, SPEAKER_COLUMNS)
    i_sys, i_dom = _pick(header, SYSTEM_COLUMNS), _pick(header, DOMAIN_COLUMNS)
    origin = {
        "family": _pick(header, FAMILY_COLUMNS),
        "collection": _pick(header, COLLECTION_COLUMNS),
        "augment": _pick(header, AUGMENT_COLUMNS),
    }
    base = os.path.dirname(_abspath(p))
    for lineno, row in rows:
        if not row[i_path]:
            raise DfdetError(f"{p}:{lineno}: empty path", f"fill in the {header[i_path]} column")
        if realspeech:
            parse_label(row[i_label], numeric=False, where=f"{p}:{lineno}: ")
            _check_realspeech_row(p, lineno, row, header)
    paths = [_abspath(row[i_path], base) for _, row in rows]
    # Default ids: relative to the table's directory, or to the paths' common root when some lie outside it.
    inside = all(os.path.commonpath([base, q]) == base for q in paths)
    default_ids = ids_relative_to(paths, base if inside or not paths else common_root(paths))
    seen: dict[str, int] = {}
    utts: list[Utterance] = []
    for (lineno, row), path, default_id in zip(rows, paths, default_ids, strict=True):
        label = parse_label(row[i_label], numeric=numeric, where=f"{p}:{lineno}: ")
        utt_id = row[i_utt] if i_utt is not None and row[i_utt] else default_id
        _check_duplicate(seen, utt_id, str(p), lineno)
        utts.append(
            Utterance(
                utt_id,
                path,
                label,
                row[i_spk] if i_spk is not None else "",
                row[i_sys] if i_sys is not None else "",
                row[i_dom] if i_dom is not None else "",
                **{name: sys.intern(row[i]) if i is not None else "" for name, i in origin.items()},
            )
        )
    return _sorted(utts, p)


def read_labels(
    path: str | os.PathLike,
    kind: str = "auto",
    numeric_labels: bool = False,
    audio_root: str | os.PathLike | None = None,
) -> list[Utterance]:
    """Utterances (id, audio path, label, speaker, system, domain) from a label file, sorted by utt_id.

    kind: auto | asvspoof2019 | asvspoof5 | itw | realspeech | table. Tables also give family, collection
    (or source_repo) and augment when they have such columns; realspeech (the shared corpus's labels.csv) requires
    system, family and source_repo on every row. `audio_root` (ASVspoof only) is the directory holding
    `ASVspoof2019_LA_{train,dev,eval}/` (default: the protocol directory's parent, the LA root) or ASVspoof 5's
    `flac_T/`, `flac_D/`, `flac_E_eval/` (default: the protocol's directory if they are there, else its parent).
    ASVspoof 5 protocols also give gender, codec, codec quality and attack tag per utterance (ATTACK_LABEL is the
    system). Numeric labels (0 bona fide, 1 spoof) are accepted only with `numeric_labels=True`.
    """
    if kind not in LABEL_KINDS:
        raise UsageError(f"unknown label kind {kind!r}", f"use one of {', '.join(LABEL_KINDS)}")
    p = Path(path)
    text = _read_text(p)
    if kind == "auto":
        kind = detect_kind(p, text)
    root = Path(audio_root) if audio_root is not None else None
    if kind == "asvspoof2019":
        return _read_asvspoof(p, text, numeric_labels, root)
    if kind == "asvspoof5":
        return _read_asvspoof5(p, text, numeric_labels, root)
    if kind == "itw":
        return _read_itw(p, text, numeric_labels)
    return _read_table(p, text, numeric_labels, realspeech=kind == "realspeech")


# --------------------------------------------------------------------------------------------------- resolving
def _join(audio: list[Path], labelled: list[Utterance], label_file: str) -> list[Utterance]:
    """Attach label-file metadata to listed audio: by resolved path, then by utt_id, then by file stem."""
    keys = _RealKeys()  # directory symlinks resolved on both sides; label files never stat each audio file
    by_path = {keys.key(_abspath(u.path), False): u for u in labelled}
    by_id = {u.utt_id: u for u in labelled}
    by_stem: dict[str, Utterance | None] = {}
    for u in labelled:
        stem = os.path.splitext(os.path.basename(u.path))[0]
        by_stem[stem] = None if stem in by_stem else u  # ambiguous stems never match
    plain = utterances_from_paths(audio)
    out: list[Utterance] = []
    missing: list[str] = []
    for a in plain:
        stem = os.path.splitext(os.path.basename(a.path))[0]
        hit = by_path.get(keys.key(a.path, False)) or by_id.get(a.utt_id) or by_stem.get(stem)
        if hit is None:
            missing.append(a.path)
            continue
        out.append(hit.at(a.path))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DfdetError(
            f"{missing[0]}{more}: not in label file {label_file}",
            "add them to the label file, pass only labelled audio, or drop --labels",
        )
    check_unique_ids(out, where=f"{label_file}: ")
    return sorted(out, key=lambda u: u.utt_id)


def resolve_utterances(
    args: Sequence[str | os.PathLike],
    labels: str | os.PathLike | None = None,
    label_kind: str = "auto",
    numeric_labels: bool = False,
    stdin: TextIO | None = None,
    audio_root: str | os.PathLike | None = None,
    missing_ok: bool = False,
) -> list[Utterance]:
    """The utterances a command works on, sorted by utt_id.

    Audio args only: unlabelled utterances. A label file only: its utterances (audio need not exist yet). Both: the
    listed audio, each joined with its label-file row (by resolved path, then utt_id, then stem); listed audio missing
    from the label file is an error, label rows without listed audio are left out.
    """
    if not args and labels is None:
        raise DfdetError("no inputs", "pass audio files, directories, list files, - (stdin) or --labels FILE")
    labelled = (
        read_labels(labels, kind=label_kind, numeric_labels=numeric_labels, audio_root=audio_root)
        if labels is not None
        else None
    )
    if not args:
        assert labelled is not None
        return sorted(labelled, key=lambda u: u.utt_id)
    audio = list_audio_paths(args, stdin=stdin, missing_ok=missing_ok)
    if not audio:
        raise DfdetError(f"no audio files found in {' '.join(map(str, args))}", f"inputs must be {_supported_hint()}")
    if labelled is None:
        return utterances_from_paths(audio)
    return _join(audio, labelled, str(labels))
