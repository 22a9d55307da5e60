"""The feature store: HDF5 files written by `featurize` (and the study's `.npz`), read into a FeatureSet.

HDF5 layout (DESIGN.md): `/features` float32 [N, D] chunked, compressed, resizable; per-row `/utt_id`, `/path`,
`/label` (int8: 0 bona fide, 1 spoof, -1 unknown), `/speaker`, `/system`, `/domain`, the corpus conditions `/codec`,
`/codec_q`, `/attack`, `/gender` (ASVspoof 5), the origin `/family`, `/collection`, `/augment` (stores written
before a column existed read it as empty), `/duration`;
`/feature_names`; group boundaries; `/failed` (path, reason) for inputs skipped under --skip-bad; root attributes
with the schema version, recipe name, its configuration JSON and hash, dfdet version, argv and time.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.errors import DfdetError, InputError
from dfdet.features import FeatureGroup
from dfdet.inputs import META_COLUMNS

SCHEMA_VERSION = 1


@dataclass
class FrameRows:
    """Where the frame matrices of a FeatureSet's rows live (frame stores only): row i's frames are row `rows[i]` of
    the store `sources[src[i]]`. Only these indices are held in memory; writing the set copies the frames over."""

    sources: list[str]
    src: np.ndarray  # int64 [N]: index into sources
    rows: np.ndarray  # int64 [N]: row of that store
    n_frames: np.ndarray  # int64 [N]
    names: list[str]  # per-frame dimension names (the recipe's feature names)
    groups: list[FeatureGroup]

    def subset(self, idx: np.ndarray) -> FrameRows:
        return FrameRows(self.sources, self.src[idx], self.rows[idx], self.n_frames[idx], self.names, self.groups)

    @property
    def dim(self) -> int:
        return len(self.names)


@dataclass
class FeatureSet:
    """Features and per-row metadata, whatever file they came from.

    A frame store's set has `frames` (where each row's [T, D] matrix is) and X = the rows' frame statistics.
    """

    X: np.ndarray  # float32 [N, D]
    y: np.ndarray  # int8 [N]: 0 bona fide, 1 spoof, -1 unknown
    utt_id: list[str]
    feature_names: list[str]
    groups: list[FeatureGroup]
    path: list[str] = field(default_factory=list)
    speaker: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    duration: np.ndarray | None = None
    recipe: str | None = None
    recipe_config: dict[str, Any] | None = None
    recipe_hash: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)  # {"utt_id", "path", "reason"} per skipped input
    source: str = ""
    domain: list[str] = field(default_factory=list)  # e.g. "lab" / "wild"; empty strings when unknown
    codec: list[str] = field(default_factory=list)  # ASVspoof 5 conditions (CONDITION_COLUMNS); empty when unknown
    codec_q: list[str] = field(default_factory=list)
    attack: list[str] = field(default_factory=list)
    gender: list[str] = field(default_factory=list)
    family: list[str] = field(default_factory=list)  # ORIGIN_COLUMNS: generator family, collection, augmentation
    collection: list[str] = field(default_factory=list)
    augment: list[str] = field(default_factory=list)
    frames: FrameRows | None = None  # frame stores only

    def __post_init__(self) -> None:
        n = len(self.X)
        for name in ("path", *META_COLUMNS):
            if not getattr(self, name):
                setattr(self, name, [""] * n)
        if self.duration is None:
            self.duration = np.full(n, np.nan)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    def subset(self, index: np.ndarray | list[int]) -> FeatureSet:
        """Rows `index` (integer positions or a boolean mask), metadata kept aligned."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return FeatureSet(
            X=self.X[idx],
            y=self.y[idx],
            utt_id=pick(self.utt_id),
            feature_names=list(self.feature_names),
            groups=list(self.groups),
            path=pick(self.path),
            **{name: pick(getattr(self, name)) for name in META_COLUMNS},
            duration=np.asarray(self.duration)[idx],
            recipe=self.recipe,
            recipe_config=self.recipe_config,
            recipe_hash=self.recipe_hash,
            attrs=dict(self.attrs),
            failures=[],
            source=self.source,
            frames=self.frames.subset(idx) if self.frames is not None else None,
        )


def utterances_of(fs: FeatureSet) -> list:
    """The store's rows as Utterances pointing at their audio (e.g. to re-featurize a split under degradations)."""
    from dfdet.inputs import Utterance

    missing = [u for u, p in zip(fs.utt_id, fs.path, strict=True) if not p]
    if missing:
        raise DfdetError(
            f"{fs.source}: {len(missing)} row(s) do not record their audio path (e.g. {missing[0]})",
            "pass the audio files themselves",
        )
    return [
        Utterance(u, p, int(lab), **{name: getattr(fs, name)[i] for name in META_COLUMNS})
        for i, (u, p, lab) in enumerate(zip(fs.utt_id, fs.path, fs.y, strict=True))
    ]


def groups_from_labels(labels: list[str]) -> list[FeatureGroup]:
    """Group boundaries from per-column group labels (runs of equal labels), as in the study's npz."""
    groups: list[FeatureGroup] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            groups.append(FeatureGroup(str(labels[start]), start, i))
            start = i
    return groups


