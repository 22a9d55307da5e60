"""The featurize engine: utterances -> a feature recipe -> an HDF5 store, in parallel, in order, atomically.

Utterances are processed in sorted utt_id order. With `jobs > 1` a process pool computes features (one BLAS thread
per worker) and `imap` hands results back in input order, so rows stream into the store chunk by chunk (memory flat
in corpus size) and the stored values are byte-for-byte the same for any number of jobs. `shard=(K, N)` keeps every
N-th utterance of the sorted list starting at the K-th (1-based), so N shards partition the corpus deterministically
and `merge_stores` of all N equals a single run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dfdet import console
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import Recipe, get_recipe, recipe_hash
from dfdet.inputs import Utterance, check_unique_ids
from dfdet.store import StoreWriter

SKIP_FIX = "pass --skip-bad to continue past bad inputs"
T = TypeVar("T")
R = TypeVar("R")
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


def extract_one(recipe: Recipe, path: str) -> tuple[str, Any, float]:
    """Features of one file: ("ok", float64 vector, duration s) or ("bad", reason, nan). Never raises for bad input."""
    from dfdet.audio import load_audio

    try:
        y, sr = load_audio(path)
        duration = len(y) / float(sr)
        vec = np.asarray(recipe.extract(recipe.prepare(y, sr)), dtype=np.float64).reshape(-1)
    except InputError as e:
        return "bad", e.reason, float("nan")
    except DfdetError as e:
        return "bad", str(e), float("nan")
    except Exception as e:  # noqa: BLE001 - one odd file must not hide which file it was
        return "bad", f"feature extraction failed ({type(e).__name__}: {e})", float("nan")
    finite = np.isfinite(vec) & np.isfinite(vec.astype(np.float32))
    if not finite.all():
        return "bad", f"features contain NaN or infinite values ({int((~finite).sum())} of {vec.size})", float("nan")
    return "ok", vec, duration


# ---- worker processes ----
_WORKER_RECIPE: Recipe | None = None
_WORKER_LIMITS: Any = None


def one_blas_thread() -> Any:
    """Limit BLAS/OpenMP pools to one thread (identical sums for any -j, no oversubscription); a context manager."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


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


def work(path: str) -> tuple[str, Any, float]:
    """`extract_one` in a pool worker set up by `init_worker`."""
    assert _WORKER_RECIPE is not None
    return extract_one(_WORKER_RECIPE, path)


