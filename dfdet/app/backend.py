"""Everything the `dfdet app` page computes, as plain functions testable without Streamlit.

Why a separate module: the page script only lays out widgets; finding artifacts, loading detectors, scoring uploaded
bytes, per-member probabilities, operating points and the Inspect data live here, so tests and the latency benchmark
drive exactly what the page calls.

Rules kept here:
- Uploaded bytes are written only inside a private `tempfile.TemporaryDirectory` (removed afterwards) and decoded
  there with dfdet's own audio/feature code; no server path is ever taken from user input (an upload's name is
  reduced to a safe base name inside that directory).
- Scoring goes through `dfdet.scoring.score_audio_stream` + `rows_to_table` + `dfdet.scores.write_scores`, exactly
  the calls `dfdet score FILES` makes, so the verdicts and the TSV download are those of `dfdet score` (the `path`
  column holds the uploaded file's name: the server's temporary path means nothing to the user).
- Thresholds come from the artifacts (model file, calibration or ensemble JSON), never from constants here.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.caveats import MIN_SECONDS
from dfdet.errors import DfdetError, InputError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from dfdet.attacks import DiffDetector
    from dfdet.features import Recipe
    from dfdet.scores import ScoreTable
    from dfdet.scoring import ScoredRow, ScoringDetector

UPLOAD_TYPES: tuple[str, ...] = ("wav", "flac", "ogg", "mp3")
DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_MIN_SECONDS = MIN_SECONDS  # shortest clip judged, the same as `dfdet score` (dfdet.caveats)
ENV_MODELS = "DFDET_APP_MODELS"
ENV_DETECTOR = "DFDET_APP_DETECTOR"
ENV_MAX_UPLOAD_MB = "DFDET_APP_MAX_UPLOAD_MB"
ENV_MIN_SECONDS = "DFDET_APP_MIN_SECONDS"
SEGMENT_SECONDS = 1.0  # the Inspect tab's score-over-time windows (hop: half a window, as `score --segments`)
_MAX_WALK_FILES = 5000
_MAX_WALK_DEPTH = 5
_MAX_JSON_BYTES = 20 << 20
_PRUNE = ("__pycache__", "node_modules", "site-packages")
_CANDIDATES = (".pt", ".pth", ".json")
_KIND_ORDER = {"ensemble": 0, "calibration": 1, "model": 2}


# --------------------------------------------------------------------------------------------------- page arguments
@dataclass
class AppConfig:
    """What the page serves: a models directory or one detector file, the upload limit and the shortest clip."""

    models_dir: Path | None = None
    detector: Path | None = None
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    min_seconds: float = DEFAULT_MIN_SECONDS

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb) << 20


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit(2) inside the Streamlit server
        raise UsageError(f"page arguments: {message}", "start the page with dfdet app --models DIR | --detector FILE")


def parse_page_args(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> AppConfig:
    """The page's configuration from its own argv (after `streamlit run PAGE --`) or, for AppTest, the environment
    (`DFDET_APP_MODELS` / `DFDET_APP_DETECTOR`, `DFDET_APP_MAX_UPLOAD_MB`, `DFDET_APP_MIN_SECONDS`)."""
    env = os.environ if environ is None else environ
    p = _Parser(prog="dfdet app page", add_help=False)
    p.add_argument("--models")
    p.add_argument("--detector")
    p.add_argument("--max-upload-mb", type=int)
    p.add_argument("--min-seconds", type=float)
    a = p.parse_args(list(argv))
    models = a.models if a.models is not None or a.detector is not None else env.get(ENV_MODELS) or None
    detector = a.detector if a.models is not None or a.detector is not None else env.get(ENV_DETECTOR) or None
    if models and detector:
        raise UsageError("both a models directory and a detector file given", "serve one: --models DIR or --detector")
    if not models and not detector:
        raise UsageError(
            "no models to serve", f"start with dfdet app --models DIR (or set {ENV_MODELS} / {ENV_DETECTOR})"
        )
    try:
        mb = a.max_upload_mb if a.max_upload_mb is not None else int(env.get(ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB))
        min_s = a.min_seconds if a.min_seconds is not None else float(env.get(ENV_MIN_SECONDS, DEFAULT_MIN_SECONDS))
    except ValueError as e:
        raise UsageError(f"page arguments: {e}", "pass a number") from None
    if mb < 1:
        raise UsageError(f"upload limit must be >= 1 MB, got {mb}", "pass --max-upload-mb N with N >= 1")
    if not np.isfinite(min_s) or min_s < 0:
        raise UsageError(f"shortest clip must be >= 0 s, got {min_s}", "pass --min-seconds S with S >= 0")
    cfg = AppConfig(Path(models) if models else None, Path(detector) if detector else None, int(mb), float(min_s))
    if cfg.models_dir is not None and not cfg.models_dir.is_dir():
        raise InputError(cfg.models_dir, "no such directory", "pass --models DIR holding dfdet models / JSONs")
    if cfg.detector is not None and not cfg.detector.is_file():
        raise InputError(cfg.detector, "no such detector file", "pass a model .pt, calibration or ensemble JSON")
    return cfg


# --------------------------------------------------------------------------------------------------- discovery
@dataclass
class DetectorOption:
    """A file the page can score with (an operating point): its threshold is read from the file itself."""

    path: Path
    kind: str  # model | calibration | ensemble
    label: str  # path relative to the models dir
    threshold: float | None = None
    policy: str = ""
    scale: str = ""
    members: list[str] = field(default_factory=list)
    usable: bool = True
    note: str = ""

    def describe(self) -> str:
        thr = "?" if self.threshold is None else f"{self.threshold:.4g}"
        return f"{self.label} — {self.kind}, threshold {thr} ({self.policy or 'from file'})"


@dataclass
class ModelCard:
    """A trained model's metadata (no weights) and its training history, for the Models tab."""

    path: Path
    label: str
    meta: dict[str, Any]
    history: list[dict[str, Any]] | None = None
    history_path: Path | None = None
    note: str = ""


