"""Shipped detectors: trained artifacts that come with dfdet, found by name.

A shipped detector is a folder `NAME/` holding a `detector.json` card index and the artifacts it points at:

    {"format": "dfdet-shipped", "name": NAME, "detector": "ensemble.json", "kind": "ensemble",
     "training_data": "...", "domain": "lab" | "real", "headline": {"metric": "eer", "value": 0.01, "on": "..."},
     "summary": "one line", "card": "MODEL_CARD.md"}

`detector` is the main artifact (a model .pt, a calibration JSON or an ensemble JSON), relative to the folder.
Folders are looked up in the checkout's `models/` (a source tree, editable installs), then in the package data
`dfdet/_shipped/` that setup.py copies into a wheel. The detector called `default` is what `dfdet score FILES` uses
when none is named. `fingerprint` is what `make models` promises to rebuild bit for bit on the same CPU,
`compare_rebuild` what it promises on another (tests/test_shipped.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfdet.errors import InputError, UsageError

CARD = "detector.json"
FORMAT = "dfdet-shipped"
DEFAULT = "default"
DETECTOR_SUFFIXES = (".pt", ".pth", ".json")
PACKAGE_DIR = Path(__file__).resolve().parent / "_shipped"
SOURCE_TREE = Path(__file__).resolve().parent.parent
CHECKOUT_DIR = SOURCE_TREE / "models"
NO_DEFAULT_FIX = (
    "name one: dfdet score --detector NAME FILES (dfdet models lists them), or build models/default with "
    "`make models SHARED=../shared` in a checkout"
)


@dataclass
class Shipped:
    """One detector folder: its card index, resolved main artifact and where it was found."""

    name: str
    folder: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def detector(self) -> Path:
        return self.folder / str(self.card.get("detector", ""))

    @property
    def kind(self) -> str:
        return str(self.card.get("kind") or "?")

    def headline(self) -> str:
        """`EER 1.2 % on ...` from the card's headline figure, or '-'."""
        h = self.card.get("headline") or {}
        if not isinstance(h, dict) or h.get("value") is None:
            return "-"
        metric, value = str(h.get("metric", "")).lower(), float(h["value"])
        shown = f"{100 * value:.2f} %" if metric in ("eer", "acc", "accuracy") else f"{value:.4g}"
        return f"{metric.upper()} {shown}" + (f" on {h['on']}" if h.get("on") else "")

    def row(self) -> dict[str, str]:
        """The summary row `dfdet models` prints."""
        return {
            "name": self.name,
            "kind": self.kind,
            "domain": str(self.card.get("domain") or "-"),
            "training_data": str(self.card.get("training_data") or "-"),
            "headline": self.headline(),
            "path": str(self.detector),
        }


def search_dirs() -> list[Path]:
    """Where shipped detector folders are looked for, first match of a name wins: the checkout (a source tree with
    pyproject.toml), then the package data. DFDET_MODELS (paths joined by os.pathsep) replaces both."""
    env = os.environ.get("DFDET_MODELS")
    if env is not None:
        return [Path(p) for p in env.split(os.pathsep) if p]
    checkout = [CHECKOUT_DIR] if (SOURCE_TREE / "pyproject.toml").is_file() else []
    return checkout + [PACKAGE_DIR]


def read_card(folder: Path) -> Shipped:
    """The folder's detector.json, checked: a clear error names the folder when it is not a shipped detector."""
    path = folder / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            folder, f"no {CARD} in this folder", "pass a detector file or a folder with a detector.json"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read ({e})", "restore the file from the repository") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT or not card.get("detector"):
        raise InputError(path, f"not a shipped-detector card (format {FORMAT!r} and 'detector')", "see dfdet.shipped")
    return Shipped(str(card.get("name") or folder.name), folder, card)


