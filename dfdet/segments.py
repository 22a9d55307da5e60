"""Where in a file: a detector's score over time, one row per window of a frame recipe's audio.

Why windows are re-extracted rather than sliced from the whole file's frames: a frame recipe's edge frames
(pre-emphasis, deltas) depend on where the audio starts and ends, so sliced frames would score slightly differently
from the same seconds cut out and scored on their own. Here each window's frames are extracted from that window's
audio alone, and its score goes through `ScoringDetector.input_of` + `score_features` as a whole file's does: a
window's row is what `dfdet score` says of those seconds written to a file of their own (exactly so for audio at the
recipe's rate; a file at another rate is resampled once, whole, so the cut differs from a separately resampled cut by
the resampler's edge samples). The cost: with the default hop of half a window every sample is extracted twice.

Memory is bounded: the file is decoded and resampled block by block (soxr's streaming resampler, bit-identical to
the one-shot resampling of `lfcc`'s prepare) and only the audio from the current window's start is held. A file's
window inputs (the frames of each window, for a frame model or the vector model's mean+std row) are collected before
they are scored, so a file costs about twice its frames (a 1-h file: ~170 MB of float32 frames at 60-D).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.caveats import MIN_SECONDS, too_short, too_short_fix
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.inputs import Utterance

if TYPE_CHECKING:
    from dfdet.features import Recipe
    from dfdet.scoring import BadInput, ScoringDetector

COLUMNS = ("utt_id", "start", "end", "score", "p_spoof", "decision", "path")
HOP_FRACTION = 0.5  # default hop: half a window
BLOCK_SECONDS = 10.0  # audio decoded per read


# --------------------------------------------------------------------------------------------------- geometry
def window_bounds(n: int, win: int, hop: int, min_len: int = 1) -> list[tuple[int, int]]:
    """Sample bounds [start, end) of the windows of an `n`-sample signal.

    Full windows of `win` samples every `hop` samples from 0; then the rest [next start, n) when it is at least half
    a window (and `min_len`) long and reaches past the last full window; a signal no longer than one window is one
    window, the whole signal. Nothing for a signal shorter than `min_len`.
    """
    if win < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample (got {win}, {hop})")
    if n < max(1, min_len):
        return []
    if n <= win:
        return [(0, n)]
    out = [(s, s + win) for s in range(0, n - win + 1, hop)]
    s = out[-1][0] + hop
    if n > out[-1][1] and 2 * (n - s) >= win and n - s >= min_len:
        out.append((s, n))
    return out


@dataclass(frozen=True)
class Segmenter:
    """Window length and hop in seconds, on a recipe's sample rate."""

    seconds: float
    hop: float
    rate: int
    min_seconds: float = MIN_SECONDS

    @property
    def win(self) -> int:
        return max(1, int(round(self.seconds * self.rate)))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.hop * self.rate)))

    @property
    def min_len(self) -> int:
        return int(math.ceil(self.min_seconds * self.rate - 1e-3 * self.rate))  # 1 ms slack, as caveats.too_short

    def bounds(self, n: int) -> list[tuple[int, int]]:
        return window_bounds(n, self.win, self.hop_samples, self.min_len)


def segmenter_for(
    detector: ScoringDetector, seconds: float, hop: float | None = None, min_seconds: float = MIN_SECONDS
) -> tuple[Recipe, Segmenter]:
    """The detector's frame recipe and the window plan; a one-line error for a fixed-window recipe or bad sizes."""
    rec = detector.feature_recipe()
    if not getattr(rec, "frames", False):
        from dfdet.caveats import window_seconds

        w = window_seconds(rec.config())
        what = f"the first {w:g} s of a file" if w else "one vector per file"
        raise UsageError(
            f"--segments needs a detector on a frame recipe; {detector.path} reads recipe {rec.name} ({what}), "
            "which has no time axis to window",
            "score windows with a detector trained on lfcc features (dfdet featurize --recipe lfcc, dfdet train), "
            "or drop --segments",
        )
    if not (seconds > 0 and math.isfinite(seconds)):
        raise UsageError(f"--segments must be a positive number of seconds, got {seconds:g}", "pass e.g. --segments 2")
    hop = seconds * HOP_FRACTION if hop is None else float(hop)
    if not (0 < hop <= seconds):
        raise UsageError(
            f"--segment-hop must be > 0 and at most the window ({seconds:g} s), got {hop:g}",
            "pass a hop no longer than --segments (default: half a window)",
        )
    if seconds + 1e-3 < min_seconds:
        raise UsageError(
            f"windows of {seconds:g} s are shorter than the shortest clip judged ({min_seconds:g} s)",
            f"pass --segments {min_seconds:g} or more, or lower --min-seconds",
        )
    return rec, Segmenter(float(seconds), hop, int(rec.sample_rate), float(min_seconds))