@dataclass
class Document:
    """A calibration, ensemble or evaluation JSON found in the models dir."""

    path: Path
    label: str
    kind: str
    doc: dict[str, Any]


@dataclass
class Catalog:
    """Everything found for the page: operating points, models, JSON documents, and files that could not be read."""

    root: Path | None
    options: list[DetectorOption] = field(default_factory=list)
    models: list[ModelCard] = field(default_factory=list)
    calibrations: list[Document] = field(default_factory=list)
    ensembles: list[Document] = field(default_factory=list)
    evaluations: list[Document] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> list[DetectorOption]:
        return [o for o in self.options if o.usable]


def _walk(root: Path, max_files: int = _MAX_WALK_FILES, max_depth: int = _MAX_WALK_DEPTH) -> tuple[list[Path], bool]:
    """Candidate artifacts (.pt/.pth/.json) under root, sorted; hidden and cache dirs skipped; depth-limited, and cut
    short (True) after `max_files` candidates or 50x as many entries (an audio corpus beside the models is fine)."""
    out: list[Path] = []
    seen = 0
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).parts) - base
        keep = [d for d in dirnames if not d.startswith(".") and d not in _PRUNE]
        dirnames[:] = sorted(keep) if depth < max_depth else []
        seen += len(filenames)
        out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f.lower().endswith(_CANDIDATES)]
        if len(out) >= max_files or seen >= 50 * max_files:
            return sorted(out)[:max_files], True
    return sorted(out), False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _json_kind(doc: dict[str, Any]) -> str | None:
    kind = doc.get("kind")
    if kind in ("calibration", "ensemble"):
        return str(kind)
    if str(doc.get("schema", "")).startswith("dfdet.evaluate") or {"results", "settings"} <= set(doc):
        return "evaluation"
    return None


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(os.path.relpath(path, root)).as_posix()
        except ValueError:
            pass
    return path.name


def _threshold_of(doc: dict[str, Any]) -> tuple[float | None, str, str]:
    thr = doc.get("threshold") or {}
    try:
        value = float(thr["value"])
    except (KeyError, TypeError, ValueError):
        value = None
    return value, str(thr.get("policy") or ""), str(thr.get("scale") or "")


def _calibration_option(path: Path, doc: dict[str, Any], root: Path | None) -> DetectorOption:
    from dfdet.calibration import detector_path

    value, policy, scale = _threshold_of(doc)
    opt = DetectorOption(path, "calibration", _rel(path, root), value, policy, scale or "calibrated LLR")
    inner = detector_path(doc, path)
    if inner is None:
        opt.usable, opt.note = False, "names no detector (refit with dfdet calibrate --detector MODEL)"
    elif not inner.exists():
        opt.usable, opt.note = False, f"its detector {_rel(inner, root)} is missing"
    else:
        opt.members = [_rel(inner, root)]
    if value is None:
        opt.usable, opt.note = False, "has no threshold value (refit with dfdet calibrate)"
    return opt


def _ensemble_option(path: Path, doc: dict[str, Any], root: Path | None) -> DetectorOption:
    from dfdet.calibration import resolve_from_json

    value, policy, scale = _threshold_of(doc)
    members = doc.get("members") or []
    opt = DetectorOption(path, "ensemble", _rel(path, root), value, policy, scale or "fused score")
    opt.members = [str(m.get("name", "?")) for m in members if isinstance(m, dict)]
    if any(not isinstance(m, dict) or m.get("kind") != "model" for m in members) or not members:
        opt.usable = False
        opt.note = (
            "fitted on score files, which cannot score new audio (refit with dfdet ensemble --model A.pt --model "
            "B.pt --on DEV.h5)"
        )
    else:
        missing = [m["name"] for m in members if not resolve_from_json(str(m.get("path", "")), path).exists()]
        if missing:
            opt.usable, opt.note = False, f"member model(s) missing: {', '.join(map(str, missing))}"
    if value is None and opt.usable:
        opt.usable, opt.note = False, "has no threshold value (refit with dfdet ensemble)"
    return opt


def _model_card(path: Path, root: Path | None) -> tuple[ModelCard, DetectorOption]:
    from dfdet.artifact import read_artifact
    from dfdet.training import history_path_for, read_history

    obj = read_artifact(path)
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "initial_state", "scaler")}
    card = ModelCard(path, _rel(path, root), meta)
    hp = history_path_for(path)
    if hp.exists():
        try:
            card.history, card.history_path = read_history(hp), hp
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            card.note = f"history {hp.name} unreadable ({e})"
    threshold = meta.get("threshold")
    opt = DetectorOption(
        path,
        "model",
        card.label,
        None if threshold is None else float(threshold),
        str(meta.get("threshold_source") or "model file"),
        "raw natural-log odds (-logit)",
        [path.stem],
    )
    return card, opt