def read_npz(path: str | Path) -> FeatureSet:
    """The study's artifact format: arrays `X`, `y`, `feature_names` (one group name per column)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"X", "y"} - set(z.files)
            if missing:
                raise InputError(path, f"npz lacks array(s) {sorted(missing)}", "expected arrays X, y, feature_names")
            X = np.asarray(z["X"], dtype=np.float32)
            y = np.asarray(z["y"]).astype(np.int8)
            names = [str(n) for n in z["feature_names"]] if "feature_names" in z.files else []
    except (OSError, ValueError) as e:
        fix = "pass an HDF5 store from `dfdet featurize` or an .npz"
        raise InputError(path, f"not a readable npz file ({e})", fix) from e
    if X.ndim != 2 or len(y) != len(X):
        raise InputError(path, f"X has shape {X.shape} and y {y.shape}", "X must be [N, D] with one label per row")
    if not names:
        names = [f"f{i:03d}" for i in range(X.shape[1])]
    groups = groups_from_labels(names)
    recipe = recipe_config = recipe_hash = None
    feature_names = names
    from dfdet.features import get_recipe
    from dfdet.features import recipe_hash as _rhash

    seed = get_recipe("seed154")
    if [(g.name.lower(), g.stop - g.start) for g in groups] == [
        (g.name.lower(), g.stop - g.start) for g in seed.groups
    ]:
        # The study's matrix is the seed154 recipe: adopt its names so its models score dfdet-featurized audio.
        recipe, recipe_config, recipe_hash = seed.name, seed.config(), _rhash(seed)
        feature_names, groups = list(seed.feature_names), list(seed.groups)
    stem = Path(path).stem
    return FeatureSet(
        X=X,
        y=y,
        utt_id=[f"{stem}_{i:06d}" for i in range(len(X))],
        feature_names=feature_names,
        groups=groups,
        recipe=recipe,
        recipe_config=recipe_config,
        recipe_hash=recipe_hash,
        attrs={"format": "npz"},
        source=str(path),
    )


def load_features(path: str | Path) -> FeatureSet:
    """Read an HDF5 store or a study `.npz` into a FeatureSet (clear errors for anything else)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file", "check the path")
    if p.suffix.lower() == ".npz":
        return read_npz(p)
    return read_hdf5(p)


# ---- HDF5 -----------------------------------------------------------------------------------------------------

ROW_STRINGS = ("utt_id", "path", *META_COLUMNS)
_RESERVED_ATTRS = frozenset(
    {
        "schema_version",
        "format",
        "recipe",
        "recipe_config",
        "recipe_hash",
        "dfdet_version",
        "argv",
        "created",
        "provenance",
        "rows",
        "attrs_json",
    }
)
_MAX_CHUNK_ROWS = 4096


def h5open(path: str | Path, mode: str = "r") -> Any:
    """h5py.File without HDF5's advisory file locking, which fails on many cluster filesystems (NFS, Lustre).

    Safe here: a store is written by one process into a private temp file and only renamed into place when complete.
    """
    import h5py

    try:
        return h5py.File(path, mode, locking=False)
    except TypeError:  # pragma: no cover - h5py < 3.5
        return h5py.File(path, mode)