# --------------------------------------------------------------------------------------------------- audio
def prepared_blocks(
    path: str | os.PathLike, rate: int, block_seconds: float = BLOCK_SECONDS
) -> Iterator[tuple[np.ndarray, float]]:
    """(audio, seconds decoded for it) blocks of a file as mono float64 at `rate` (channel mean, soxr HQ): the same
    samples as a frame recipe's `prepare` of the whole decoded file. Decoding problems raise InputError."""
    import soxr

    from dfdet.features.lfcc import RESAMPLE_QUALITY, decoded_blocks

    rs = None
    for y, sr, last in decoded_blocks(path, block_seconds):
        if rs is None and sr != rate:
            rs = soxr.ResampleStream(sr, rate, 1, dtype="float64", quality=RESAMPLE_QUALITY)
        y = np.ascontiguousarray(y, dtype=np.float64)
        yield (y if sr == rate else np.asarray(rs.resample_chunk(y, last=last), dtype=np.float64)), len(y) / float(sr)


def window_frames(
    rec: Recipe, plan: Segmenter, path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS
) -> tuple[list[tuple[int, int, np.ndarray]], float]:
    """([(start, end, float32 frames)] of a file's windows in order, start/end in samples at the recipe's rate; the
    file's decoded duration in seconds). Each window's frames come from its own audio; only the audio from the
    current window on is held."""
    out: list[tuple[int, int, np.ndarray]] = []
    duration = 0.0
    buf = np.zeros(0)
    buf0 = 0  # sample index of buf[0]
    n = 0
    done = 0  # windows emitted
    win, hop = plan.win, plan.hop_samples
    blocks = prepared_blocks(path, plan.rate, block_seconds)

    def emit(a: int, b: int) -> tuple[int, int, np.ndarray]:
        frames = np.asarray(rec.extract(buf[a - buf0 : b - buf0]), dtype=np.float32)  # float32 as a store keeps them
        return a, b, frames

    for y, seconds in blocks:
        duration += seconds
        buf = np.concatenate([buf, y]) if len(buf) else y
        n += len(y)
        while done * hop + win <= n:  # a full window: emitted as soon as its audio is in
            a = done * hop
            out.append(emit(a, a + win))
            done += 1
            keep = done * hop
            buf, buf0 = buf[keep - buf0 :], keep
    for a, b in plan.bounds(n)[done:]:  # what only the end of the file decides: a last partial window or a short file
        out.append(emit(a, b))
    return out, duration


def file_windows(rec: Recipe, plan: Segmenter, path: str) -> tuple[str, Any, float]:
    """("ok", [(start, end, frames), ...], duration s) or ("bad", reason, nan) for one file; never raises for bad
    input (the pool's per-file contract, as `dfdet.featurize.extract_one`)."""
    try:
        rows, duration = window_frames(rec, plan, path)
    except InputError as e:
        return "bad", e.reason, float("nan")
    except DfdetError as e:
        return "bad", str(e), float("nan")
    except Exception as e:  # noqa: BLE001 - one odd file must not hide which file it was
        return "bad", f"feature extraction failed ({type(e).__name__}: {e})", float("nan")
    for _, _, m in rows:
        if not np.isfinite(m).all():
            return "bad", "features contain NaN or infinite values", float("nan")
    return "ok", rows, duration


# ---- worker processes (the featurize pool, with this module's per-file work) ----
_WORKER: tuple[Recipe, Segmenter] | None = None


def _init_worker(rec: Recipe, plan: Segmenter) -> None:
    from dfdet.featurize import init_worker

    global _WORKER
    init_worker(rec)
    _WORKER = (rec, plan)


def _work(path: str) -> tuple[str, Any, float]:
    assert _WORKER is not None
    return file_windows(*_WORKER, path)


# --------------------------------------------------------------------------------------------------- scoring
@dataclass
class SegmentRow:
    """One scored window: seconds from the file's start, bona-fide-positive score, decision int8 (0 bona fide)."""

    utt_id: str
    path: str
    start: float
    end: float
    score: float
    p_spoof: float
    decision: int


def score_windows(
    detector: ScoringDetector, rec: Recipe, plan: Segmenter, utt_id: str, path: str, windows: Sequence
) -> list[SegmentRow]:
    """Score each (start, end, frames) window on its own, through `input_of` + `score_features` like a whole file."""
    rows = []
    for a, b, frames in windows:
        out = detector.score_features(detector.input_of(frames, rec))
        rows.append(
            SegmentRow(
                utt_id,
                str(path),
                a / plan.rate,
                b / plan.rate,
                float(out["score"][0]),
                float(out["p_spoof"][0]),
                int(out["decision"][0]),
            )
        )
    return rows