def find_artifacts(models_dir: str | os.PathLike | None = None, detector: str | os.PathLike | None = None) -> Catalog:
    """Models, calibration/ensemble JSONs (the operating points), evaluation JSONs and histories under `models_dir`,
    or one `detector` file with the models it names. Unreadable files are listed in `problems`, never fatal."""
    if detector is not None:
        return _catalog_of_detector(Path(detector))
    if models_dir is None:
        raise UsageError("no models directory or detector", "pass --models DIR or --detector FILE")
    root = Path(models_dir).resolve()
    cat = Catalog(root)
    files, cut = _walk(root)
    if cut:
        cat.problems.append(f"stopped looking after {len(files)} candidate files; point --models at a smaller dir")
    for path in files:
        suffix = path.suffix.lower()
        try:
            if suffix in (".pt", ".pth"):
                card, opt = _model_card(path, root)
                cat.models.append(card)
                cat.options.append(opt)
            elif suffix == ".json":
                doc = _read_json(path)
                kind = _json_kind(doc) if doc is not None else None
                if kind is None:
                    continue
                item = Document(path, _rel(path, root), kind, doc)  # type: ignore[arg-type]
                if kind == "calibration":
                    cat.calibrations.append(item)
                    cat.options.append(_calibration_option(path, doc, root))  # type: ignore[arg-type]
                elif kind == "ensemble":
                    cat.ensembles.append(item)
                    cat.options.append(_ensemble_option(path, doc, root))  # type: ignore[arg-type]
                else:
                    cat.evaluations.append(item)
        except DfdetError as e:
            cat.problems.append(str(e))
    mains = _shipped_mains(root)
    cat.options.sort(key=lambda o: (not o.usable, mains.get(o.path.resolve(), 2), _KIND_ORDER.get(o.kind, 9), o.label))
    return cat


def _shipped_mains(root: Path) -> dict[Path, int]:
    """Main artifacts of the shipped detector folders under `root` (their detector.json): `default` ranks 0, the
    others 1, so a page serving the shipped detectors opens on the one `dfdet score` uses without a name."""
    from dfdet.shipped import CARD, read_card

    out: dict[Path, int] = {}
    for card in sorted(root.glob(f"*/{CARD}")):
        try:
            det = read_card(card.parent)
        except DfdetError:
            continue
        out[det.detector.resolve()] = 0 if det.name == "default" else 1
    return out


def _catalog_of_detector(path: Path) -> Catalog:
    root = path.resolve().parent
    cat = Catalog(root)
    path = path.resolve()
    if path.suffix.lower() != ".json":
        card, opt = _model_card(path, root)
        cat.models.append(card)
        cat.options.append(opt)
        return cat
    doc = _read_json(path)
    kind = _json_kind(doc) if doc is not None else None
    if kind == "calibration":
        cat.calibrations.append(Document(path, path.name, kind, doc))  # type: ignore[arg-type]
        opt = _calibration_option(path, doc, root)  # type: ignore[arg-type]
    elif kind == "ensemble":
        cat.ensembles.append(Document(path, path.name, kind, doc))  # type: ignore[arg-type]
        opt = _ensemble_option(path, doc, root)  # type: ignore[arg-type]
    else:
        raise InputError(path, "not a detector (model .pt, calibration or ensemble JSON)", "pass a dfdet detector")
    cat.options.append(opt)
    if opt.usable:
        for m in _referenced_files(path):
            if m.suffix.lower() in (".pt", ".pth"):
                try:
                    cat.models.append(_model_card(m, root)[0])
                except DfdetError as e:
                    cat.problems.append(str(e))
    return cat


# --------------------------------------------------------------------------------------------------- loading
def _referenced_files(path: Path, depth: int = 0) -> list[Path]:
    """The files a detector file depends on: a calibration's detector, an ensemble's member models (recursively)."""
    if depth > 8 or path.suffix.lower() != ".json":
        return []
    doc = _read_json(path) or {}
    from dfdet.calibration import detector_path, resolve_from_json

    out: list[Path] = []
    if doc.get("kind") == "calibration":
        inner = detector_path(doc, path)
        if inner is not None:
            out += [inner, *_referenced_files(inner, depth + 1)]
    elif doc.get("kind") == "ensemble":
        for m in doc.get("members") or []:
            if isinstance(m, dict) and m.get("path"):
                out.append(resolve_from_json(str(m["path"]), path))
    return out