def _now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class StoreWriter:
    """Stream rows into an HDF5 feature store, atomically.

    Rows go to a temp file beside `path` in chunks of `chunk_rows` (memory stays flat in corpus size); only a
    successful `close()` (or leaving the `with` block without an exception) renames it over `path`. An exception,
    Ctrl-C or a SIGTERM (turned into KeyboardInterrupt by the CLI) deletes the temp file and leaves any old `path`
    untouched.
    """

    def __init__(
        self,
        path: str | Path,
        feature_names: list[str],
        groups: list[FeatureGroup] | tuple = (),
        recipe: str | None = None,
        recipe_config: dict[str, Any] | None = None,
        recipe_hash: str | None = None,
        attrs: dict[str, Any] | None = None,
        chunk_rows: int = 256,
        compression: str | None = "gzip",
    ) -> None:
        if not feature_names:
            raise DfdetError(f"{path}: a feature store needs at least one feature column", "check the recipe")
        if chunk_rows < 1:
            raise DfdetError(f"chunk_rows must be >= 1, got {chunk_rows}", "pass --chunk-rows 256")
        self.path = Path(path)
        self.feature_names = [str(n) for n in feature_names]
        self.groups = list(groups)
        self.recipe, self.recipe_config, self.recipe_hash = recipe, recipe_config, recipe_hash
        self.attrs = {k: v for k, v in (attrs or {}).items() if k not in _RESERVED_ATTRS}
        self.chunk_rows = min(int(chunk_rows), _MAX_CHUNK_ROWS)
        self.compression = compression
        self.rows = 0
        self.failures = 0
        self._buf: list[tuple] = []
        self._stack: contextlib.ExitStack | None = None
        self._file: Any = None
        self._tmp: Path | None = None

    # -- lifecycle --
    def open(self) -> StoreWriter:
        import h5py

        from dfdet import __version__
        from dfdet.atomic import atomic_path
        from dfdet.provenance import provenance

        self._stack = contextlib.ExitStack()
        try:
            tmp = self._tmp = self._stack.enter_context(atomic_path(self.path))
        except OSError as e:
            self._stack = None
            raise DfdetError(
                f"{self.path}: cannot write here ({e.strerror or e})", "check that the directory is writable"
            ) from e
        try:
            f = self._file = h5open(tmp, "w")
            d = len(self.feature_names)
            comp: dict[str, Any] = {"compression": self.compression} if self.compression else {}
            if self.compression == "gzip":
                comp["shuffle"] = True  # byte-shuffled float32 compresses much better
            f.create_dataset(
                "features", shape=(0, d), maxshape=(None, d), dtype=np.float32, chunks=(self.chunk_rows, d), **comp
            )
            sdt = h5py.string_dtype("utf-8")
            for name in ROW_STRINGS:
                f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=sdt, chunks=(self.chunk_rows,), **comp)
            f.create_dataset("label", shape=(0,), maxshape=(None,), dtype=np.int8, chunks=(self.chunk_rows,), **comp)
            f.create_dataset(
                "duration", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(self.chunk_rows,), **comp
            )
            f.create_dataset("feature_names", data=np.array(self.feature_names, dtype=object), dtype=sdt)
            g = f.create_group("groups")
            g.create_dataset("name", data=np.array([x.name for x in self.groups], dtype=object), dtype=sdt)
            g.create_dataset("start", data=np.array([x.start for x in self.groups], dtype=np.int64))
            g.create_dataset("stop", data=np.array([x.stop for x in self.groups], dtype=np.int64))
            fg = f.create_group("failed")
            for name in ("utt_id", "path", "reason"):
                fg.create_dataset(name, shape=(0,), maxshape=(None,), dtype=sdt, chunks=(64,))
            a = f.attrs
            a["schema_version"] = SCHEMA_VERSION
            a["format"] = "dfdet-features"
            a["recipe"] = self.recipe or ""
            a["recipe_config"] = json.dumps(self.recipe_config, sort_keys=True, default=str)
            a["recipe_hash"] = self.recipe_hash or ""
            a["dfdet_version"] = __version__
            a["argv"] = json.dumps(list(sys.argv))
            a["created"] = _now()
            a["provenance"] = json.dumps(provenance(), sort_keys=True, default=str)
            a["attrs_json"] = json.dumps(self.attrs, sort_keys=True, default=str)
            a["rows"] = 0
        except BaseException:
            self.abort()
            raise
        return self

    def __enter__(self) -> StoreWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)

    def close(self) -> None:
        """Flush, finish and rename the temp file over the target."""
        if self._file is None:
            return
        try:
            self.flush()
            self._file.attrs["rows"] = self.rows
            self._file.attrs["attrs_json"] = json.dumps(self.attrs, sort_keys=True, default=str)  # set during the run
            self._file.close()
            self._file = None
        except BaseException:
            self.abort()
            raise
        stack, self._stack = self._stack, None
        stack.close()  # atomic_path: os.replace(tmp, target)

    def abort(self, exc_type=None, exc=None, tb=None) -> None:
        """Drop everything written so far: close and delete the temp file; the target is not touched."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        stack, self._stack = self._stack, None
        if stack is not None:
            if exc is None:
                exc_type, exc = RuntimeError, RuntimeError("store write aborted")
            with contextlib.suppress(BaseException):
                stack.__exit__(exc_type, exc, tb)  # atomic_path deletes the temp file and re-raises: swallow it
        self._buf = []

    # -- rows --
    def append(
        self,
        features: np.ndarray,
        utt_id: str,
        path: str = "",
        label: int = -1,
        speaker: str = "",
        system: str = "",
        domain: str = "",
        duration: float = float("nan"),
        **conditions: str,
    ) -> None:
        """Queue one row; written to disk every `chunk_rows` rows. `conditions`: the other META_COLUMNS by name."""
        vec = np.asarray(features, dtype=np.float32).reshape(-1)
        if vec.shape[0] != len(self.feature_names):
            raise DfdetError(
                f"{utt_id}: feature vector has {vec.shape[0]} values, the store has {len(self.feature_names)} columns",
                "this is a bug in the feature recipe",
            )
        unknown = set(conditions) - set(META_COLUMNS)
        if unknown:
            raise TypeError(f"StoreWriter.append: unknown column(s) {sorted(unknown)}")
        meta = {"speaker": speaker, "system": system, "domain": domain, **conditions}
        strings = (str(utt_id), str(path), *(str(meta.get(name) or "") for name in META_COLUMNS))
        self._buf.append((vec, int(label), duration, strings))
        if len(self._buf) >= self.chunk_rows:
            self.flush()

    def append_rows(self, fs: FeatureSet) -> None:
        """Queue every row of a FeatureSet (metadata aligned)."""
        dur = np.asarray(fs.duration, dtype=np.float64)
        cols = [getattr(fs, name) for name in META_COLUMNS]
        for i in range(len(fs)):
            meta = {name: col[i] for name, col in zip(META_COLUMNS, cols, strict=True)}
            self.append(fs.X[i], fs.utt_id[i], fs.path[i], int(fs.y[i]), duration=dur[i], **meta)

    def add_failure(self, path: str, reason: str, utt_id: str = "") -> None:
        """Record an input skipped under --skip-bad, with why (never silently dropped)."""
        fg = self._file["failed"]
        n = fg["path"].shape[0]
        for name, value in (("utt_id", utt_id), ("path", path), ("reason", reason)):
            fg[name].resize((n + 1,))
            fg[name][n] = str(value)
        self.failures += 1

    def flush(self) -> None:
        if not self._buf:
            return
        f, buf, self._buf = self._file, self._buf, []
        n0, n1 = self.rows, self.rows + len(buf)
        vecs, labels, durations, strings = zip(*buf, strict=True)
        f["features"].resize((n1, len(self.feature_names)))
        f["features"][n0:n1] = np.stack(vecs)
        for name, col in zip(ROW_STRINGS, zip(*strings, strict=True), strict=True):
            f[name].resize((n1,))
            f[name][n0:n1] = np.array(col, dtype=object)
        f["label"].resize((n1,))
        f["label"][n0:n1] = np.array(labels, dtype=np.int8)
        f["duration"].resize((n1,))
        f["duration"][n0:n1] = np.array(durations, dtype=np.float64)
        self.rows = n1


def write_features(path: str | Path, fs: FeatureSet, chunk_rows: int = 1024, **attrs: Any) -> None:
    """Write a whole FeatureSet as an HDF5 store (atomic). Extra keyword `attrs` are kept as JSON in the file."""
    extra = {k: v for k, v in fs.attrs.items() if k not in _RESERVED_ATTRS}
    extra.update(attrs)
    kw: dict[str, Any] = {
        "recipe": fs.recipe,
        "recipe_config": fs.recipe_config,
        "recipe_hash": fs.recipe_hash,
        "attrs": extra,
        "chunk_rows": max(1, min(chunk_rows, len(fs) or 1)),
    }
    fr = fs.frames
    if fr is None:
        w: StoreWriter = StoreWriter(path, fs.feature_names, fs.groups, **kw)
    else:
        w = FrameStoreWriter(path, fr.names, fr.groups, **kw)
    with w, contextlib.ExitStack() as stack:
        if fr is None:
            w.append_rows(fs)
        else:
            readers = [stack.enter_context(FrameReader(src)) for src in fr.sources]
            _copy_frame_rows(w, fs, readers)
        for fail in fs.failures:
            w.add_failure(fail.get("path", ""), fail.get("reason", ""), fail.get("utt_id", ""))


def _copy_frame_rows(w: FrameStoreWriter, fs: FeatureSet, readers: list[FrameReader]) -> None:
    """Append every row of `fs` with its frames read from `readers`; its /features must be those frames' statistics
    (a set whose X was changed would otherwise be written with statistics that no longer match it)."""
    fr = fs.frames
    assert fr is not None
    dur = np.asarray(fs.duration, dtype=np.float64)
    cols = [getattr(fs, name) for name in META_COLUMNS]
    for i in range(len(fs)):
        meta = {name: col[i] for name, col in zip(META_COLUMNS, cols, strict=True)}
        m = readers[int(fr.src[i])].read(int(fr.rows[i]))
        stats = w.append_frames(m, fs.utt_id[i], path=fs.path[i], label=int(fs.y[i]), duration=dur[i], **meta)
        if not np.array_equal(stats, fs.X[i]):
            raise DfdetError(
                f"{fs.utt_id[i]}: the row's features are not the statistics of its frames in {fr.sources[fr.src[i]]}",
                "a frame store's /features cannot be changed apart from its frames; write changed features with "
                "frames=None (a vector store)",
            )


_STORE_FIX = "pass a store written by `dfdet featurize` (or a study .npz)"


def _open_store(p: Path) -> Any:
    """Open a dfdet HDF5 store for reading after checking that it is one (clear errors for anything else)."""
    import h5py

    if not p.is_file():
        raise InputError(p, "no such file", "check the path")
    if not h5py.is_hdf5(p):
        raise InputError(p, "not an HDF5 feature store", _STORE_FIX)
    f = h5open(p, "r")
    try:
        a = f.attrs
        version = a.get("schema_version")
        if version is None or "features" not in f or a.get("format", "dfdet-features") != "dfdet-features":
            raise InputError(p, "HDF5 file is not a dfdet feature store (no schema_version or /features)", _STORE_FIX)
        if int(version) > SCHEMA_VERSION:
            raise InputError(
                p,
                f"store schema version {int(version)} is newer than this dfdet reads ({SCHEMA_VERSION})",
                "upgrade dfdet",
            )
    except BaseException:
        f.close()
        raise
    return f


def _strings(grp: Any, name: str, n: int, sel: slice = slice(None)) -> list[str]:
    return [str(s) for s in grp[name].asstr()[sel].tolist()] if name in grp else [""] * n


def _failures(f: Any) -> list[dict[str, str]]:
    if "failed" not in f:
        return []
    fg = f["failed"]
    fp = _strings(fg, "path", 0)
    fr = _strings(fg, "reason", len(fp))
    fu = _strings(fg, "utt_id", len(fp))
    return [{"utt_id": u, "path": q, "reason": r} for u, q, r in zip(fu, fp, fr, strict=True)]


def read_hdf5(path: str | Path) -> FeatureSet:
    """Read a store written by `StoreWriter`; clear errors for non-HDF5 files and other schemas."""
    p = Path(path)
    try:
        with _open_store(p) as f:
            X = np.asarray(f["features"][...], dtype=np.float32)
            n = X.shape[0]
            cols = {name: _strings(f, name, n) for name in ROW_STRINGS}
            y = np.asarray(f["label"][...], dtype=np.int8) if "label" in f else np.full(n, -1, np.int8)
            duration = np.asarray(f["duration"][...], dtype=np.float64) if "duration" in f else np.full(n, np.nan)
            names = (
                _strings(f, "feature_names", 0) if "feature_names" in f else [f"f{i:03d}" for i in range(X.shape[1])]
            )
            groups = []
            if "groups" in f:
                g = f["groups"]
                groups = [
                    FeatureGroup(str(nm), int(s0), int(s1))
                    for nm, s0, s1 in zip(g["name"].asstr()[...].tolist(), g["start"][...], g["stop"][...], strict=True)
                ]
            failures = _failures(f)
            attrs = _read_attrs(f.attrs)
            frames = _frame_rows(f, p, n) if "frames" in f else None
    except DfdetError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise InputError(p, f"damaged or incomplete feature store ({e})", "featurize it again") from e
    for name, col in list(cols.items()) + [("label", y), ("duration", duration)]:
        if len(col) != n:
            raise InputError(p, f"/{name} has {len(col)} rows but /features has {n}", "featurize it again")
    if len(names) != X.shape[1]:
        raise InputError(p, f"{len(names)} feature names for {X.shape[1]} columns", "featurize it again")
    if attrs.get("incomplete"):
        from dfdet import console

        console.warn(f"{p} is incomplete: {attrs['incomplete'].get('reason', '?')} (finish it with featurize --resume)")
    cfg = attrs.get("recipe_config")
    return FeatureSet(
        X=X,
        y=y,
        utt_id=cols["utt_id"],
        feature_names=names,
        groups=groups,
        path=cols["path"],
        **{name: cols[name] for name in META_COLUMNS},
        duration=duration,
        recipe=attrs.get("recipe") or None,
        recipe_config=cfg if isinstance(cfg, dict) else None,
        recipe_hash=attrs.get("recipe_hash") or None,
        attrs=attrs,
        failures=failures,
        source=str(p),
        frames=frames,
    )


def _frame_groups(f: Any) -> list[FeatureGroup]:
    g = f["frame_groups"]
    return [
        FeatureGroup(str(nm), int(s0), int(s1))
        for nm, s0, s1 in zip(g["name"].asstr()[...].tolist(), g["start"][...], g["stop"][...], strict=True)
    ]


def _frame_rows(f: Any, p: Path, n: int) -> FrameRows:
    """The FrameRows of an open frame store with `n` rows, after checking /n_frames against /frames."""
    counts = np.asarray(f["n_frames"][...], dtype=np.int64)
    total = int(f["frames"].shape[0])
    if len(counts) != n or int(counts.sum()) != total or (counts < 1).any():
        raise InputError(
            p,
            f"/n_frames ({len(counts)} rows, {int(counts.sum())} frames) does not match /frames ({total} frames) "
            f"and /features ({n} rows)",
            "featurize it again",
        )
    return FrameRows(
        sources=[str(p)],
        src=np.zeros(n, dtype=np.int64),
        rows=np.arange(n, dtype=np.int64),
        n_frames=counts,
        names=_strings(f, "frame_names", 0),
        groups=_frame_groups(f),
    )


class StoreRows:
    """A store being resumed (`featurize --resume`): its header, ids and failures now, its rows a block at a time.

    Why not `read_hdf5`: the features of a large store need not be in memory to be copied into its successor.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with _open_store(self.path) as f:
                self.attrs = _read_attrs(f.attrs)
                self.feature_names = _strings(f, "feature_names", 0)
                self.utt_ids = _strings(f, "utt_id", 0)
                self.failures = _failures(f)
                self.rows = int(f["features"].shape[0])
                fr = _frame_rows(f, self.path, self.rows) if "frames" in f else None
        except DfdetError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise InputError(self.path, f"damaged feature store ({e})", "drop --resume to featurize it again") from e
        self.recipe = self.attrs.get("recipe") or None
        self.recipe_hash = self.attrs.get("recipe_hash") or None
        self.frame_names = fr.names if fr is not None else None  # None: a vector store
        self._offsets = np.concatenate([[0], np.cumsum(fr.n_frames)]) if fr is not None else None

    def iter_rows(self, block: int = 1024) -> Iterator[tuple[np.ndarray, str, str, int, float, dict[str, str]]]:
        """(features, utt_id, path, label, duration, metadata columns) per row, for `StoreWriter.append`; in a frame
        store the features are the row's float32 [T, D] frames, for `FrameStoreWriter.append_frames`."""
        with _open_store(self.path) as f:
            for i in range(0, self.rows, block):
                sel = slice(i, min(i + block, self.rows))
                X = np.asarray(f["features"][sel], dtype=np.float32)
                cols = {name: _strings(f, name, len(X), sel) for name in ROW_STRINGS}
                y = np.asarray(f["label"][sel], dtype=np.int8)
                dur = np.asarray(f["duration"][sel], dtype=np.float64)
                o, frames = self._offsets, f["frames"] if self._offsets is not None else None
                for j in range(len(X)):
                    meta = {name: cols[name][j] for name in META_COLUMNS}
                    k = i + j
                    x = X[j] if o is None else np.asarray(frames[o[k] : o[k + 1]], dtype=np.float32)
                    yield x, cols["utt_id"][j], cols["path"][j], int(y[j]), float(dur[j]), meta


