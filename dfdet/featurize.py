"""The featurize engine: utterances -> a feature recipe -> an HDF5 store, in parallel, in order, atomically.

Utterances are processed in sorted utt_id order. With `jobs > 1` a process pool (dfdet.pool: one BLAS thread per
worker, a bounded window of files in flight) hands results back in input order, so rows stream into the store chunk
by chunk (memory flat in corpus size) and the stored values are byte-for-byte the same for any number of jobs. A
worker that dies (out of memory, kill -9) ends the run with WorkerDied (exit 4): the rows finished so far are
committed, marked incomplete, and `resume=True` later featurizes only the utterances the store lacks.

`shard=(K, N)` keeps every N-th utterance of the sorted list starting at the K-th (1-based), so N shards partition
the corpus deterministically and `merge_stores` of all N equals a single run.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfdet import console
from dfdet.errors import DfdetError, InputError, UsageError, WorkerDied
from dfdet.features import Recipe, get_recipe, recipe_hash
from dfdet.inputs import Utterance, check_unique_ids
from dfdet.pool import one_blas_thread, ordered_results
from dfdet.store import FrameStoreWriter, StoreRows, StoreWriter

SKIP_FIX = "pass --skip-bad to continue past bad inputs"
_BLAS_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass
class FeaturizeResult:
    """What a run did: rows written, inputs considered (after sharding), inputs skipped and why, wall time."""

    done: int
    total: int
    skipped: int
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    out_path: str = ""
    resumed: int = 0  # inputs already in the output store (resume)
    frames: int = 0  # frames written (frame recipes)


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (1 <= K <= N) -> (K, N)."""
    try:
        k_text, n_text = str(text).split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(f"bad shard {text!r}", "write --shard K/N, e.g. --shard 2/8") from None
    if not 1 <= k <= n:
        raise UsageError(f"bad shard {text!r}: need 1 <= K <= N", "write --shard K/N, e.g. --shard 2/8")
    return k, n


def shard_utterances(utts: Sequence[Utterance], shard: tuple[int, int] | None) -> list[Utterance]:
    """Sort by utt_id and keep shard K of N: positions K-1, K-1+N, K-1+2N, ... (balanced, deterministic)."""
    ordered = sorted(utts, key=lambda u: u.utt_id)
    if shard is None:
        return ordered
    k, n = shard
    if not 1 <= k <= n:
        raise UsageError(f"bad shard {k}/{n}: need 1 <= K <= N", "write --shard K/N, e.g. --shard 2/8")
    return ordered[k - 1 :: n]


def extract_one(recipe: Recipe, path: str, augment: str = "") -> tuple[str, Any, float]:
    """Features of one file: ("ok", float64 vector, duration s) or ("bad", reason, nan). Never raises for bad input.

    A frame recipe (`frames = True`) gives a float32 [T, D] matrix instead, read through its `read_file` (the file
    streamed in blocks: memory bounded by the frames, not the decoded audio) when it has one. `augment`: an
    augmentation spec (dfdet.augment) applied to the decoded audio before the recipe prepares it.
    """
    try:
        if getattr(recipe, "frames", False):
            vec, duration = _frames_of(recipe, path, augment)
        else:
            y, duration = _load(recipe, path, augment)
            vec = np.asarray(recipe.extract(y), dtype=np.float64).reshape(-1)
    except InputError as e:
        return "bad", e.reason, float("nan")
    except DfdetError as e:
        return "bad", str(e), float("nan")
    except Exception as e:  # noqa: BLE001 - one odd file must not hide which file it was
        return "bad", f"feature extraction failed ({type(e).__name__}: {e})", float("nan")
    finite = np.isfinite(vec)
    if vec.dtype != np.float32:
        finite &= np.isfinite(vec.astype(np.float32))
    if not finite.all():
        return "bad", f"features contain NaN or infinite values ({int((~finite).sum())} of {vec.size})", float("nan")
    return "ok", vec, duration


def _load(recipe: Recipe, path: str, augment: str = "") -> tuple[np.ndarray, float]:
    """Prepared audio of one file (augmented first when `augment` is a spec) and the file's duration."""
    if augment:
        from dfdet.augment import load_augmented

        return load_augmented(recipe, path, augment)
    from dfdet.features import load_prepared

    return load_prepared(recipe, path)


def _frames_of(recipe: Recipe, path: str, augment: str = "") -> tuple[np.ndarray, float]:
    """A frame recipe's float32 [T, D] matrix of one file and the file's duration (an augmented copy is decoded
    whole: the augmentation needs the whole signal)."""
    read = getattr(recipe, "read_file", None)
    if read is not None and not augment:
        frames, duration = read(path)
    else:
        y, duration = _load(recipe, path, augment)
        frames = recipe.extract(y)
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != len(recipe.feature_names):
        raise DfdetError(f"recipe {recipe.name} gave frames of shape {frames.shape}", "this is a bug in the recipe")
    return frames, duration