def fingerprint(path: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of a detector file and every file it loads: the cache key of a loaded detector, so an
    artifact rewritten on disk (same path, new mtime) is loaded afresh."""
    p = Path(path).resolve()
    out = []
    for f in [p, *_referenced_files(p)]:
        try:
            st = f.stat()
            out.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(f), -1, -1))
    return tuple(out)


@dataclass
class LoadedDetector:
    """A detector ready for the page: the ScoringDetector `dfdet score` uses and the recipe that featurizes audio."""

    path: Path
    scorer: ScoringDetector
    recipe: Recipe
    fingerprint: tuple[tuple[str, int, int], ...] = ()

    @property
    def threshold(self) -> float:
        return float(self.scorer.threshold)


def load_for_app(path: str | os.PathLike) -> LoadedDetector:
    """Load a detector file once (the page caches the result by `fingerprint`), its recipe, and warm both up so the
    first upload is answered as fast as the next."""
    from dfdet.featurize import warm_up
    from dfdet.scoring import load_detector

    p = Path(path)
    fp = fingerprint(p)
    scorer = load_detector(p)
    recipe = scorer.feature_recipe()
    with one_thread():
        warm_up(recipe)
        _warm_resampler(int(getattr(recipe, "sample_rate", 16000) or 16000))
        scorer.combine(scorer.member_scores(scorer.dummy_input()))
    return LoadedDetector(p, scorer, recipe, fp)


def training_domain(loaded: LoadedDetector, name: str | None = None) -> list[tuple[bool, str]]:
    """What the detector's member models were trained on, one (synthetic, sentence) per distinct training set,
    synthetic ones first: the page shows those as a banner (dfdet score prints the same lines on stderr)."""
    from dfdet.caveats import domain_lines

    lines = domain_lines(loaded.scorer, name or loaded.path.name)
    return [(synthetic, f"{line[:1].upper()}{line[1:]}.") for synthetic, line in sorted(lines, key=lambda x: not x[0])]


def _warm_resampler(target_sr: int) -> None:
    """Resample a few samples once: the first resampling call imports and sets up soxr (about a second), which
    would otherwise land on the first upload recorded at another rate (44.1/48 kHz)."""
    from dfdet.audio import resample

    with contextlib.suppress(Exception):
        resample(np.zeros(4410), 44100, target_sr)


def load_explainer(path: str | os.PathLike) -> DiffDetector | None:
    """The differentiable form of the detector for saliency (dfdet.attacks/dfdet.explain), or None when absent."""
    try:
        from dfdet.attacks import load_diff_detector
    except ImportError:
        return None
    return load_diff_detector(path)


def explain_available() -> bool:
    """dfdet.explain (and its captum dependency) can be imported."""
    import importlib.util

    return importlib.util.find_spec("dfdet.explain") is not None and importlib.util.find_spec("captum") is not None


# --------------------------------------------------------------------------------------------------- uploads
_UNSAFE = re.compile(r"[\x00-\x1f/\\:]+")


def safe_name(name: str, fallback: str = "upload.wav") -> str:
    """An upload's name reduced to a harmless base name (no directories, control characters or leading dots)."""
    base = _UNSAFE.sub("_", os.path.basename(str(name).replace("\\", "/"))).strip().lstrip(".")
    return base[:180] or fallback


def unique_names(names: Sequence[str]) -> list[str]:
    """Safe, distinct base names whose stems are distinct too (stems become utt_ids): `a.wav`, `a (2).wav`, ..."""
    out: list[str] = []
    stems: set[str] = set()
    for raw in names:
        name = safe_name(raw)
        stem, ext = os.path.splitext(name)
        cand, k = name, 1
        while os.path.splitext(cand)[0].casefold() in stems:
            k += 1
            cand = f"{stem} ({k}){ext}"
        stems.add(os.path.splitext(cand)[0].casefold())
        out.append(cand)
    return out


@dataclass
class MemberVerdict:
    """One member model's view of a file: its raw score, probability and its own threshold (from its model file)."""

    name: str
    score: float
    p_spoof: float
    threshold: float
    p_threshold: float
    decision: str  # bonafide | spoof


@dataclass
class FileVerdict:
    """The result for one upload: a verdict, or the reason it could not be scored."""

    name: str
    utt_id: str = ""
    ok: bool = False
    error: str = ""
    score: float = float("nan")
    p_spoof: float = float("nan")
    decision: str = ""  # bonafide | spoof (the words of the score file)
    threshold: float = float("nan")
    p_threshold: float = float("nan")
    duration: float = float("nan")
    members: list[MemberVerdict] = field(default_factory=list)
    digest: str = ""
    scored: float = float("nan")  # seconds the recipe looked at (its first window of a longer clip)


@dataclass
class BatchResult:
    """All uploads of one request: per-file verdicts (upload order), the score table and its TSV (as `dfdet score`)."""

    files: list[FileVerdict]
    table: ScoreTable | None
    tsv: bytes
    detector: str
    kind: str
    threshold: float
    threshold_source: str
    scale: str
    seconds: float

    @property
    def ok(self) -> list[FileVerdict]:
        return [f for f in self.files if f.ok]

    @property
    def failed(self) -> list[FileVerdict]:
        return [f for f in self.files if not f.ok]


def digest(data: bytes) -> str:
    """Content hash of an upload (cache key; never a file name)."""
    return hashlib.sha256(data).hexdigest()[:20]


def member_verdicts(scorer: ScoringDetector, members: Mapping[str, float]) -> list[MemberVerdict]:
    """Per-member probability sigmoid(-score) and decision at each member model's own threshold (its model file)."""
    from dfdet.labels import label_name
    from dfdet.scores import score_to_p_spoof

    out = []
    for m in scorer.members:
        s = float(members[m.name])
        thr = float(m.detector.threshold)
        out.append(
            MemberVerdict(
                m.name,
                s,
                float(score_to_p_spoof(s)),
                thr,
                float(score_to_p_spoof(thr)),
                label_name(0 if s >= thr else 1),
            )
        )
    return out


def _bytes_tsv(table: ScoreTable, tmp: str) -> bytes:
    from dfdet.scores import write_scores

    out = Path(tmp) / "scores.tsv"
    write_scores(out, table, "tsv")
    return out.read_bytes()


def score_uploads(
    loaded: LoadedDetector,
    uploads: Sequence[tuple[str, bytes]],
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_bytes: int | None = None,
) -> BatchResult:
    """Score uploaded (name, bytes) pairs with `dfdet score`'s own library calls; bad files get a reason, not a crash.

    The bytes go to a private temporary directory (deleted on return) under safe distinct names, so utt_ids are the
    file stems exactly as `dfdet score DIR/a.wav DIR/b.wav` gives them. Empty, undecodable, NaN, over-limit and
    too-short (< `min_seconds`) files are reported per file and left out of the table, like `dfdet score --skip-bad`.
    """
    from dfdet.inputs import utterances_from_paths
    from dfdet.labels import label_name
    from dfdet.scores import score_to_p_spoof
    from dfdet.scoring import rows_to_table, score_audio_stream

    t0 = time.perf_counter()
    scorer = loaded.scorer
    names = unique_names([n for n, _ in uploads])
    verdicts = [FileVerdict(n, digest=digest(bytes(b))) for n, (_, b) in zip(names, uploads, strict=True)]
    by_name = {v.name: v for v in verdicts}
    table = None
    tsv = b""
    with tempfile.TemporaryDirectory(prefix="dfdet-app-") as tmp:
        indir = Path(tmp) / "uploads"  # uploads apart from the TSV written beside them
        indir.mkdir()
        paths = []
        for v, (_, data) in zip(verdicts, uploads, strict=True):
            if len(data) == 0:
                v.error = "empty file (0 bytes): upload an audio file"
                continue
            if max_bytes is not None and len(data) > max_bytes:
                v.error = f"file is {len(data) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB upload limit"
                continue
            p = indir / v.name
            p.write_bytes(bytes(data))
            paths.append(p)
        rows: list[ScoredRow] = []
        if paths:
            utts = utterances_from_paths(paths)
            failures: list[dict[str, str]] = []
            with one_thread():
                rows = list(
                    score_audio_stream(scorer, utts, jobs=1, skip_bad=True, failures=failures, min_seconds=min_seconds)
                )
            for f in failures:
                v = by_name[Path(f["path"]).name]
                v.error = _clean_reason(f["reason"], tmp)
                if v.error.startswith("too short"):
                    v.error += ": upload a longer clip"
        kept: list[ScoredRow] = []
        for row in rows:
            v = by_name[Path(row.path).name]
            v.utt_id, v.duration, v.scored = row.utt_id, float(row.duration), float(row.scored)
            v.ok = True
            v.score, v.p_spoof, v.decision = float(row.score), float(row.p_spoof), label_name(int(row.decision))
            v.threshold = float(scorer.threshold)
            v.p_threshold = float(score_to_p_spoof(scorer.threshold))
            v.members = member_verdicts(scorer, row.members)
            kept.append(replace(row, path=v.name))  # the upload's name, not the server's temporary path
        if kept:
            table = rows_to_table(kept, members=False, source="score")
            tsv = _bytes_tsv(table, tmp)
    return BatchResult(
        verdicts,
        table,
        tsv,
        loaded.path.name,
        scorer.kind,
        float(scorer.threshold),
        scorer.threshold_source,
        scorer.scale,
        time.perf_counter() - t0,
    )


def _clean_reason(reason: str, tmp: str) -> str:
    """A failure reason without the server's temporary directory in it."""
    text = str(reason)
    for prefix in (os.path.join(tmp, "uploads") + os.sep, tmp + os.sep, tmp):
        text = text.replace(prefix, "")
    return text if text else "unreadable audio"


def fmt_prob(p: float) -> str:
    """A probability for display: 4 decimals, or 2 significant digits near 0 and 1 (never a bare 0.0000 / 1.0000)."""
    p = float(p)
    if not np.isfinite(p):
        return "n/a"
    if 1e-4 <= p <= 1 - 1e-4:
        return f"{p:.4f}"
    return f"{p:.1e}" if p < 0.5 else f"1 - {1 - p:.1e}"


def results_frame(batch: BatchResult) -> pd.DataFrame:
    """The sortable batch table: one row per scored upload (utt_id order, as the TSV) with member probabilities."""
    import pandas as pd

    rows = []
    for v in sorted(batch.ok, key=lambda f: f.utt_id):
        row: dict[str, Any] = {
            "utt_id": v.utt_id,
            "file": v.name,
            "decision": v.decision,
            "p_spoof": v.p_spoof,
            "score": v.score,
            "duration_s": v.duration,
            "scored_s": v.scored,
        }
        for m in v.members:
            row[f"p_spoof[{m.name}]"] = m.p_spoof
        rows.append(row)
    return pd.DataFrame(rows)


def probability_frame(v: FileVerdict, final_label: str = "final") -> pd.DataFrame:
    """Bar-chart data for one file: each member's and the final detector's P(spoof) with its threshold."""
    import pandas as pd

    rows = [
        {"detector": m.name, "role": "member", "p_spoof": m.p_spoof, "threshold": m.p_threshold, "decision": m.decision}
        for m in v.members
    ]
    rows.append(
        {
            "detector": final_label,
            "role": "final",
            "p_spoof": v.p_spoof,
            "threshold": v.p_threshold,
            "decision": v.decision,
        }
    )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------- inspect
@dataclass
class InspectData:
    """What the Inspect tab draws for one clip."""

    name: str
    sr: int
    duration: float
    wave_t: np.ndarray  # envelope time axis (s)
    wave_min: np.ndarray
    wave_max: np.ndarray
    mel_db: np.ndarray  # [n_mels, frames], dB re max
    mel_hop_s: float
    mel_fmax: float
    shown_seconds: float
    features: np.ndarray  # the recipe's vector (float32 as scored)
    z: np.ndarray  # standardised by the (first) member's training scaler
    feature_names: list[str]
    groups: list[tuple[str, int, int]]
    saliency: dict[str, dict[str, float]] | None = None  # method -> group -> value
    saliency_note: str = ""
    segments: pd.DataFrame | None = None  # score over time (segment_frame); None for a fixed-window recipe
    segments_note: str = ""
    threshold: float = float("nan")  # the detector's decision threshold on the score scale

    def feature_frame(self) -> pd.DataFrame:
        import pandas as pd

        group = np.empty(len(self.features), dtype=object)
        for name, a, b in self.groups:
            group[a:b] = name
        return pd.DataFrame(
            {
                "index": np.arange(len(self.features)),
                "feature": self.feature_names,
                "group": group,
                "value": self.features.astype(np.float64),
                "z": self.z,
            }
        )


def _envelope(y: np.ndarray, sr: int, points: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(y)
    k = max(1, int(np.ceil(n / points)))
    m = n // k
    if m == 0:
        return np.array([0.0]), np.array([float(y.min())]), np.array([float(y.max())])
    blocks = y[: m * k].reshape(m, k)
    t = (np.arange(m) * k + k / 2) / sr
    return t, blocks.min(axis=1), blocks.max(axis=1)


def inspect_upload(
    loaded: LoadedDetector,
    name: str,
    data: bytes,
    explainer: DiffDetector | None = None,
    max_seconds: float = 30.0,
    n_mels: int = 80,
    ig_steps: int = 32,
    segment_seconds: float = SEGMENT_SECONDS,
) -> InspectData:
    """Waveform envelope, log-mel spectrogram, the recipe's feature vector (coloured by group on the page) and the
    clip's saliency per feature group (dfdet.explain) — all computed from the bytes inside a temporary directory."""
    import librosa

    from dfdet.audio import load_audio, resample

    rec = loaded.recipe
    with tempfile.TemporaryDirectory(prefix="dfdet-app-") as tmp:
        p = Path(tmp) / safe_name(name)
        if len(data) == 0:
            raise InputError(p.name, "empty file (0 bytes)", "upload an audio file")
        p.write_bytes(bytes(data))
        try:
            y, sr = load_audio(p)
        except InputError as e:
            raise InputError(p.name, _clean_reason(e.reason, tmp), e.fix) from None
        segments, segments_note = segment_frame(loaded, p, segment_seconds)
    with one_thread():
        value = rec.extract(rec.prepare(y, sr))
        vec, names, groups = _shown_features(loaded, value)
    duration = len(y) / float(sr)
    t, lo, hi = _envelope(y, sr)
    target = int(getattr(rec, "sample_rate", 16000) or 16000)
    shown = min(duration, max_seconds)
    ys = resample(y[: int(round(shown * sr))], sr, target)
    hop = 160
    S = librosa.feature.melspectrogram(y=ys.astype(np.float32), sr=target, n_fft=512, hop_length=hop, n_mels=n_mels)
    mel_db = librosa.power_to_db(S, ref=np.max, top_db=80.0)
    first = loaded.scorer.members[0].detector
    z = (vec.astype(np.float64) - first.scaler_mean) / first.scaler_scale
    out = InspectData(
        safe_name(name),
        int(sr),
        duration,
        t,
        lo,
        hi,
        mel_db,
        hop / target,
        target / 2,
        shown,
        vec,
        z,
        names,
        groups,
        segments=segments,
        segments_note=segments_note,
        threshold=loaded.threshold,
    )
    if loaded.scorer.input_kind == "frames":
        out.saliency, out.saliency_note = frame_saliency(explainer, _frames(value, rec))
    else:
        out.saliency, out.saliency_note = clip_saliency(explainer, vec, ig_steps)
    return out


def _frames(value: Any, rec: Any) -> np.ndarray:
    """A frame recipe's extracted value as [T, D] float32 frames, as `score` reads them."""
    return np.asarray(value, dtype=np.float32).reshape(-1, len(rec.feature_names))


def _shown_features(loaded: LoadedDetector, value: Any) -> tuple[np.ndarray, list[str], list[tuple[str, int, int]]]:
    """The vector the Inspect tab draws, with its names and groups: a vector recipe's features; for a frame recipe
    what a vector model reads (the frames' mean and std, `ScoringDetector.input_of`) or, for a frame model, the
    frames' mean (standardised by its per-dimension scaler)."""
    rec = loaded.recipe
    spans = [(g.name, int(g.start), int(g.stop)) for g in rec.groups]
    if not getattr(rec, "frames", False):
        vec = np.asarray(value, dtype=np.float64).reshape(-1).astype(np.float32)
        return vec, list(rec.feature_names), spans
    frames = _frames(value, rec)
    if loaded.scorer.input_kind == "frames":
        return frames.mean(axis=0, dtype=np.float64).astype(np.float32), [f"{n}_mean" for n in rec.feature_names], spans
    from dfdet.store import frame_stat_layout

    _, names, groups = frame_stat_layout(list(rec.feature_names), list(rec.groups))
    vec = np.asarray(loaded.scorer.input_of(frames, rec), dtype=np.float32)[0]
    return vec, names, [(g.name, int(g.start), int(g.stop)) for g in groups]


def segment_frame(
    loaded: LoadedDetector, path: str | os.PathLike, seconds: float = SEGMENT_SECONDS
) -> tuple[pd.DataFrame | None, str]:
    """(windows of `path` scored as `dfdet score --segments SECONDS` scores them: start, end, mid, score, p_spoof,
    decision; a caption) or (None, why not) for a detector on a fixed-window recipe."""
    import pandas as pd

    from dfdet.labels import label_name
    from dfdet.segments import score_windows, segmenter_for, window_frames

    try:
        rec, plan = segmenter_for(loaded.scorer, seconds)
    except UsageError:
        return None, (
            f"Score over time needs a detector on a frame recipe (lfcc); this one reads recipe {loaded.recipe.name}, "
            "a fixed window of each clip."
        )
    with one_thread():
        windows, _ = window_frames(rec, plan, path)
        rows = score_windows(loaded.scorer, rec, plan, Path(path).stem, str(path), windows)
    df = pd.DataFrame(
        {
            "start": [r.start for r in rows],
            "end": [r.end for r in rows],
            "mid": [(r.start + r.end) / 2 for r in rows],
            "score": [r.score for r in rows],
            "p_spoof": [r.p_spoof for r in rows],
            "decision": [label_name(r.decision) for r in rows],
        }
    )
    note = (
        f"{len(df)} window(s) of {plan.seconds:g} s every {plan.hop:g} s, each scored as a clip of its own (as "
        f"`dfdet score --segments {plan.seconds:g}`); the line is the threshold: windows below it sound spoofed."
    )
    return df, note


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch and BLAS/OpenMP on one thread for one clip's work (restored afterwards): intra-op threads only contend
    on so little data (a conv1d on one 154-D row is ~100x slower with 2 busy threads than with 1)."""
    import torch

    try:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        limits: Any = threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        limits = contextlib.nullcontext()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(before)


def clip_saliency(
    explainer: DiffDetector | None, features: np.ndarray, ig_steps: int = 32
) -> tuple[dict[str, dict[str, float]] | None, str]:
    """Per-group attributions of one clip with dfdet.explain: vanilla saliency share (|grad| summed per group, as a
    fraction of the total) and integrated-gradients sums (signed; positive pushes towards spoof)."""
    if explainer is None or not explain_available():
        return None, "saliency needs dfdet.explain and captum; it is omitted here"
    from dfdet.explain import ExplainOptions, explain_detector

    X = np.asarray(features, dtype=np.float32).reshape(1, -1)
    try:
        with one_thread():
            opts = ExplainOptions(methods=("saliency", "ig"), n_steps=ig_steps, per_sample=True, top=5)
            _, records = explain_detector(explainer, X, np.array([-1]), opts)
    except DfdetError as e:
        return None, f"saliency could not be computed: {e}"
    rec = records[0]
    out = {
        "saliency share (|grad|)": _shares(rec["saliency"]["groups_abs"]),
        "integrated gradients (toward spoof)": dict(rec["ig"]["groups"]),
    }
    note = "attributions of the final detector's spoof-positive output w.r.t. the standardised features (captum)"
    if not getattr(explainer, "exact", True):
        note += "; isotonic calibration: gradients of the pre-calibration score"
    return out, note


def _shares(values: dict[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in values.items()}


def frame_saliency(
    explainer: DiffDetector | None, frames: np.ndarray
) -> tuple[dict[str, dict[str, float]] | None, str]:
    """Per-group attributions of one clip's frames for a frame model (dfdet.explain.explain_frames): saliency share
    and input x gradient sums over the whole clip, and the filterbank bands its saliency peaks in."""
    if explainer is None or not explain_available():
        return None, "saliency needs dfdet.explain and captum; it is omitted here"
    from dfdet.explain import ExplainOptions, explain_frames

    try:
        with one_thread():
            opts = ExplainOptions(per_sample=True, per_sample_top=0)
            _, records = explain_frames(explainer, [frames], np.array([-1]), opts)
    except DfdetError as e:
        return None, f"saliency could not be computed: {e}"
    rec = records[0]
    out = {
        "saliency share (|grad|)": _shares(rec["saliency"]["groups_abs"]),
        "input x gradient (toward spoof)": dict(rec["ixg"]["groups"]),
    }
    note = "attributions of the final detector's spoof-positive output w.r.t. the standardised frames, summed over "
    note += "the clip's frames (captum)"
    bands = rec.get("band_share") or {}
    if bands:
        peak = sorted(bands.items(), key=lambda kv: -kv[1])[:3]
        note += "; saliency by filterbank band peaks at " + ", ".join(f"{b} ({100 * v:.0f} %)" for b, v in peak)
    if not getattr(explainer, "exact", True):
        note += "; isotonic calibration: gradients of the pre-calibration score"
    return out, note


# --------------------------------------------------------------------------------------------------- models tab
def history_frames(history: Sequence[Mapping[str, Any]] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-epoch metrics indexed by epoch, per-step loss and gradient norms indexed by step) of a training history."""
    import pandas as pd

    history = history or []
    epochs = [r for r in history if r.get("type") == "epoch"]
    steps = [r for r in history if r.get("type") == "step"]
    ecols = ["train_loss", "val_loss", "train_acc", "val_acc", "val_eer", "val_auc", "grad_norm_mean", "lr"]
    ef = pd.DataFrame([{k: r.get(k) for k in ["epoch", *ecols] if k in r} for r in epochs])
    if not ef.empty:
        ef = ef.set_index("epoch").apply(pd.to_numeric, errors="coerce")
    srows = []
    for r in steps:
        row = {"step": r.get("step"), "loss": r.get("loss"), "grad_norm": r.get("grad_norm")}
        for name, v in (r.get("layer_grad_norms") or {}).items():
            row[f"grad_norm[{name}]"] = v
        srows.append(row)
    sf = pd.DataFrame(srows)
    if not sf.empty:
        sf = sf.set_index("step").apply(pd.to_numeric, errors="coerce")
    return ef, sf


NOT_MEASURED = "not measured"
MISSING = "—"  # a fact the file does not record


def model_facts(card: ModelCard) -> dict[str, Any]:
    """One flat row of facts about a model: architecture, optimizer, epochs, validation and test metrics, threshold.

    A metric the training run could not measure says so and why ("not measured: trained without --test"), instead of
    an empty cell a reader takes for a missing file or a bug.
    """
    meta = card.meta
    tr = meta.get("training") or {}
    summ = meta.get("summary") or {}
    hp = tr.get("optimizer_hparams") or {}
    val = summ.get("val") or {}
    test = summ.get("test") or {}
    data = meta.get("data") or {}
    prov = meta.get("provenance") or {}
    no_val = f"{NOT_MEASURED}: no validation data" if not data.get("val") and not val else NOT_MEASURED
    no_test = f"{NOT_MEASURED}: trained without --test" if not data.get("test") and not test else NOT_MEASURED
    return {
        "model": card.label,
        "arch": (meta.get("arch") or {}).get("name"),
        "optimizer": tr.get("optimizer"),
        "lr": hp.get("lr"),
        "protocol": tr.get("protocol"),
        "seed": tr.get("seed"),
        "epochs_run": summ.get("epochs_run"),
        "best_epoch": summ.get("best_epoch"),
        "val_eer": _or(val.get("eer"), no_val),
        "val_auc": _or(val.get("auc"), no_val),
        "test_eer": _or(test.get("eer"), no_test),
        "threshold": meta.get("threshold"),
        "threshold_source": meta.get("threshold_source"),
        "recipe": (meta.get("recipe") or {}).get("name"),
        "dfdet": prov.get("dfdet_version"),
        "trained": prov.get("time"),
    }


def _or(value: Any, why: str) -> Any:
    return why if value is None or (isinstance(value, float) and not np.isfinite(value)) else value


def display_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A table for the page with no "None"/"NaN" cell: a column that has a gap, or mixes numbers and text, becomes
    text (numbers to 4 significant digits, gaps as an em dash); complete numeric columns stay numbers (sortable)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    for col in df.columns:
        values = list(df[col])
        numbers = [isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values]
        gaps = [v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)) for v in values]
        if any(gaps) or (any(numbers) and not all(numbers)):
            df[col] = [_cell_text(v, gap) for v, gap in zip(values, gaps, strict=True)]
    return df