def score_segments(
    detector: ScoringDetector,
    inputs: Iterable[Utterance | BadInput | str | os.PathLike],
    seconds: float,
    hop: float | None = None,
    jobs: int = 1,
    skip_bad: bool = False,
    failures: list[dict[str, str]] | None = None,
    lazy: bool | None = None,
    min_seconds: float = MIN_SECONDS,
) -> Iterator[SegmentRow]:
    """Window rows of audio files, file by file in input order (windows in time order).

    As `dfdet.scoring.score_audio_stream`: a list is featurized by the worker pool (`jobs`), another iterable (stdin)
    lazily; bad files, files shorter than `min_seconds` and non-finite scores raise InputError or, under `skip_bad`,
    are warned about, appended to `failures` and left out. Raises UsageError at once for a detector whose recipe is
    not a frame recipe.
    """
    rec, plan = segmenter_for(detector, seconds, hop, min_seconds)
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "pass -j N with N >= 1")
    return _segments(detector, rec, plan, inputs, jobs, skip_bad, failures, lazy)


def _segments(
    detector: ScoringDetector,
    rec: Recipe,
    plan: Segmenter,
    inputs: Iterable[Any],
    jobs: int,
    skip_bad: bool,
    failures: list[dict[str, str]] | None,
    lazy: bool | None,
) -> Iterator[SegmentRow]:
    from dfdet.featurize import warm_up
    from dfdet.pool import IDLE, ordered_results
    from dfdet.scoring import _torch_threads, bad_input_handler, pool_entries

    if lazy is None:
        lazy = not isinstance(inputs, (list, tuple))
    bad = bad_input_handler(skip_bad, failures)
    entries, early = pool_entries(inputs, lazy, bad)
    with (
        _torch_threads(1),  # one window at a time, one torch thread: a window's score is the cut file's (contract)
        ordered_results(
            entries,
            functools.partial(file_windows, rec, plan),
            _work,
            _init_worker,
            (rec, plan),
            jobs,
            warm=functools.partial(warm_up, rec),
            payload=lambda u: str(u.path),
            name=lambda u: str(getattr(u, "path", u)),
            local=early,
            live=lazy,
        ) as results,
    ):
        for got in results:
            if got is IDLE:
                continue
            u, (status, value, duration) = got
            if status != "ok":
                bad(u.path, value, u.utt_id)
                continue
            why = too_short(duration, plan.min_seconds)
            if why is not None or not value:
                bad(u.path, why or "too short for one window", u.utt_id, too_short_fix(plan.min_seconds))
                continue
            rows = score_windows(detector, rec, plan, u.utt_id, u.path, value)
            if not all(math.isfinite(r.score) for r in rows):
                bad(u.path, "score is not finite", u.utt_id)
                continue
            yield from rows


# --------------------------------------------------------------------------------------------------- files
def _seconds(x: float) -> str:
    return f"{x:.3f}"


@contextlib.contextmanager
def segment_writer(target: str | os.PathLike) -> Iterator[Callable[[SegmentRow], None]]:
    """`write(row)` into a segments TSV (header COLUMNS, one row per window): stdout (`-`, flushed per row) or a file
    written atomically (it appears only when the block succeeds)."""
    from dfdet.atomic import atomic_open
    from dfdet.labels import label_name
    from dfdet.scores import format_p, format_score

    streaming = str(target) == "-"
    with atomic_open(target, "w") as fh:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(COLUMNS)

        def write(r: SegmentRow) -> None:
            values = (r.utt_id, _seconds(r.start), _seconds(r.end), format_score(r.score), format_p(r.p_spoof))
            out.writerow([*values, label_name(r.decision), r.path])
            if streaming:
                fh.flush()

        yield write


def is_segments_header(fields: Sequence[str]) -> bool:
    """True for the header of a segments TSV (`dfdet score --segments`)."""
    return [f.strip().lower() for f in fields[: len(COLUMNS)]][:6] == list(COLUMNS[:6])


def read_segments(path: str | os.PathLike) -> dict[str, Any]:
    """A segments TSV -> {"utt_id", "path" (lists), "start", "end", "score", "p_spoof" (float arrays), "decision"
    (int8, 0 bona fide)}; errors name the file and line."""
    from dfdet.labels import parse_label

    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(p, f"cannot read ({e})", "pass a segments TSV written by dfdet score --segments") from None
    if not lines or not is_segments_header(lines[0].split("\t")):
        raise InputError(p, "not a segments TSV (header)", f"expected the header {' '.join(COLUMNS)}")
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) < 6:
            raise InputError(p, f"line {lineno}: {len(f)} fields, need {len(COLUMNS) - 1}+", "fix or regenerate it")
        try:
            nums = [float(x) for x in f[1:5]]
        except ValueError:
            raise InputError(p, f"line {lineno}: start/end/score/p_spoof must be numbers", "regenerate it") from None
        cols["utt_id"].append(f[0])
        for c, v in zip(("start", "end", "score", "p_spoof"), nums, strict=True):
            cols[c].append(v)
        cols["decision"].append(parse_label(f[5], where=f"{p}:{lineno}: "))
        cols["path"].append(f[6] if len(f) > 6 else "")
    out: dict[str, Any] = {c: np.asarray(cols[c], dtype=np.float64) for c in ("start", "end", "score", "p_spoof")}
    out.update(utt_id=cols["utt_id"], path=cols["path"], decision=np.asarray(cols["decision"], dtype=np.int8))
    return out