def _read_attrs(a: Any) -> dict[str, Any]:
    """Root attributes as plain python: JSON-valued ones decoded, user attrs (attrs_json) merged in."""
    out: dict[str, Any] = {}
    for k, v in a.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, np.generic):
            v = v.item()
        if k in ("recipe_config", "argv", "provenance", "attrs_json") and isinstance(v, str):
            with contextlib.suppress(ValueError):
                v = json.loads(v)
        out[k] = v
    extra = out.pop("attrs_json", None)
    if isinstance(extra, dict):
        for k, v in extra.items():
            out.setdefault(k, v)
    return out


def _concat_frames(parts: list[FrameRows | None]) -> FrameRows:
    """FrameRows of several sets, one after another (each set's sources kept, its source indices shifted)."""
    assert parts and all(p is not None for p in parts)
    rows = [p for p in parts if p is not None]
    shift = np.cumsum([0] + [len(p.sources) for p in rows[:-1]])
    return FrameRows(
        sources=[s for p in rows for s in p.sources],
        src=np.concatenate([p.src + k for p, k in zip(rows, shift, strict=True)]).astype(np.int64),
        rows=np.concatenate([p.rows for p in rows]).astype(np.int64),
        n_frames=np.concatenate([p.n_frames for p in rows]).astype(np.int64),
        names=list(rows[0].names),
        groups=list(rows[0].groups),
    )