def _cell_text(value: Any, gap: bool) -> str:
    if gap:
        return MISSING
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def ensemble_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Members of an ensemble JSON: kind, weight, flipped, fitting AUC and each member's own AUC/EER."""
    fuser = doc.get("fuser") or {}
    weights = list(fuser.get("weights") or [])
    flips = list(fuser.get("flips") or [w < 0 for w in weights])
    aucs = list(fuser.get("fitting_aucs") or [])
    alone = {m.get("name"): m for m in doc.get("members_alone") or [] if isinstance(m, dict)}
    rows = []
    for i, m in enumerate(doc.get("members") or []):
        name = m.get("name", f"member{i}") if isinstance(m, dict) else str(m)
        a = alone.get(name, {})
        rows.append(
            {
                "member": name,
                "kind": m.get("kind") if isinstance(m, dict) else None,
                "weight": weights[i] if i < len(weights) else None,
                "flipped": bool(flips[i]) if i < len(flips) else None,
                "fitting_auc": aucs[i] if i < len(aucs) else None,
                "auc_alone": a.get("auc"),
                "eer_alone": a.get("eer"),
            }
        )
    return rows


def calibration_facts(item: Document) -> dict[str, Any]:
    """One row per calibration JSON: method, threshold, what it was fitted on, its quality."""
    doc = item.doc
    thr = doc.get("threshold") or {}
    fit = doc.get("fitting_data") or {}
    q = doc.get("quality") or {}
    return {
        "calibration": item.label,
        "method": doc.get("method"),
        "detector": doc.get("detector"),
        "threshold": thr.get("value"),
        "policy": thr.get("policy"),
        "fitted_on": fit.get("source"),
        "n": fit.get("n"),
        "cllr": q.get("cllr"),
        "raw_cllr": q.get("raw_cllr"),
        "ece": q.get("ece"),
    }