def available_cores() -> int:
    """Cores this process may run on (a Slurm allocation or taskset, not the whole node)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def default_start_method() -> str:
    """`fork` on Linux (fast start; workers only run numpy/librosa), else `spawn`; DFDET_MP_START overrides."""
    import multiprocessing

    wanted = os.environ.get("DFDET_MP_START")
    methods = multiprocessing.get_all_start_methods()
    if wanted:
        if wanted not in methods:
            raise UsageError(f"DFDET_MP_START={wanted!r} is not available here", f"use one of {', '.join(methods)}")
        return wanted
    return "fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn"


def warm_up(recipe: Recipe) -> None:
    """Run the recipe once on a short silence (lazy imports, cached tables); the result is discarded."""
    sr = int(getattr(recipe, "sample_rate", 16000) or 16000)
    with contextlib.suppress(Exception), one_blas_thread():
        recipe.extract(recipe.prepare(np.zeros(sr // 10), sr))


def _call(work: Callable[[T], R], item: T) -> R:
    """`work(item)` in a pool worker; an exception that would not unpickle comes back as a DfdetError naming it.

    Why: the parent unpickles a worker's exception in the pool's result thread; if that fails the thread dies and
    `imap` waits forever instead of failing.
    """
    try:
        return work(item)
    except Exception as e:
        try:
            pickle.loads(pickle.dumps(e))
        except Exception:  # any failure to round-trip: the parent could not receive it
            raise DfdetError(f"{type(e).__name__}: {e}") from None
        raise


@contextlib.contextmanager
def ordered_results(
    items: Sequence[T],
    serial: Callable[[T], R],
    work: Callable[[T], R],
    initializer: Callable[..., None],
    initargs: tuple = (),
    jobs: int = 1,
    start_method: str | None = None,
    chunksize: int | None = None,
    warm: Callable[[], None] | None = None,
) -> Iterator[Iterator[R]]:
    """Results for `items` in input order: `serial` in-process when jobs <= 1, else `work` in a process pool.

    The pool (of picklable `work` and `initializer`, which sets up each worker; `init_worker` or one that calls it,
    so Ctrl-C is left to the parent) starts on entry, before any output file is opened, and is terminated on errors
    and interrupts. Both paths run with one BLAS thread, so sums are identical for any -j. `warm` runs once before
    forking so workers inherit its imports and tables; `chunksize` None picks one from the number of items.
    """
    if jobs <= 1 or len(items) <= 1:
        with one_blas_thread():
            yield (serial(x) for x in items)
        return
    import multiprocessing

    method = start_method or default_start_method()
    if method == "fork" and warm is not None:
        warm()
    ctx = multiprocessing.get_context(method)
    workers = min(jobs, len(items))
    if chunksize is None:
        chunksize = max(1, min(32, len(items) // (workers * 8)))
    pool = ctx.Pool(workers, initializer=initializer, initargs=initargs)
    try:
        yield pool.imap(functools.partial(_call, work), items, chunksize=chunksize)
        pool.close()
        pool.join()
    finally:
        terminate_pool(pool)  # no-op after a clean join


def terminate_pool(pool: Any, timeout: float = 5.0) -> bool:
    """`pool.terminate()` that cannot hang the run; False if it had to be abandoned.

    CPython's terminate kills the workers, then takes and joins on the pool's queue locks and handler threads; a
    worker killed while holding one of those locks (taking a task, sending a result) leaves it held for ever. Seen in
    the test suite: after a strict-mode error stopped a `-j 2` run, and on a pool terminated while its worker was
    still taking its task. So terminate runs in a daemon thread; past `timeout` the workers are killed outright and
    the stuck thread is left behind (it holds nothing the rest of the run needs).
    """
    import threading

    workers = list(getattr(pool, "_pool", None) or [])  # taken first: terminate empties it (no public accessor)
    t = threading.Thread(target=pool.terminate, name="dfdet-pool-terminate", daemon=True)
    t.start()
    t.join(timeout)
    if not t.is_alive():
        return True
    for proc in workers:
        with contextlib.suppress(Exception):
            proc.kill()
            proc.join(1.0)
    return False


@contextlib.contextmanager
def result_stream(
    recipe: Recipe, paths: list[str], jobs: int = 1, start_method: str | None = None
) -> Iterator[Iterator[tuple[str, Any, float]]]:
    """Iterator of `extract_one` results for `paths` in input order (featurize and score share it)."""
    with ordered_results(
        paths,
        functools.partial(extract_one, recipe),
        work,
        init_worker,
        (recipe,),
        jobs,
        start_method,
        warm=functools.partial(warm_up, recipe),
    ) as results:
        yield results


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
) -> FeaturizeResult:
    """Featurize `utterances` into an HDF5 store at `out_path` (atomic: nothing is left behind on failure).

    Strict by default: the first bad input (undecodable, empty, NaN audio or NaN features) raises an InputError naming
    the file and no store is written. With `skip_bad`, each bad input gets one warning line and is recorded in the
    store's failed list; the caller decides the exit status from `result.skipped`.
    """
    t0 = time.perf_counter()
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "pass -j N with N >= 1")
    check_unique_ids(utterances)
    n_inputs = len(utterances)
    utts = shard_utterances(utterances, shard)
    meta = {"n_inputs": n_inputs, "skip_bad": bool(skip_bad)}
    if shard is not None:
        meta["shard"] = f"{shard[0]}/{shard[1]}"
    meta.update(attrs or {})
    failures: list[dict[str, str]] = []
    writer = StoreWriter(
        out_path,
        list(rec.feature_names),
        list(rec.groups),
        recipe=rec.name,
        recipe_config=rec.config(),
        recipe_hash=recipe_hash(rec),
        attrs=meta,
        chunk_rows=chunk_rows,
    )
    paths = [str(u.path) for u in utts]
    with result_stream(rec, paths, jobs, start_method) as results, writer:
        stream: Iterator = zip(utts, results, strict=True)
        if show_progress:
            stream = console.progress(stream, total=len(utts), desc="featurize", unit="file")
        for utt, (status, value, duration) in stream:
            if status != "ok":
                if not skip_bad:
                    raise InputError(utt.path, value, SKIP_FIX)
                console.warn(f"skipped {utt.path}: {value}")
                failures.append({"utt_id": utt.utt_id, "path": str(utt.path), "reason": str(value)})
                writer.add_failure(str(utt.path), str(value), utt.utt_id)
                continue
            writer.append(value, utt.utt_id, str(utt.path), utt.label, duration=duration, **utt.meta())
    return FeaturizeResult(
        done=writer.rows,
        total=len(utts),
        skipped=len(failures),
        failures=failures,
        seconds=time.perf_counter() - t0,
        out_path=str(out_path),
    )