# ---- worker processes ----
_WORKER_RECIPE: Recipe | None = None
_WORKER_LIMITS: Any = None


def init_worker(recipe: Recipe) -> None:
    """Pool initializer shared by featurize and score: one BLAS thread, signals left to the parent."""
    global _WORKER_RECIPE, _WORKER_LIMITS
    # Ctrl-C reaches the whole process group: only the parent handles it (and terminates the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for var in _BLAS_ENV:
        os.environ[var] = "1"  # for libraries the worker loads later (spawn / forkserver)
    _WORKER_LIMITS = one_blas_thread()
    _WORKER_RECIPE = recipe


def work(item: str | tuple[str, str]) -> tuple[str, Any, float]:
    """`extract_one` in a pool worker set up by `init_worker`."""
    assert _WORKER_RECIPE is not None
    return _extract(_WORKER_RECIPE, item)


def _extract(recipe: Recipe, item: str | tuple[str, str]) -> tuple[str, Any, float]:
    """`extract_one` of a payload: a path, or (path, augmentation spec) for an augmented copy."""
    return extract_one(recipe, *item) if isinstance(item, tuple) else extract_one(recipe, item)


def available_cores() -> int:
    """Cores this process may run on (a Slurm allocation or taskset, not the whole node)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def warm_up(recipe: Recipe) -> None:
    """Run the recipe once on a short silence (lazy imports, cached tables); the result is discarded."""
    sr = int(getattr(recipe, "sample_rate", 16000) or 16000)
    with contextlib.suppress(Exception), one_blas_thread():
        recipe.extract(recipe.prepare(np.zeros(sr // 10), sr))


@contextlib.contextmanager
def result_stream(
    recipe: Recipe,
    items: Iterable[Any],
    jobs: int = 1,
    start_method: str | None = None,
    *,
    local: Callable[[Any], Any] | None = None,
    live: bool = False,
) -> Iterator[Iterator[Any]]:
    """(item, `extract_one` result) pairs in input order for Utterances or paths (featurize and score share it).

    `local` and `live` as in `dfdet.pool.ordered_results` (score's stdin stream: bad inputs found early, rows out
    before stdin closes).
    """
    with ordered_results(
        items,
        functools.partial(_extract, recipe),
        work,
        init_worker,
        (recipe,),
        jobs,
        start_method,
        warm=functools.partial(warm_up, recipe),
        payload=_payload,
        name=_path_of,
        local=local,
        live=live,
    ) as results:
        yield results


def _path_of(item: Any) -> str:
    return str(getattr(item, "path", item))


def _add(writer: StoreWriter, x: np.ndarray, utt_id: str, **row: Any) -> None:
    """One row: a feature vector, or a frame matrix when the writer is a FrameStoreWriter."""
    if isinstance(writer, FrameStoreWriter):
        writer.append_frames(x, utt_id, **row)
    else:
        writer.append(x, utt_id, **row)


def _payload(item: Any) -> str | tuple[str, str]:
    """What a worker gets: the path, or (path, spec) for an augmented copy (dfdet.augment)."""
    spec = getattr(item, "augment", "")
    return (_path_of(item), spec) if spec else _path_of(item)


class _Carry:
    """The rows and failures of the store being resumed, copied into its successor in utt_id order around new rows."""

    def __init__(self, writer: StoreWriter, previous: StoreRows | None, failures: list[dict[str, str]]) -> None:
        self.writer, self.failures = writer, failures
        self.rows: Iterator[tuple] = previous.iter_rows(writer.chunk_rows) if previous is not None else iter(())
        self.row = next(self.rows, None)
        self.fails = collections.deque(sorted(previous.failures, key=lambda f: f["utt_id"]) if previous else [])

    def upto(self, utt_id: str | None) -> None:
        """Copy what sorts before `utt_id` (everything left when None)."""
        while self.row is not None and (utt_id is None or self.row[1] < utt_id):
            x, uid, path, label, duration, meta = self.row
            _add(self.writer, x, uid, path=path, label=label, duration=duration, **meta)
            self.row = next(self.rows, None)
        while self.fails and (utt_id is None or self.fails[0]["utt_id"] < utt_id):
            f = self.fails.popleft()
            self.writer.add_failure(f["path"], f["reason"], f["utt_id"])
            self.failures.append(f)

    def close(self) -> None:
        close = getattr(self.rows, "close", None)
        if close is not None:
            close()  # the old file is closed before the new one replaces it


def previous_rows(out_path: str | Path, rec: Recipe, utts: Sequence[Utterance], shard: str | None) -> StoreRows:
    """The store at `out_path` opened for `resume`, after checking it is the same job: recipe, shard, inputs."""
    previous = StoreRows(out_path)
    fix = "resume with the recipe, --shard and inputs of the first run, or drop --resume to start over"
    names = previous.frame_names if getattr(rec, "frames", False) else previous.feature_names
    if previous.recipe_hash != recipe_hash(rec) or names != list(rec.feature_names):
        raise DfdetError(
            f"{out_path} holds features of recipe {previous.recipe} (hash {previous.recipe_hash}), not {rec.name} "
            f"(hash {recipe_hash(rec)})",
            fix,
        )
    if previous.attrs.get("shard") != shard:
        raise DfdetError(f"{out_path} is shard {previous.attrs.get('shard') or 'all'}, not {shard or 'all'}", fix)
    ids = previous.utt_ids
    if any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        raise DfdetError(f"{out_path}: rows are not in utt_id order (not written by featurize)", fix)
    known = {u.utt_id for u in utts}
    strangers = [u for u in ids + [f["utt_id"] for f in previous.failures] if u not in known]
    if strangers:
        raise DfdetError(
            f"{out_path} has {len(strangers)} utterance(s) not among the inputs (e.g. {strangers[0]})", fix
        )
    return previous


def featurize(
    utterances: Sequence[Utterance],
    out_path: str | Path,
    recipe: str | Recipe = "seed154",
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    skip_bad: bool = False,
    chunk_rows: int = 256,
    attrs: dict[str, Any] | None = None,
    start_method: str | None = None,
    show_progress: bool = True,
    resume: bool = False,
) -> FeaturizeResult:
    """Featurize `utterances` into an HDF5 store at `out_path` (atomic: nothing is left behind on failure).

    Strict by default: the first bad input (undecodable, empty, NaN audio or NaN features) raises an InputError naming
    the file and no store is written. With `skip_bad`, each bad input gets one warning line and is recorded in the
    store's failed list; the caller decides the exit status from `result.skipped`.

    A worker that dies raises WorkerDied after committing every finished row, the store's `incomplete` attribute
    saying why. `resume` keeps the rows (and recorded failures) of an existing store at `out_path` and featurizes
    only the other utterances: the result equals an uninterrupted run's (same rows, values and order).
    """
    t0 = time.perf_counter()
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "pass -j N with N >= 1")
    check_unique_ids(utterances)
    n_inputs = len(utterances)
    utts = shard_utterances(utterances, shard)
    meta: dict[str, Any] = {"n_inputs": n_inputs, "skip_bad": bool(skip_bad)}
    if shard is not None:
        meta["shard"] = f"{shard[0]}/{shard[1]}"
    from dfdet.caveats import find_corpus

    corpus = find_corpus([u.path for u in utterances])  # e.g. the synthetic demo corpus: train records it
    if corpus is not None:
        meta["corpus"] = corpus
    meta.update(attrs or {})
    previous = None
    if resume and Path(out_path).exists():
        previous = previous_rows(out_path, rec, utts, meta.get("shard"))
    have = set(previous.utt_ids).union(f["utt_id"] for f in previous.failures) if previous else set()
    todo = [u for u in utts if u.utt_id not in have]
    failures: list[dict[str, str]] = []
    kind = FrameStoreWriter if getattr(rec, "frames", False) else StoreWriter  # frames: [T, D] per row (ragged)
    writer = kind(
        out_path,
        list(rec.feature_names),
        list(rec.groups),
        recipe=rec.name,
        recipe_config=rec.config(),
        recipe_hash=recipe_hash(rec),
        attrs=meta,
        chunk_rows=chunk_rows,
    )

    def put(utt: Utterance, status: str, value: Any, duration: float) -> None:
        carry.upto(utt.utt_id)
        if status != "ok":
            if not skip_bad:
                raise InputError(utt.path, value, SKIP_FIX)
            console.warn(f"skipped {utt.path}: {value}")
            failures.append({"utt_id": utt.utt_id, "path": str(utt.path), "reason": str(value)})
            writer.add_failure(str(utt.path), str(value), utt.utt_id)
            return
        _add(writer, value, utt.utt_id, path=str(utt.path), label=utt.label, duration=duration, **utt.meta())

    died: WorkerDied | None = None
    with result_stream(rec, todo, jobs, start_method) as results, writer:
        carry = _Carry(writer, previous, failures)
        try:
            stream: Iterator = results
            if show_progress:
                stream = console.progress(stream, total=len(todo), desc="featurize", unit="file")
            try:
                for utt, (status, value, duration) in stream:
                    put(utt, status, value, duration)
            except WorkerDied as e:
                died = e
                for utt, (status, value, duration) in e.finished:  # done out of order: finished work is kept
                    put(utt, status, value, duration)
            carry.upto(None)
        finally:
            carry.close()
        if died is not None:
            writer.attrs["incomplete"] = {"reason": died.what, "rows": writer.rows, "inputs": len(utts)}
    if died is not None:
        died.fix = (
            f"{writer.rows} finished row(s) kept in {out_path}, marked incomplete; lower -j or free memory, then "
            "run the same command with --resume"
        )
        raise died
    return FeaturizeResult(
        done=writer.rows,
        total=len(utts),
        skipped=len(failures),
        failures=failures,
        seconds=time.perf_counter() - t0,
        out_path=str(out_path),
        resumed=len(utts) - len(todo),
        frames=getattr(writer, "frames_written", 0),
    )
