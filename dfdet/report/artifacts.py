"""Report inputs: find every artifact under the given paths, tell what each one is by its content, load it.

Kinds: `model` (.pt written by `dfdet train`, with its `.history.jsonl` beside it), `history` (a lone history),
`scores` (score file with a header holding utt_id and score), `segments` (`dfdet score --segments` windows),
`calibration`, `ensemble`, `landscape`, `evaluation`
(`dfdet evaluate --json`), `explain`, `shortcuts`, `attack`, `degrade` (JSON documents), `features` (feature stores,
listed for provenance only). JSON documents are recognised by their `kind` / `schema` key first, by their shape
second, so a renamed file is still read correctly.

A score file's provenance sidecar (`FILE.prov.json`, written by `dfdet score -o FILE`) is no report input of its own:
it is read with its score file (as that artifact's `doc`, when its recorded hash matches the file) and matches the
file to the model whose content hash it records.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.errors import DfdetError, InputError

JSON_KINDS = (
    "calibration",
    "ensemble",
    "landscape",
    "evaluation",
    "explain",
    "shortcuts",
    "attack",
    "degrade",
    "crossval",
)
SIDECAR_KIND = "score-provenance"  # detect_artifact's answer for a score file's .prov.json (read with its file)
SCORE_SUFFIXES = (".tsv", ".csv", ".txt", ".scores")
STORE_SUFFIXES = (".h5", ".hdf5", ".hdf", ".npz")
# Filename tokens that tag a score file's domain (the first one found wins); True = out of domain.
DOMAIN_TOKENS: dict[str, bool] = {
    "wild": True,
    "itw": True,
    "ood": True,
    "inthewild": True,
    "outdomain": True,
    "lab": False,
    "indomain": False,
    "clean": False,
    "test": False,
    "eval": False,
    "dev": False,
}
_KIND_ALIASES = {
    "dfdet-landscape": "landscape",
    "dfdet.evaluate": "evaluation",
    "evaluate": "evaluation",
    "explanation": "explain",
    "attribution": "explain",
    "attributions": "explain",
    "shortcut": "shortcuts",
    "shortcut-scan": "shortcuts",
    "shortcut_scan": "shortcuts",
    "attacks": "attack",
    "adversarial": "attack",
    "degradation": "degrade",
    "degradations": "degrade",
}


@dataclass
class Artifact:
    """One input file: its kind, path, content hash and parsed content (`doc` for JSON, `table` for scores)."""

    kind: str
    path: Path
    sha256: str = ""
    doc: dict[str, Any] = field(default_factory=dict)
    table: Any = None
    history: list[dict[str, Any]] | None = None
    history_path: Path | None = None
    name: str = ""
    domain: str = ""
    out_of_domain: bool | None = None
    domain_source: str = ""
    model: str = ""  # matched model name (scores, landscape, attack, explain)
    model_source: str = ""  # how `model` was matched for scores: "sidecar" (content hash) or "name"
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or self.path.stem


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def normalise_kind(value: Any) -> str | None:
    """`dfdet-landscape`, `dfdet.evaluate/1`, `attack` ... -> one of JSON_KINDS (None if unknown)."""
    if not isinstance(value, str) or not value:
        return None
    v = value.strip().lower().split("/")[0]
    if v in _KIND_ALIASES:
        return _KIND_ALIASES[v]
    for prefix in ("dfdet-", "dfdet.", "dfdet_"):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    v = _KIND_ALIASES.get(v, v)
    return v if v in JSON_KINDS else None


def json_kind(doc: Any) -> str | None:
    """The kind of a JSON document: its `kind`/`schema` key, else recognised by shape (None if not a dfdet doc)."""
    if not isinstance(doc, dict):
        return None
    keys = set(doc)
    methods = doc.get("methods")
    if isinstance(methods, dict) and any(isinstance(v, dict) and "splits" in v for v in methods.values()):
        return "explain"  # dfdet.explain summaries carry the *detector's* kind under "kind"
    for key in ("kind", "schema", "type", "format"):
        k = normalise_kind(doc.get(key))
        if k and _shape_ok(k, keys):
            return k
    if {"hessian", "directions"} <= keys or "top_eigenvalue" in keys:
        return "landscape"
    if "fuser" in keys and "members" in keys:
        return "ensemble"
    if "quality" in keys and "threshold" in keys and "method" in keys:
        return "calibration"
    if "results" in keys and "settings" in keys:
        return "evaluation"
    if "conditions" in keys or "degradations" in keys:
        return "degrade"
    if "sweeps" in keys or ("rows" in keys and str(doc.get("method", "")).lower() in ("fgsm", "pgd")):
        return "attack"
    if "flagged" in keys or "univariate" in keys or "shortcuts" in keys:
        return "shortcuts"
    if "attributions" in keys or ("groups" in keys and "top_features" in keys):
        return "explain"
    return None


_REQUIRED = {"ensemble": ("fuser", "members"), "calibration": ("threshold",), "landscape": (), "crossval": ("models",)}


def _shape_ok(kind: str, keys: set[str]) -> bool:
    return all(k in keys for k in _REQUIRED.get(kind, ()))


def _first_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline()
    except OSError:
        return None


def _looks_like_scores(path: Path) -> bool:
    head = _first_line(path)
    if head is None:
        return False
    fields = [f.strip().lower() for f in re.split(r"[\t,]", head)]
    return any(f in ("utt_id", "filename", "uttid") for f in fields) and any(
        f in ("score", "cm-score", "cm_score", "llr") for f in fields
    )


def detect_artifact(path: str | os.PathLike) -> str | None:
    """What a file is, from its content: a kind string (see module doc) or None when it is no report input."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".history.jsonl"):
        return "history"
    suffix = p.suffix.lower()
    if suffix == ".pt" or suffix == ".pth":
        try:
            with open(p, "rb") as fh:
                magic = fh.read(4)
        except OSError:
            return None
        return "model" if magic[:2] == b"PK" or magic[:1] == b"\x80" else None
    if suffix in STORE_SUFFIXES:
        return "features"
    if suffix == ".json":
        from dfdet.scores import SIDECAR_SUFFIX, is_sidecar_doc

        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return SIDECAR_KIND if name.endswith(SIDECAR_SUFFIX) else None
        if is_sidecar_doc(doc) or name.endswith(SIDECAR_SUFFIX):
            return SIDECAR_KIND
        return json_kind(doc)
    if suffix in SCORE_SUFFIXES and _looks_like_segments(p):
        return "segments"
    if suffix in SCORE_SUFFIXES and _looks_like_scores(p):
        return "scores"
    return None