def shipped(extra: list[str | os.PathLike] | None = None) -> list[Shipped]:
    """Every detector folder in the search dirs (each name once, the first found), then for each `extra` dir its
    detector folders, or, without any, its loose detector files (models, calibration and ensemble JSONs)."""
    seen: dict[str, Shipped] = {}
    for root in search_dirs():
        for card in sorted(root.glob(f"*/{CARD}")) if root.is_dir() else []:
            det = read_card(card.parent)
            seen.setdefault(det.name, det)
    out = list(seen.values())
    for root in map(Path, extra or []):
        cards = [root / CARD] if (root / CARD).is_file() else sorted(root.rglob(CARD))
        out += [read_card(c.parent) for c in cards] if cards else loose(root)
    return out


def loose(root: Path) -> list[Shipped]:
    """Detector files under `root` (no cards): a card index made from each artifact's own records."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix not in (".pt", ".json") or not p.is_file():
            continue
        card = _card_of_artifact(p)
        if card is not None:
            out.append(Shipped(str(p.relative_to(root).with_suffix("")), p.parent, card))
    return out


def _card_of_artifact(path: Path) -> dict[str, Any] | None:
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        kind = doc.get("kind") if isinstance(doc, dict) else None
        return {"detector": path.name, "kind": kind} if kind in ("calibration", "ensemble") else None
    from dfdet.artifact import read_artifact

    try:
        obj = read_artifact(path)
    except InputError:
        return None
    train = (obj.get("data") or {}).get("train") or {}
    summary = obj.get("summary") or {}
    part = "test" if isinstance(summary.get("test"), dict) else "val"
    eer = (summary.get(part) or {}).get("eer")
    return {
        "detector": path.name,
        "kind": "model",
        "training_data": f"{Path(str(train.get('source') or '?')).name} ({train.get('rows', '?')} rows)",
        "headline": {"metric": "eer", "value": eer, "on": part} if eer is not None else None,
    }


def shipped_root() -> Path:
    """The directory holding the shipped detector folders (for `dfdet app` with no --models): the first search dir
    with the `default` detector, else the first with any; a usage error when none is installed."""
    roots = [r for r in search_dirs() if r.is_dir() and any(r.glob(f"*/{CARD}"))]
    if not roots:
        raise UsageError("no shipped detectors are installed", "pass --models DIR or --detector FILE")
    return next((r for r in roots if (r / DEFAULT / CARD).is_file()), roots[0])


def find(name: str) -> Shipped | None:
    """The shipped detector called `name`, or None."""
    for root in search_dirs():
        if (root / name / CARD).is_file():
            return read_card(root / name)
    return None


def looks_like_detector(arg: str) -> bool:
    """Whether a first positional argument of `dfdet score` names the detector (else it is an input).

    `-` is always input. A path ending in .pt/.pth/.json (existing or not) or a folder with a detector.json is a
    detector; any other existing path is input; a non-path is a detector when it is a shipped name.
    """
    if arg == "-":
        return False
    p = Path(arg)
    if p.suffix.lower() in DETECTOR_SUFFIXES:
        return True
    if p.exists():
        return p.is_dir() and (p / CARD).is_file()
    return find(arg) is not None


def resolve(ref: str | None) -> str:
    """A --detector value (shipped name, detector folder or file) -> the path of the artifact to load.

    None -> the `default` shipped detector, or a usage error saying how to name one (no silent fallback to another).
    """
    if ref is None:
        det = find(DEFAULT)
        if det is None:
            raise UsageError("no detector named and no default detector is installed", NO_DEFAULT_FIX)
        return str(det.detector)
    p = Path(ref)
    if p.is_dir():
        return str(read_card(p).detector)
    if p.exists() or p.suffix.lower() in DETECTOR_SUFFIXES:
        return ref
    det = find(ref)
    if det is None:
        names = ", ".join(d.name for d in shipped()) or "none installed"
        raise UsageError(f"no detector file or shipped detector called {ref!r}", f"shipped: {names}; or pass a path")
    return str(det.detector)


def card_of(artifact: str | os.PathLike) -> Shipped | None:
    """The shipped detector whose main artifact `artifact` is (its folder's card), or None for any other file."""
    p = Path(artifact)
    if not (p.parent / CARD).is_file():
        return None
    det = read_card(p.parent)
    return det if det.detector.resolve() == p.resolve() else None


def trust_note(det: Shipped) -> str:
    """What `score` says once per run about a shipped detector: its training data and where its card is."""
    domain = det.card.get("domain")
    what = det.card.get("training_data") or "data its card describes"
    return (
        f"detector {det.name} ({domain + '-domain, ' if domain else ''}shipped) was trained on {what}; "
        f"{det.headline()}; how far to trust it: {det.folder / str(det.card.get('card') or CARD)}"
    )


def artifact_files(folder: str | os.PathLike) -> list[Path]:
    """The rebuilt artifacts of a detector folder (.pt, .json and torch-free .npz copies, not the hand-written
    detector.json)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in (".pt", ".json", ".npz") and p.name != CARD)


# What legitimately differs between two builds of the same artifact: when, where and by which command line it was
# made, and the paths (and file bytes, which HDF5 stamps) of the intermediate stores under the build's work dir.
VOLATILE_KEYS = frozenset(
    {"provenance", "time", "created", "argv", "command", "file_hash", "source_sha256"}
    | {"train_seconds", "train_cpu_seconds", "wall_seconds", "samples_per_second", "elapsed_s", "seconds"}
)
PATH_KEYS = frozenset({"source", "path", "file", "model", "output"})


def _array_digest(a: Any) -> dict[str, Any]:
    import numpy as np

    a = np.ascontiguousarray(a)
    if a.dtype.kind == "U":  # a string held in an .npz: its value
        return {"str": str(a)}
    return {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def _canonical(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, dict):
        return {
            str(k): (Path(str(v)).name if k in PATH_KEYS and isinstance(v, str) else _canonical(v))
            for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))
            if k not in VOLATILE_KEYS
        }
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if hasattr(obj, "detach"):  # a tensor: exact bytes
        return _array_digest(obj.detach().cpu().contiguous().numpy())
    if isinstance(obj, float) and obj != obj:
        return "nan"
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def load_artifact(path: str | os.PathLike) -> Any:
    """An artifact's content as Python objects: a .pt's dict (tensors kept), a torch-free .npz copy with its arrays
    as digests and its metadata as JSON, or a JSON file."""
    p = Path(path)
    if p.suffix == ".pt":
        import torch

        return torch.load(p, map_location="cpu", weights_only=True)
    if p.suffix == ".npz":
        import numpy as np

        with np.load(p, allow_pickle=False) as z:
            return {k: json.loads(str(z[k])) if k == "meta_json" else _array_digest(z[k]) for k in z.files}
    return json.loads(p.read_text(encoding="utf-8"))


def fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of an artifact with its volatile fields left out: tensors by their exact bytes, JSON values as written.

    Two builds whose fingerprints agree have identical weights, scalers, thresholds, calibrations, fusion weights and
    metrics; they may differ only in time, command line, host and work-dir paths (VOLATILE_KEYS, PATH_KEYS basename).
    """
    return _digest(_canonical(load_artifact(path)))


def _digest(canonical: Any) -> str:
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# Where float32 kernels differ (another CPU: BLAS and oneDNN choose kernels by its instruction set), training
# amplifies last-bit differences into other weights. What a rebuild there must still reproduce, key by key:
# - metrics (TOLERANT_KEYS, and everything under them such as their bootstrap CIs): within FIGURE_TOLERANCE. Measured
#   between the committed build and a rebuild on an AMX machine with the same torch: at most 0.0063 (an act_dcf; EERs
#   moved by up to 2 of the 600 test clips); 0.02 is 12 of those 600;
# - values fitted to the rebuilt scores or features (FITTED_KEYS and *_threshold): free, as are the weights' bytes;
# - everything else (settings, hyperparameters, recipes, counts of clips, names, tensor shapes): exactly.
TOLERANT_KEYS = frozenset(
    {"eer", "ci", "fold_eer", "roc_auc", "auc", "fitting_aucs", "auc_after_flip", "cllr", "min_cllr", "raw_cllr"}
    | {"cllr_excess", "min_dcf", "act_dcf", "min_tdcf_2019", "min_tdcf_2021", "ece", "ece_prior_spoof"}
    | {"accuracy", "acc", "acc_at_0.5", "balanced_accuracy", "f1", "precision", "recall", "fpr", "fnr", "far", "frr"}
)
FITTED_KEYS = frozenset(
    {"threshold", "params", "a", "b", "intercept", "weights", "z_mean", "z_std", "score", "final_train_loss"}
    | {"grad_norm", "layer_grad_norm_mean", "reliability"}  # training and calibration diagnostics
    | {"tn", "fp", "tp", "fn", "hash"}  # decision counts at a fitted threshold, hashes of rebuilt scores or features
    | {"iterations", "epochs_to_convergence", "best_epoch", "val_best_epoch", "epochs_run"}  # solver progress
)
FIGURE_TOLERANCE = 0.02


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass
class RebuildCheck:
    """How a rebuilt detector folder compares with the committed one."""

    identical: list[str] = field(default_factory=list)  # artifacts whose fingerprints agree
    differing: list[str] = field(default_factory=list)  # artifacts whose fingerprints differ
    problems: list[str] = field(default_factory=list)  # structure, settings or counts that differ; a metric beyond
    largest: tuple[str, float] = ("", 0.0)  # the metric that moved most, and by how much

    def summary(self) -> str:
        where, delta = self.largest
        return (
            f"{len(self.identical)} artifacts bit-identical, {len(self.differing)} not; "
            f"largest change of a metric: {delta:.4g} ({where or 'none'}); {len(self.problems)} problems"
        )


def _compare_tree(a: Any, b: Any, where: str, tol: float, check: RebuildCheck, mode: str = "exact") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if "sha256" in a and "shape" in a:  # a tensor's digest: its bytes may differ, its form may not
            if (a.get("dtype"), a.get("shape")) != (b.get("dtype"), b.get("shape")):
                check.problems.append(f"{where}: tensor {a.get('shape')} became {b.get('shape')}")
            return
        if set(a) != set(b):
            check.problems.append(f"{where}: keys {sorted(set(a) ^ set(b))} in only one build")
        for k in sorted(set(a) & set(b)):
            sub = mode
            if mode == "exact" and k in TOLERANT_KEYS:
                sub = "tolerant"
            elif k in FITTED_KEYS or k.endswith("_threshold"):
                sub = "fitted"
            _compare_tree(a[k], b[k], f"{where}/{k}", tol, check, sub)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            check.problems.append(f"{where}: {len(a)} entries became {len(b)}")
        for i, (u, v) in enumerate(zip(a, b, strict=False)):
            _compare_tree(u, v, f"{where}[{i}]", tol, check, mode)
    elif mode == "fitted":
        return
    elif mode == "tolerant" and _number(a) and _number(b):
        delta = abs(float(a) - float(b))
        if delta > check.largest[1]:
            check.largest = (where, delta)
        if delta > tol:
            check.problems.append(f"{where}: {a:.6g} became {b:.6g} (tolerance {tol})")
    elif type(a) is not type(b) or a != b:
        check.problems.append(f"{where}: {a!r} became {b!r}")


def compare_rebuild(
    committed: str | os.PathLike, rebuilt: str | os.PathLike, tolerance: float = FIGURE_TOLERANCE
) -> RebuildCheck:
    """Compare a `make models` rebuild with the committed folder: bit for bit by fingerprint, and, where that fails
    (another CPU), by structure (same artifacts, keys, tensor shapes), settings and counts exactly, and metrics within
    `tolerance` (TOLERANT_KEYS, FITTED_KEYS)."""
    check = RebuildCheck()
    ours = {p.name: p for p in artifact_files(committed)}
    theirs = {p.name: p for p in artifact_files(rebuilt)}
    for name in sorted(set(ours) ^ set(theirs)):
        check.problems.append(f"{name}: in only one build")
    for name in sorted(set(ours) & set(theirs)):
        a, b = (_canonical(load_artifact(p)) for p in (ours[name], theirs[name]))  # each read once
        if _digest(a) == _digest(b):  # = their fingerprints
            check.identical.append(name)
            continue
        check.differing.append(name)
        _compare_tree(a, b, name, tolerance, check)
    return check