_EVAL_KEYS = ("eer", "roc_auc", "min_dcf", "act_dcf", "cllr", "min_cllr", "min_tdcf_2019", "min_tdcf_2021")


def evaluation_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a `dfdet evaluate --json` document: name, group, counts, headline metrics and decision accuracy."""
    rows = []
    for r in doc.get("results") or []:
        if not isinstance(r, dict):
            continue
        row: dict[str, Any] = {"name": r.get("name"), "group": r.get("group") or "all"}
        row["n_bonafide"], row["n_spoof"] = r.get("n_bonafide"), r.get("n_spoof")
        for k in _EVAL_KEYS:
            if k in r:
                row[k] = r[k]
        dec = r.get("decision") or {}
        for k in ("accuracy", "balanced_accuracy", "fpr", "fnr"):
            if isinstance(dec, dict) and k in dec:
                row[k] = dec[k]
        rows.append(row)
    return rows


def provenance_facts(card: ModelCard) -> dict[str, str]:
    """The key facts of a model's provenance, as text for a table: dfdet version, feature recipe and its hash, the
    training data, when and by which command it was made (the full record stays available as JSON)."""
    meta = card.meta
    prov = meta.get("provenance") or {}
    recipe = meta.get("recipe") or {}
    data = meta.get("data") or {}
    train = data.get("train") or {}
    domain = data.get("training_domain") or {}
    libs = prov.get("libraries") or {}
    training = MISSING
    if train:
        training = (
            f"{Path(str(train.get('source') or '?')).name}: {train.get('rows', '?')} rows "
            f"({train.get('bonafide', '?')} bona fide, {train.get('spoof', '?')} spoof), hash {train.get('hash', '?')}"
        )
    if isinstance(domain, dict) and domain.get("synthetic"):
        training += f"; synthetic corpus ({(domain.get('corpus') or {}).get('name') or 'unnamed'})"
    recipe_text = f"{recipe.get('name')} (hash {recipe.get('hash', '?')})" if recipe.get("name") else MISSING
    return {
        "dfdet version": str(prov.get("dfdet_version") or MISSING),
        "feature recipe": recipe_text,
        "training data": training,
        "created (UTC)": str(prov.get("time") or MISSING),
        "command": _command(prov.get("argv")),
        "python / torch": f"{prov.get('python') or '?'} / {libs.get('torch') or '?'}",
    }


def _command(argv: Any) -> str:
    """The recorded command line as a user would type it (`dfdet train ...`, not the path of dfdet's __main__)."""
    import shlex

    if not isinstance(argv, list) or not argv:
        return MISSING
    head = Path(str(argv[0])).name
    return shlex.join(["dfdet" if head in ("dfdet", "__main__.py") else head, *map(str, argv[1:])])


def provenance_table(cards: Sequence[ModelCard]) -> pd.DataFrame:
    """Key provenance facts (rows) of each model (columns), for the About tab."""
    import pandas as pd

    df = pd.DataFrame({c.label: provenance_facts(c) for c in cards})
    df.index.name = "fact"
    return df


def provenance_lines(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance record of an artifact (dfdet version, libraries, command line, time) without surprises."""
    prov = meta.get("provenance") or {}
    return {k: prov.get(k) for k in ("dfdet_version", "time", "argv", "python", "libraries") if k in prov}