def merge_stores(paths: list[str | Path], out: str | Path, chunk_rows: int = 1024) -> FeatureSet:
    """Combine shard stores (`featurize --shard K/N`) into one, rows sorted by utt_id, failures concatenated.

    The shards must share the recipe hash and feature names; an utt_id in two shards is an error naming both files.
    Shards' vectors are read whole (a 121 k x 154 float32 corpus is ~75 MB); frame stores' frames are copied a row
    at a time, so the result equals a single run's store (frames, /n_frames and /features).
    """
    if not paths:
        raise DfdetError("nothing to merge", "pass shard stores written by `dfdet featurize --shard K/N`")
    sets = [load_features(p) for p in paths]
    first = sets[0]
    framed = [fs for fs in sets if fs.frames is not None]
    if framed and len(framed) != len(sets):
        vector = next(fs for fs in sets if fs.frames is None)
        raise DfdetError(
            f"{framed[0].source} is a frame store (recipe {framed[0].recipe}) but {vector.source} is a vector store "
            f"(recipe {vector.recipe})",
            "merge only shards featurized with the same recipe",
        )
    for fs in sets[1:]:
        if fs.recipe_hash != first.recipe_hash:
            raise DfdetError(
                f"{fs.source}: recipe hash {fs.recipe_hash} differs from {first.source} ({first.recipe_hash})",
                "merge only shards featurized with the same recipe and configuration",
            )
        if fs.feature_names != first.feature_names:
            raise DfdetError(
                f"{fs.source}: feature names differ from {first.source}",
                "merge only shards featurized with the same recipe",
            )
    augment = [fs.attrs.get("augment") for fs in sets]  # featurize --augment: shards must draw copies alike
    if any(a != augment[0] for a in augment):
        raise DfdetError(
            "the shards were augmented differently", "featurize every shard with the same --augment options"
        )
    owner: dict[str, str] = {}
    for fs in sets:
        for u in fs.utt_id:
            if u in owner:
                raise DfdetError(
                    f"utt_id {u!r} is in both {owner[u]} and {fs.source}",
                    "each shard must cover different inputs (same N, different K)",
                )
            owner[u] = fs.source
    X = np.concatenate([fs.X for fs in sets]) if sets else first.X
    cat = lambda name: [v for fs in sets for v in getattr(fs, name)]  # noqa: E731
    merged = FeatureSet(
        X=X,
        y=np.concatenate([fs.y for fs in sets]).astype(np.int8),
        utt_id=cat("utt_id"),
        feature_names=list(first.feature_names),
        groups=list(first.groups),
        path=cat("path"),
        **{name: cat(name) for name in META_COLUMNS},
        duration=np.concatenate([np.asarray(fs.duration, dtype=np.float64) for fs in sets]),
        recipe=first.recipe,
        recipe_config=first.recipe_config,
        recipe_hash=first.recipe_hash,
        frames=_concat_frames([fs.frames for fs in framed]) if framed else None,
    )
    order = sorted(range(len(merged)), key=lambda i: merged.utt_id[i])
    merged = merged.subset(np.asarray(order, dtype=np.int64))
    failures = [f for fs in sets for f in fs.failures]
    merged.failures = sorted(failures, key=lambda f: (f.get("utt_id", ""), f.get("path", "")))
    merged.attrs = {
        "merged_from": [
            {"path": fs.source, "rows": len(fs), "shard": fs.attrs.get("shard"), "created": fs.attrs.get("created")}
            for fs in sets
        ]
    }
    if augment[0]:
        merged.attrs["augment"] = augment[0]
    write_features(out, merged, chunk_rows=chunk_rows)
    merged.source = str(out)
    return merged