def _looks_like_segments(path: Path) -> bool:
    """A segments TSV (`dfdet score --segments`): one row per window, recognised by its header."""
    from dfdet.segments import is_segments_header

    head = _first_line(path)
    return head is not None and is_segments_header(head.rstrip("\r\n").split("\t"))


def walk_inputs(inputs: Sequence[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """Files under the inputs (directories walked, sorted), each with whether it was named explicitly."""
    out: list[tuple[Path, bool]] = []
    seen: set[Path] = set()
    for arg in inputs:
        p = Path(arg)
        if not p.exists():
            raise InputError(p, "no such file or directory", "check the path (report inputs are files or directories)")
        pairs = [(f, False) for f in _walk(p)] if p.is_dir() else [(p, True)]
        for f, explicit in pairs:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append((f, explicit))
    return out


_PRUNE = ("__pycache__", "node_modules", "site-packages")


def _walk(root: Path) -> list[Path]:
    """Files under `root`, sorted; hidden files and directories (.venv, .git) and caches are not entered."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _PRUNE)
        out += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
    return sorted(out)


# --------------------------------------------------------------------------------------------------- loading
def _file_hash(path: Path) -> str:
    from dfdet.provenance import file_hash

    return file_hash(path)


def load_model_artifact(path: Path) -> Artifact:
    """Model meta (everything but the weights) and its history beside it, if any."""
    from dfdet.artifact import read_artifact
    from dfdet.training import history_path_for

    obj = read_artifact(path)
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "initial_state", "scaler")}
    art = Artifact("model", path, _file_hash(path), doc=meta, name=path.stem)
    hp = history_path_for(path)
    if hp.exists():
        art.history, art.history_path = _read_history(hp), hp
    return art


def _read_history(path: Path) -> list[dict[str, Any]]:
    from dfdet.training import read_history

    try:
        return read_history(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read the training history ({e})", "re-train or delete the file") from None


def load_artifact(path: Path, kind: str) -> Artifact:
    """Parse one file of a known kind (raises InputError with a fix when it cannot be read)."""
    if kind == "model":
        return load_model_artifact(path)
    if kind == "history":
        name = path.name[: -len(".history.jsonl")]
        return Artifact("history", path, _file_hash(path), history=_read_history(path), name=name)
    if kind == "scores":
        from dfdet.scores import read_scores, read_sidecar, sidecar_path

        sha = _file_hash(path)
        art = Artifact("scores", path, sha, table=read_scores(path), name=path.stem)
        side = read_sidecar(path, sha)
        if side is not None:
            art.doc = side
        elif sidecar_path(path).exists():
            art.notes.append(f"{sidecar_path(path).name} does not describe this file (stale or unreadable); ignored")
        return art
    if kind == "features":
        return Artifact("features", path, _file_hash(path), name=path.stem)
    if kind == "segments":
        from dfdet.segments import read_segments

        return Artifact("segments", path, _file_hash(path), table=read_segments(path), name=path.stem)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read as JSON ({e})", "pass a JSON written by dfdet") from None
    return Artifact(kind, path, _file_hash(path), doc=doc, name=path.stem)


@dataclass
class Inputs:
    """Every artifact found, by kind, in a deterministic order (sorted by path)."""

    items: list[Artifact] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of files that are no input
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of inputs that failed to load

    def of(self, kind: str) -> list[Artifact]:
        return [a for a in self.items if a.kind == kind]

    @property
    def models(self) -> list[Artifact]:
        return self.of("model")

    @property
    def scores(self) -> list[Artifact]:
        return self.of("scores")


def collect(
    inputs: Sequence[str | os.PathLike],
    domains: Sequence[tuple[str, str]] = (),
    skip_bad: bool = False,
    warn: Any = None,
) -> Inputs:
    """Walk, detect, load and cross-link the report inputs.

    An explicitly named file that is no dfdet artifact, or any artifact that fails to load, is an error; with
    `skip_bad` it is reported through `warn(text)` and listed in `Inputs.bad`. Files inside directories that are no
    artifact (audio, logs) are ignored and listed in `Inputs.skipped`.
    """
    found = Inputs()
    sidecars: list[Path] = []
    for path, explicit in walk_inputs(inputs):
        kind = detect_artifact(path)
        if kind == SIDECAR_KIND:
            sidecars.append(path)
            continue
        if kind is None:
            if explicit:
                err = InputError(
                    path,
                    "not a report input (model .pt, score .tsv, calibration/ensemble/landscape/explain/attack JSON)",
                    "pass dfdet artifacts or a directory holding them",
                )
                if not skip_bad:
                    raise err
                found.bad.append((str(path), err.reason))
                if warn:
                    warn(str(err))
            else:
                found.skipped.append((str(path), "not a dfdet artifact"))
            continue
        try:
            found.items.append(load_artifact(path, kind))
        except DfdetError as e:
            if not skip_bad:
                raise
            found.bad.append((str(path), str(e)))
            if warn:
                warn(str(e))
    _attach_histories(found)
    _skip_lone_sidecars(found, sidecars)
    _name_models(found)
    for art in found.scores:
        tag_domain(art, domains)
        art.model = match_model(art, found.models)
        if art.model:
            art.model_source = "sidecar" if sidecar_model(art, found.models) else "name"
    for art in found.items:
        if art.kind in ("landscape", "attack", "explain", "degrade") and not art.model:
            art.model = doc_model(art, found.models)
    return found


def _attach_histories(found: Inputs) -> None:
    """A history passed beside its model belongs to it; a lone history stays a `history` item."""
    by_stem = {a.path.with_suffix("").resolve(): a for a in found.models}
    keep = []
    for art in found.items:
        if art.kind == "history":
            stem = art.path.with_name(art.name).resolve()
            model = by_stem.get(stem)
            if model is not None:
                if model.history is None:
                    model.history, model.history_path = art.history, art.path
                continue
        keep.append(art)
    found.items = keep


def _skip_lone_sidecars(found: Inputs, sidecars: Sequence[Path]) -> None:
    """A sidecar is read with its score file; one whose score file is not among the inputs is listed as ignored."""
    from dfdet.scores import sidecar_path

    have = {sidecar_path(a.path).resolve() for a in found.scores}
    for p in sidecars:
        if p.resolve() not in have:
            found.skipped.append((str(p), "provenance sidecar whose score file is not among the inputs"))


def _name_models(found: Inputs) -> None:
    """Model names are file stems, made unique with their parent directory when two share a stem."""
    stems = [a.path.stem for a in found.models]
    for a in found.models:
        if stems.count(a.path.stem) > 1:
            a.name = f"{a.path.parent.name}/{a.path.stem}"


def tag_domain(art: Artifact, domains: Sequence[tuple[str, str]] = ()) -> None:
    """Domain of a score file: `--domain NAME=GLOB`, else a single-valued `domain` column, else a filename token."""
    for name, pattern in domains:
        for text in (str(art.path), art.path.as_posix(), art.path.name):
            if fnmatch.fnmatch(text, pattern):
                art.domain, art.domain_source = name, f"--domain {name}={pattern}"
                art.out_of_domain = _is_ood(name)
                return
    table = art.table
    col = (getattr(table, "extra", None) or {}).get("domain")
    if col:
        values = sorted({v for v in col if v})
        if len(values) == 1:
            art.domain, art.domain_source = values[0], "domain column"
            art.out_of_domain = _is_ood(values[0])
            return
        if len(values) > 1:
            art.domain, art.domain_source = "mixed", "domain column (several values)"
            return
    parts = _tokens(art.path.stem) + _tokens(art.path.parent.name)
    for tok in parts:
        if tok in DOMAIN_TOKENS:
            art.domain, art.domain_source = tok, f"filename ({tok!r})"
            art.out_of_domain = DOMAIN_TOKENS[tok]
            return


def _is_ood(name: str) -> bool | None:
    toks = _tokens(name)
    for tok in toks:
        if tok in DOMAIN_TOKENS:
            return DOMAIN_TOKENS[tok]
    if any(t in ("out", "ood", "target", "real") for t in toks):
        return True
    if any(t in ("in", "id", "source") for t in toks):
        return False
    return None


def sidecar_maker(art: Artifact, candidates: Sequence[Artifact], sole_member: bool = True) -> Artifact | None:
    """The candidate a score file's provenance sidecar names by content: the one whose file hash equals the recorded
    detector hash, else (`sole_member`: a calibrated detector over one model) the one member's hash; None when none
    matches or there is no sidecar."""
    from dfdet.scores import is_sidecar_doc

    if art.kind != "scores" or not is_sidecar_doc(art.doc):
        return None
    det = art.doc["detector"]
    members = [m for m in det.get("members") or [] if isinstance(m, dict)]
    wanted = [det.get("hash")] + ([members[0].get("hash")] if sole_member and len(members) == 1 else [])
    for h in wanted:
        if not isinstance(h, str) or not h:
            continue
        hits = [c for c in candidates if c.sha256 == h]
        if hits:
            return hits[0]  # identical copies of one file: any of them is the right answer
    return None


def sidecar_model(art: Artifact, models: Sequence[Artifact]) -> str:
    """The model a score file's sidecar names by content ('' when none matches, e.g. for an ensemble)."""
    found = sidecar_maker(art, models)
    return found.name if found is not None else ""


def match_model(art: Artifact, models: Sequence[Artifact]) -> str:
    """The model a score file came from: the one its provenance sidecar records by content hash (sidecar_model);
    else, by name, the longest model stem that is a token run of the score file's name or of its parent directory
    ('' when none matches)."""
    by_content = sidecar_model(art, models)
    if by_content:
        return by_content
    best = ""
    words = _tokens(art.path.stem)
    parent = _tokens(art.path.parent.name)
    for m in models:
        toks = _tokens(m.path.stem)
        if not toks:
            continue
        for seq in (words, parent):
            n = len(toks)
            if any(seq[i : i + n] == toks for i in range(len(seq) - n + 1)) and len(m.path.stem) > len(best):
                best = m.name
    return best


def doc_model(art: Artifact, models: Sequence[Artifact]) -> str:
    """The model a landscape/attack/explain JSON describes: the path it records (resolved, then by name), else the
    file name (as for score files)."""
    doc = art.doc
    prov = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    rec_inputs = prov.get("inputs") if isinstance(prov.get("inputs"), dict) else {}
    det_rec = rec_inputs.get("detector") if isinstance(rec_inputs.get("detector"), dict) else {}
    recorded = [doc.get(k) for k in ("model", "detector", "model_path")] + [
        prov.get("model"),
        prov.get("detector"),
        det_rec.get("path"),
    ]
    recorded = [r for r in recorded if isinstance(r, str) and r]
    for rec in recorded:
        candidates = [Path(rec), art.path.parent / rec]
        for m in models:
            for c in candidates:
                try:
                    if c.exists() and c.resolve() == m.path.resolve():
                        return m.name
                except OSError:
                    continue
        for m in models:
            if Path(rec).name == m.path.name:
                return m.name
    if recorded:
        return Path(recorded[0]).stem
    return match_model(art, models)


# --------------------------------------------------------------------------------------------------- helpers
def model_info(art: Artifact) -> dict[str, Any]:
    """The facts about a model the report uses, with safe defaults."""
    meta = art.doc
    tr = meta.get("training") or {}
    arch = meta.get("arch") or {}
    hp = tr.get("optimizer_hparams") or {}
    optimizer = str(tr.get("optimizer") or "?").lower()
    adversarial = tr.get("adversarial")
    if adversarial:
        variant = "adversarial"
    elif optimizer == "sam":
        variant = "sam"
    else:
        variant = "plain"
    return {
        "name": art.name,
        "path": str(art.path),
        "optimizer": optimizer,
        "protocol": str(tr.get("protocol") or "default"),
        "seed": tr.get("seed"),
        "arch": arch.get("name"),
        "loss": tr.get("loss"),
        "epochs": tr.get("epochs"),
        "batch_size": tr.get("batch_size"),
        "lr": hp.get("lr"),
        "adversarial": adversarial,
        "variant": variant,
        "threshold": meta.get("threshold"),
        "threshold_source": meta.get("threshold_source"),
        "summary": meta.get("summary") or {},
        "data": meta.get("data") or {},
        "provenance": meta.get("provenance") or {},
        "training": tr,
        "recipe": (meta.get("recipe") or {}).get("name"),
        "recipe_hash": (meta.get("recipe") or {}).get("hash"),
    }


def table_hash(scores: Any, labels: Any) -> str:
    """The hash dfdet.calibration.fitting_description records for (scores, labels) in file order."""
    from dfdet.provenance import array_hash

    return array_hash(np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(np.int8))


def system_key(art: Artifact) -> str:
    """What a score file scores, independent of its domain: the matched model, else the stem without domain words."""
    if art.model:
        return art.model
    toks = [t for t in _tokens(art.path.stem) if t not in DOMAIN_TOKENS and t not in ("scores", "score", "cal")]
    return "_".join(toks) or art.path.stem


def contains_tokens(text: str, name: str) -> bool:
    """Whether the words of `name` occur, in order and adjacent, among the words of `text`."""
    words, toks = _tokens(text), _tokens(name)
    n = len(toks)
    return bool(toks) and any(words[i : i + n] == toks for i in range(len(words) - n + 1))


def is_ensemble_name(text: str) -> bool:
    toks = _tokens(text)
    return any(t in ("ens", "ensemble", "fused", "fusion") or t.startswith("ensemble") for t in toks)
