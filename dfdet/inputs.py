"""Input arguments -> a sorted, de-duplicated list of audio files and utterances with unique ids.

An argument may be an audio file, a directory (walked recursively), a list file (one path per line) or `-` (paths on
stdin), so `dfdet featurize DIR` and `find DIR -name '*.wav' | dfdet featurize -` see the same utterances.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from dfdet.audio import AUDIO_EXTENSIONS, is_audio_path
from dfdet.console import verbose
from dfdet.errors import DfdetError

LIST_EXTENSIONS: tuple[str, ...] = (".lst", ".txt", ".scp", ".list")
# Per-utterance string metadata carried from label files through the store and score files (evaluate --by NAME).
# The last four come from ASVspoof 5 protocols: codec (C01..C11), codec quality, attack tag (AC1..), speaker gender.
CONDITION_COLUMNS: tuple[str, ...] = ("codec", "codec_q", "attack", "gender")
# Where a clip came from, for grouped cross-validation (crossval --group): the generator family (tts, vc, vocoder,
# bonafide), the collection it was taken from (a demo page, a corpus), and the augmentation that made an augmented
# copy (empty for an original clip).
ORIGIN_COLUMNS: tuple[str, ...] = ("family", "collection", "augment")
META_COLUMNS: tuple[str, ...] = ("speaker", "system", "domain", *CONDITION_COLUMNS, *ORIGIN_COLUMNS)


@dataclass(slots=True)
class Utterance:
    """One audio input and what is known about it; label 0 bona fide, 1 spoof, -1 unknown. Slots: a 1 M-line
    protocol is held by every featurize task, so the per-utterance size matters."""

    utt_id: str
    path: str
    label: int = -1
    speaker: str = ""
    system: str = ""
    domain: str = ""
    codec: str = ""
    codec_q: str = ""
    attack: str = ""
    gender: str = ""
    family: str = ""
    collection: str = ""
    augment: str = ""

    def meta(self) -> dict[str, str]:
        """The META_COLUMNS values by name."""
        return {name: getattr(self, name) for name in META_COLUMNS}

    def at(self, path: str) -> Utterance:
        """The same utterance (id, label, metadata) read from another path."""
        return replace(self, path=path)


def _supported_hint() -> str:
    return f"audio: {' '.join(AUDIO_EXTENSIONS)}; list files: {' '.join(LIST_EXTENSIONS)}; or a directory, or -"


def _abspath(p: str | os.PathLike, base: str | None = None) -> str:
    """Absolute, normalised, symlinks kept (so ids follow the layout the user sees)."""
    p = os.path.expanduser(os.fspath(p))
    if base is not None and not os.path.isabs(p):
        p = os.path.join(base, p)
    if os.path.isabs(p) and "/." not in p and "//" not in p and not p.endswith("/"):
        return p  # already normal: skip normpath (this runs once per file of a 100k-file corpus)
    return os.path.abspath(p)


class _RealKeys:
    """Symlink-resolved keys for de-duplication, resolving each directory once instead of every file."""

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def key(self, path: str, is_link: bool | None = None) -> str:
        """realpath(path); `is_link=False` (known from scandir) resolves only the directory (cached)."""
        if is_link is None:
            is_link = os.path.islink(path)
        if is_link:
            return os.path.realpath(path)
        head, _, name = path.rpartition("/")
        real = self._dirs.get(head)
        if real is None:
            real = self._dirs[head] = os.path.realpath(head or "/")
        return f"{real.rstrip('/')}/{name}"


def _walk(root: str, _visited: set[str] | None = None, ignored: list[str] | None = None) -> Iterator[tuple[str, bool]]:
    """(path, is_symlink) of audio files under `root`, recursively, in sorted order; hidden entries skipped.

    Symlinked directories are followed (like an explicit directory argument), each real directory once, so a link
    back to an ancestor cannot loop.
    """
    visited = set() if _visited is None else _visited
    real = os.path.realpath(root)
    if real in visited:
        return
    visited.add(real)
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DfdetError(f"{root}: cannot list directory ({exc.strerror or exc})", "check its permissions") from exc
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir():
            yield from _walk(e.path, visited, ignored)
        elif is_audio_path(e.name):
            yield e.path, e.is_symlink()
        elif ignored is not None:
            ignored.append(e.path)


def _read_list_lines(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n").strip()
        if line and not line.startswith("#"):
            yield lineno, line


def _looks_like_protocol(line: str) -> bool:
    fields = line.split()
    return len(fields) == 5 and fields[4].lower() in ("bonafide", "spoof")


def _expand_entry(path: str, where: str, missing_ok: bool, out: list[tuple[str, bool | None]]) -> None:
    """One path from a list file or stdin: an audio file or a directory (no nested list files)."""
    if os.path.isdir(path):
        out.extend(_walk(path))
    elif os.path.exists(path):
        if not is_audio_path(path):
            raise DfdetError(f"{where}: {path}: not a supported audio file", f"list audio files ({_supported_hint()})")
        out.append((path, None))
    elif missing_ok:
        out.append((path, False))  # decoding reports it per file (e.g. under --skip-bad)
    else:
        fix = "fix the path (relative to the list file; stdin: to cwd)"
        if " " in path or "\t" in path:
            fix += "; list files hold one path per line, not Kaldi-style 'ID PATH' pairs"
        raise DfdetError(f"{where}: {path}: no such file", fix)


def list_audio_paths(
    args: Sequence[str | os.PathLike], stdin: TextIO | None = None, missing_ok: bool = False
) -> list[Path]:
    """Expand input arguments into sorted, de-duplicated absolute audio paths.

    `missing_ok=True` passes nonexistent entries of list files / stdin through (so a per-file error can be reported
    under --skip-bad); explicit arguments must always exist.
    """
    found: list[tuple[str, bool | None]] = []
    for arg in args:
        s = os.fspath(arg)
        if s == "-":
            stream = stdin if stdin is not None else sys.stdin
            cwd = os.getcwd()
            for lineno, line in _read_list_lines(stream):
                _expand_entry(_abspath(line, cwd), f"stdin line {lineno}", missing_ok, found)
            continue
        path = _abspath(s)
        if os.path.isdir(path):
            ignored: list[str] = []
            found.extend(_walk(path, ignored=ignored))
            if ignored:
                verbose(f"{s}: ignored {len(ignored)} non-audio file(s), e.g. {ignored[0]}")
        elif not os.path.exists(path):
            raise DfdetError(f"{s}: no such file or directory", "check the path")
        elif is_audio_path(path):
            found.append((path, None))
        elif os.path.splitext(path)[1].lower() in LIST_EXTENSIONS:
            base = os.path.dirname(path)
            try:
                with open(path, encoding="utf-8-sig") as fh:
                    lines = list(_read_list_lines(fh))
            except (OSError, UnicodeDecodeError) as exc:
                raise DfdetError(
                    f"{s}: cannot read list file ({exc})", "pass a UTF-8 text file, one path per line"
                ) from exc
            if lines and _looks_like_protocol(lines[0][1]):
                raise DfdetError(
                    f"{s}: looks like an ASVspoof CM protocol, not a list of audio paths",
                    "pass it as the label file (--labels); its audio is found from it",
                )
            for lineno, line in lines:
                _expand_entry(_abspath(line, base), f"{s}:{lineno}", missing_ok, found)
        else:
            ext = os.path.splitext(path)[1] or "(no extension)"
            hint = "; label tables (.csv/.tsv) go to --labels" if ext.lower() in (".csv", ".tsv") else ""
            raise DfdetError(f"{s}: unsupported file type {ext}", f"pass {_supported_hint()}{hint}")
    keys = _RealKeys()
    seen: set[str] = set()
    unique: list[str] = []
    for p, is_link in sorted(found, key=lambda f: f[0]):
        key = keys.key(p, is_link)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return [Path(p) for p in unique]


def _strip_ext(rel: str) -> str:
    stem, dot, ext = rel.rpartition(".")
    return stem if dot and "/" not in ext and stem and not stem.endswith("/") else rel


def _common_root_abs(abspaths: Sequence[str]) -> str:
    if not abspaths:
        return os.getcwd()
    # Unique directories with a trailing "/": the lexicographic min and max then bound the common directory.
    dirs = {a.rpartition("/")[0] + "/" for a in abspaths}
    return os.path.commonpath([min(dirs), max(dirs)])


def _ids_abs(abspaths: Sequence[str], root: str) -> list[str]:
    prefix = root.rstrip("/") + "/"
    n = len(prefix)
    return [_strip_ext(a[n:] if a.startswith(prefix) else os.path.relpath(a, root)) for a in abspaths]


def common_root(paths: Sequence[str | os.PathLike]) -> str:
    """The deepest directory containing every path (a single file's own directory)."""
    return _common_root_abs([_abspath(p) for p in paths])


def ids_relative_to(paths: Sequence[str | os.PathLike], root: str | os.PathLike) -> list[str]:
    """utt_ids: each path relative to `root`, without extension, `/`-separated."""
    return _ids_abs([_abspath(p) for p in paths], _abspath(root))


def check_unique_ids(utts: Sequence[Utterance], where: str = "") -> None:
    """Raise DfdetError naming both paths of the first duplicated utt_id."""
    first: dict[str, str] = {}
    for u in utts:
        if u.utt_id in first:
            raise DfdetError(
                f"{where}duplicate utt_id {u.utt_id!r}: {first[u.utt_id]} and {u.path}",
                "every utterance needs a unique id; rename or remove one of the files",
            )
        first[u.utt_id] = u.path


def utterances_from_paths(paths: Sequence[str | os.PathLike]) -> list[Utterance]:
    """Unlabelled utterances, utt_id = path relative to the common root without extension; sorted by utt_id."""
    abspaths = [_abspath(p) for p in paths]
    ids = _ids_abs(abspaths, _common_root_abs(abspaths))
    utts = [Utterance(utt_id=i, path=p) for i, p in zip(ids, abspaths, strict=True)]
    check_unique_ids(utts)
    return sorted(utts, key=lambda u: u.utt_id)