_ORIGIN_KEYS = (("family", "families"), ("collection", "collections"))


def describe(fs: FeatureSet, list_failures: bool = True) -> dict[str, Any]:
    """Summary used by `dfdet info` and artifacts: rows, dims, recipe, label/system counts, failures."""
    labels, counts = np.unique(fs.y, return_counts=True)
    from dfdet.labels import label_name

    def counts_of(values: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in values:
            if s:
                out[s] = out.get(s, 0) + 1
        return dict(sorted(out.items()))

    dur = np.asarray(fs.duration, dtype=np.float64)
    known = dur[np.isfinite(dur)]
    summary = {
        "source": fs.source,
        "rows": len(fs),
        "dims": fs.dim,
        "recipe": fs.recipe,
        "recipe_hash": fs.recipe_hash,
        "labels": {(label_name(k) or "unknown"): int(c) for k, c in zip(labels, counts, strict=True)},
        "systems": counts_of(fs.system),
        "speakers": len({s for s in fs.speaker if s}),
        "domains": counts_of(fs.domain),
        **{f"{name}s": counts_of(getattr(fs, name)) for name in ("codec", "attack") if any(getattr(fs, name))},
        **{key: counts_of(getattr(fs, name)) for name, key in _ORIGIN_KEYS if any(getattr(fs, name))},
        "duration_s": {
            "total": float(known.sum()) if known.size else None,
            "min": float(known.min()) if known.size else None,
            "max": float(known.max()) if known.size else None,
        },
        "groups": [[g.name, g.start, g.stop] for g in fs.groups],
        "failures": len(fs.failures),
        "created": fs.attrs.get("created"),
        "dfdet_version": fs.attrs.get("dfdet_version"),
        "schema_version": fs.attrs.get("schema_version"),
        "shard": fs.attrs.get("shard"),
    }
    if fs.frames is not None:
        n = fs.frames.n_frames
        summary["frames"] = {
            "total": int(n.sum()),
            "per_row": {
                "min": int(n.min()) if len(n) else None,
                "median": float(np.median(n)) if len(n) else None,
                "max": int(n.max()) if len(n) else None,
            },
            "dim": fs.frames.dim,
            "groups": [[g.name, g.start, g.stop] for g in fs.frames.groups],
        }
    if list_failures:
        summary["failed"] = [{"path": f.get("path", ""), "reason": f.get("reason", "")} for f in fs.failures]
    return summary


# ---- ragged frame rows (frame recipes such as `lfcc`) ----------------------------------------------------------


def frame_stat_layout(frame_names: list[str], frame_groups: list[FeatureGroup]) -> tuple[np.ndarray, list[str], list]:
    """Column order, names and groups of a frame store's /features: per frame group, its means then its stds.

    Returns (order, names, groups): column c of /features is mean (c < D) or std (c >= D) of frame dimension
    order[c] % D, i.e. /features = concat(mean, std)[order].
    """
    d = len(frame_names)
    spans = [(g.name, g.start, g.stop) for g in frame_groups] or [("frames", 0, d)]
    order: list[int] = []
    names: list[str] = []
    groups: list[FeatureGroup] = []
    for name, s0, s1 in spans:
        start = len(order)
        for off, stat in ((0, "mean"), (d, "std")):
            order += [off + j for j in range(s0, s1)]
            names += [f"{frame_names[j]}_{stat}" for j in range(s0, s1)]
        groups.append(FeatureGroup(name, start, len(order)))
    return np.asarray(order, dtype=np.int64), names, groups


_STAT_BLOCK = 4096  # frames per block when summing: temporaries stay small for hour-long rows


def frame_statistics(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (float64) of each column of a [T, D] matrix, a block of frames at a time (the float64
    temporaries are one block, not the whole row; the sums run in the same order for every caller)."""
    m = np.asarray(frames)
    T, d = m.shape
    total = np.zeros(d)
    for a in range(0, T, _STAT_BLOCK):
        total += m[a : a + _STAT_BLOCK].sum(axis=0, dtype=np.float64)
    mean = total / T
    ss = np.zeros(d)
    for a in range(0, T, _STAT_BLOCK):
        ss += np.square(m[a : a + _STAT_BLOCK].astype(np.float64) - mean).sum(axis=0)
    return mean, np.sqrt(ss / T)


class FrameStoreWriter(StoreWriter):
    """A StoreWriter whose rows are [T, D] frame matrices (T >= 1, varying per row).

    Layout, beside everything StoreWriter writes: `/frames` float32 [sum T, D] (chunked, compressed, resizable) with
    the rows' frames one after another, `/n_frames` int64 [N] (row i = frames offsets[i]:offsets[i+1], offsets =
    cumsum), `/frame_names`, `/frame_groups`. `/features` holds each row's frame statistics (mean and population std
    of every frame dimension, `frame_stat_layout`), so every vector tool (info, split, training, the shortcut scan)
    reads a frame store unchanged.
    """

    def __init__(
        self,
        path: str | Path,
        frame_names: list[str],
        frame_groups: list[FeatureGroup] | tuple = (),
        *,
        chunk_frames: int = 1024,
        **kwargs: Any,
    ) -> None:
        self.frame_names = [str(n) for n in frame_names]
        self.frame_groups = list(frame_groups)
        self._order, names, groups = frame_stat_layout(self.frame_names, self.frame_groups)
        super().__init__(path, names, groups, **kwargs)
        self.chunk_frames = max(1, int(chunk_frames))
        self.frames_written = 0
        self._fbuf: list[np.ndarray] = []
        self._nbuf = 0  # frames in _fbuf

    def open(self) -> FrameStoreWriter:
        import h5py

        super().open()
        try:
            f, d = self._file, len(self.frame_names)
            comp: dict[str, Any] = {"compression": self.compression} if self.compression else {}
            if self.compression == "gzip":
                comp["shuffle"] = True
            f.create_dataset(
                "frames", shape=(0, d), maxshape=(None, d), dtype=np.float32, chunks=(self.chunk_frames, d), **comp
            )
            f.create_dataset("n_frames", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(self.chunk_rows,))
            sdt = h5py.string_dtype("utf-8")
            f.create_dataset("frame_names", data=np.array(self.frame_names, dtype=object), dtype=sdt)
            g = f.create_group("frame_groups")
            g.create_dataset("name", data=np.array([x.name for x in self.frame_groups], dtype=object), dtype=sdt)
            g.create_dataset("start", data=np.array([x.start for x in self.frame_groups], dtype=np.int64))
            g.create_dataset("stop", data=np.array([x.stop for x in self.frame_groups], dtype=np.int64))
        except BaseException:
            self.abort()
            raise
        return self

    def append_frames(self, frames: np.ndarray, utt_id: str, **row: Any) -> np.ndarray:
        """Queue one row: its [T, D] frames, and its metadata as for `StoreWriter.append` (path, label, ...).

        The frames are stored as float32 and the row's /features are computed from those float32 values, so a row
        copied from one frame store to another (resume, merge, split) gets the same bytes. Returns that float32 row.
        A float32 array is kept by reference until the next flush: do not change it meanwhile.
        """
        m = np.asarray(frames, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] != len(self.frame_names) or m.shape[0] < 1:
            raise DfdetError(
                f"{utt_id}: frame matrix has shape {m.shape}, the store needs [T >= 1, {len(self.frame_names)}]",
                "this is a bug in the feature recipe",
            )
        mean, std = frame_statistics(m)
        vec = np.concatenate([mean, std])[self._order].astype(np.float32)
        self._fbuf.append(m)
        self._nbuf += len(m)
        self.append(vec, utt_id, **row)  # may flush (rows and frames together)
        if self._nbuf >= 8 * self.chunk_frames:
            self.flush()
        return vec

    def flush(self) -> None:
        if self._fbuf:
            f, buf, self._fbuf, self._nbuf = self._file, self._fbuf, [], 0
            block = buf[0] if len(buf) == 1 else np.concatenate(buf)
            n0, r0 = self.frames_written, f["n_frames"].shape[0]
            f["frames"].resize((n0 + len(block), len(self.frame_names)))
            f["frames"][n0:] = block
            f["n_frames"].resize((r0 + len(buf),))
            f["n_frames"][r0:] = [len(b) for b in buf]
            self.frames_written = n0 + len(block)
        super().flush()

    def abort(self, exc_type=None, exc=None, tb=None) -> None:
        self._fbuf, self._nbuf = [], 0
        super().abort(exc_type, exc, tb)


class FrameReader:
    """Per-row frame matrices of a frame store, read lazily: only /n_frames is loaded; row i reads one slice.

    Use as a context manager (or call close()). Row metadata and the frame statistics come from `load_features`.
    """

    def __init__(self, path: str | Path) -> None:
        import h5py

        p = self.path = Path(path)
        fix = "featurize with a frame recipe, e.g. --recipe lfcc"
        if not p.is_file():
            raise InputError(p, "no such file", "check the path")
        if not h5py.is_hdf5(p):
            raise InputError(p, "not an HDF5 feature store", fix)
        self._file = h5open(p, "r")
        try:
            f = self._file
            if "frames" not in f or "n_frames" not in f:
                raise InputError(p, "not a frame store (no /frames and /n_frames)", fix)
            self.n_frames = np.asarray(f["n_frames"][...], dtype=np.int64)
            self.offsets = np.concatenate([[0], np.cumsum(self.n_frames)]).astype(np.int64)
            self._frames = f["frames"]
            rows = f["features"].shape[0] if "features" in f else len(self.n_frames)
            if self.offsets[-1] != self._frames.shape[0] or rows != len(self.n_frames) or (self.n_frames < 1).any():
                raise InputError(
                    p,
                    f"/n_frames ({len(self.n_frames)} rows, {int(self.offsets[-1])} frames) does not match /frames "
                    f"({self._frames.shape[0]} frames) and /features ({rows} rows)",
                    "featurize it again",
                )
            self.frame_names = _strings(f, "frame_names", 0)
            self.frame_groups = _frame_groups(f)
        except BaseException:
            self._file.close()
            raise

    def __len__(self) -> int:
        return len(self.n_frames)

    @property
    def dim(self) -> int:
        return int(self._frames.shape[1])

    def read(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames start:stop of row i (all of them by default) as float32 [n, D]; reads only that slice."""
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows")
        n = int(self.n_frames[i])
        s0, s1, _ = slice(start, stop).indices(n)
        o = int(self.offsets[i])
        return np.asarray(self._frames[o + s0 : o + max(s0, s1)], dtype=np.float32)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.read(i)

    def __iter__(self) -> Any:
        return (self.read(i) for i in range(len(self)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
