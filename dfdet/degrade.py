"""Real-signal degradations and a detector's robustness to them (`dfdet attack MODEL AUDIO... --method degrade`).

Why: deepfakes in the wild arrive degraded (noisy phone lines, 8 kHz codecs, lossy re-encoding, level changes,
cut or padded recordings). Each condition is applied to the decoded audio in memory, the result is featurized with the
detector's own recipe (`prepare` + `extract`, exactly as `featurize` does) and scored; per condition the report gives
EER, AUC, accuracy at the detector's threshold and how many decisions changed against the clean audio.
Seeded: condition k of utterance i draws its noise from `default_rng([seed, i, k])`, so any worker may take any file.
With `jobs > 1` a pool of featurize's workers (SIGINT ignored, one BLAS thread) decodes, degrades and featurizes whole
files; the parent keeps the model and scores every condition once at the end, so results are identical for any -j.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, InputError, UsageError

if TYPE_CHECKING:
    from dfdet.attacks import DiffDetector
    from dfdet.features import Recipe
    from dfdet.inputs import Utterance

Transform = Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Degradation:
    name: str
    description: str
    fn: Transform
    needs_format: str | None = None  # soundfile format the condition needs (checked with sf.available_formats())


# --------------------------------------------------------------------------------------------------- signal ops
def power(y: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(y**2)) if len(y) else 0.0


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f-power noise: white Gaussian noise shaped by 1/sqrt(f) in the frequency domain (DC removed)."""
    if n == 0:
        return np.zeros(0)
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec = spec / np.sqrt(f)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n=n)
    return x - x.mean()


def add_noise(y: np.ndarray, snr_db: float, noise: np.ndarray) -> np.ndarray:
    """y + noise scaled so that 10 log10(P(y) / P(noise)) = snr_db exactly (over the whole signal)."""
    ps, pn = power(y), power(noise)
    if ps == 0 or pn == 0:
        return np.asarray(y, dtype=np.float64).copy()
    return y + noise * np.sqrt(ps / (pn * 10 ** (snr_db / 10.0)))


def gain(y: np.ndarray, db: float, clip: bool = True) -> np.ndarray:
    out = np.asarray(y, dtype=np.float64) * 10 ** (db / 20.0)
    return np.clip(out, -1.0, 1.0) if clip else out


def babble_noise(rng: np.random.Generator, n: int, sr: int, talkers: int = 6) -> np.ndarray:
    """Babble-like noise: `talkers` streams of pink noise, each gated by its own syllable-rate envelope (3-6 Hz),
    kept to the speech band (200-4000 Hz). Not speech, but it has speech's spectrum and fluctuating level."""
    if n == 0:
        return np.zeros(0)
    t = np.arange(n) / float(sr)
    out = np.zeros(n)
    for _ in range(int(talkers)):
        rate, phase = rng.uniform(3.0, 6.0), rng.uniform(0.0, 2 * np.pi)
        out += pink_noise(rng, n) * np.sin(2 * np.pi * rate * t + phase) ** 2
    spec = np.fft.rfft(out)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(f < 200.0) | (f > 4000.0)] = 0.0
    return np.fft.irfft(spec, n=n)


def round_trip(
    y: np.ndarray, sr: int, rate: int, subtype: str | None = None, fmt: str = "WAV", **options: Any
) -> np.ndarray:
    """Resample to `rate` and back to `sr` (soxr HQ, the project's resampler), length kept; with `subtype` the
    signal also passes through that codec at `rate` on the way (`fmt` its container, `options` as for `reencode`):
    a telephone line ('ULAW', 'GSM610' in WAV) or a codec that takes only some rates (MP3, Opus)."""
    from dfdet.audio import fix_length, resample

    y = np.asarray(y, dtype=np.float64)
    low = resample(y, sr, rate)
    if subtype:
        low = fix_length(reencode(low, rate, fmt, subtype, **options)[0], len(low))
    return fix_length(resample(low, rate, sr), len(y))


def band_limit(y: np.ndarray, sr: int, rate: int = 8000, subtype: str | None = None) -> np.ndarray:
    """Resample to `rate` and back: removes content above rate / 2 (a no-op copy when sr <= rate); `subtype` as for
    `round_trip` (a telephone line: 8 kHz band plus a narrow-band codec)."""
    if sr <= rate and not subtype:
        return np.asarray(y, dtype=np.float64).copy()
    return round_trip(y, sr, min(int(sr), int(rate)), subtype)


_WRITE_BLOCK = 1 << 16  # samples per libsndfile write in `reencode`


def reencode(y: np.ndarray, sr: int, fmt: str, subtype: str | None = None, **options: Any) -> tuple[np.ndarray, int]:
    """Encode with libsndfile (through soundfile) into memory and decode back: the codec's losses, nothing else.
    `options`: soundfile's write options (compression_level, bitrate_mode). When the decoder returns more samples
    than went in (LAME's 1,105-sample delay at low MP3 bitrates, where no gapless header is written), the leading
    delay is found by cross-correlation and dropped, so the output lines up with the input."""
    import soundfile as sf

    y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
    buf = io.BytesIO()
    # In blocks: libsndfile's Vorbis encoder crashes (SIGSEGV) on one multi-million-sample write (an 86-s 48 kHz
    # clip did); block writes encode the same stream.
    with sf.SoundFile(buf, "w", int(sr), 1, subtype=subtype, format=fmt, **options) as f:
        for i in range(0, len(y), _WRITE_BLOCK):
            f.write(y[i : i + _WRITE_BLOCK])
    buf.seek(0)
    out, sr2 = sf.read(buf, dtype="float64", always_2d=False)
    if out.ndim == 2:
        out = out.mean(axis=1)
    extra = len(out) - len(y)
    if extra > 0 and int(sr2) == int(sr) and len(y):
        from scipy import signal

        out = out[int(np.argmax(signal.correlate(out, y, mode="valid"))) :]
    return np.asarray(out, dtype=np.float64), int(sr2)


# RawBoost (Tak, Kamble, Patino, Todisco, Evans: "RawBoost: a raw data boosting and augmentation method applied to
# automatic speaker verification anti-spoofing", ICASSP 2022), its published defaults; random draws from `rng`.
def notch_filter(
    rng: np.random.Generator,
    sr: int,
    bands: int = 5,
    freq: tuple[float, float] = (20.0, 8000.0),
    width: tuple[float, float] = (100.0, 1000.0),
    taps: tuple[int, int] = (10, 100),
    gain_db: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """RawBoost's random multi-band FIR (genNotchCoeffs): a cascade of `bands` Hamming-window band-stop filters of
    random centre, width and (odd) length, scaled to a random peak gain."""
    from scipy import signal

    nyq = sr / 2.0
    b = np.ones(1)
    for _ in range(int(bands)):
        fc = rng.uniform(freq[0], min(freq[1], 0.95 * nyq))
        bw = rng.uniform(*width)
        c = int(rng.uniform(*taps))
        c += 1 - c % 2  # odd: a band-stop FIR needs a type I filter
        f1, f2 = max(fc - bw / 2, 1e-3), min(fc + bw / 2, nyq - 1e-3)
        b = np.convolve(signal.firwin(c, [f1, f2], window="hamming", fs=sr), b)
    g = rng.uniform(min(gain_db), max(gain_db))
    _, h = signal.freqz(b, 1, fs=sr)
    return 10 ** (g / 20.0) * b / np.max(np.abs(h))


def fir_filter(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`y` through linear-phase FIR `b` (odd length), its delay of (len(b) - 1) / 2 samples removed, same length (as
    RawBoost's filterFIR, which is one sample off); FFT convolution, fast for long filters."""
    from scipy import signal

    y = np.asarray(y, dtype=np.float64)
    h = (len(b) - 1) // 2
    return signal.oaconvolve(y, b)[h : h + len(y)] if len(y) else y.copy()


def _peak_limit(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return y / peak if peak > 1.0 else y


def convolutive_noise(
    y: np.ndarray, sr: int, rng: np.random.Generator, orders: int = 5, bias_db: tuple[float, float] = (5.0, 20.0)
) -> np.ndarray:
    """RawBoost algorithm 1 (linear and non-linear convolutive noise): the sum over j = 1..`orders` of y**j through
    its own random notch filter, the non-linear terms (j >= 2) `bias_db` lower; mean removed, peak kept <= 1."""
    y = np.asarray(y, dtype=np.float64)
    out, power = np.zeros(len(y)), np.ones(len(y))
    for j in range(int(orders)):
        g = (0.0, 0.0) if j == 0 else (-bias_db[0], -bias_db[1])
        power = power * y  # y ** (j + 1), by products: 5x faster than np.power with a float exponent
        out += fir_filter(power, notch_filter(rng, sr, gain_db=g))
    if len(out):
        out -= out.mean()
    return _peak_limit(out)


def impulsive_noise(y: np.ndarray, rng: np.random.Generator, percent: float = 10.0, g_sd: float = 2.0) -> np.ndarray:
    """RawBoost algorithm 2 (impulsive signal-dependent noise): `percent` % of the samples, chosen at random, get
    y * g_sd * (2u - 1)(2v - 1) added (u, v uniform); peak kept <= 1."""
    y = np.asarray(y, dtype=np.float64)
    out = y.copy()
    n = int(len(y) * percent / 100.0)
    idx = rng.permutation(len(y))[:n]
    f = (2 * rng.random(n) - 1) * (2 * rng.random(n) - 1)
    out[idx] = y[idx] + g_sd * y[idx] * f
    return _peak_limit(out)


def trim_start(y: np.ndarray, sr: int, seconds: float = 0.5) -> np.ndarray:
    return np.asarray(y, dtype=np.float64)[int(round(seconds * sr)) :].copy()


def pad_silence(y: np.ndarray, sr: int, seconds: float = 1.0) -> np.ndarray:
    return np.concatenate([np.zeros(int(round(seconds * sr))), np.asarray(y, dtype=np.float64)])


# --------------------------------------------------------------------------------------------------- registry
CONDITIONS: dict[str, Degradation] = {}


def register(d: Degradation) -> Degradation:
    CONDITIONS[d.name] = d
    return d


register(Degradation("clean", "the audio as decoded (reference)", lambda y, sr, rng: (np.asarray(y, float), sr)))
for _kind, _gen in (("white", white_noise), ("pink", pink_noise)):
    for _snr in (20, 10, 5, 0):
        register(
            Degradation(
                f"{_kind}_snr{_snr}",
                f"additive {_kind} noise at {_snr} dB SNR",
                lambda y, sr, rng, g=_gen, s=_snr: (add_noise(y, s, g(rng, len(y))), sr),
            )
        )
register(
    Degradation(
        "bandlimit_8k", "resampled to 8 kHz and back (telephone band)", lambda y, sr, rng: (band_limit(y, sr), sr)
    )
)
register(
    Degradation(
        "ogg_vorbis",
        "re-encoded as OGG/Vorbis (libsndfile default quality)",
        lambda y, sr, rng: reencode(y, sr, "OGG", "VORBIS"),
        "OGG",
    )
)
register(
    Degradation(
        "mp3",
        "re-encoded as MP3 (MPEG layer III, libsndfile default bitrate)",
        lambda y, sr, rng: reencode(y, sr, "MP3", "MPEG_LAYER_III"),
        "MP3",
    )
)
register(Degradation("gain_-20db", "level lowered by 20 dB", lambda y, sr, rng: (gain(y, -20.0), sr)))
register(
    Degradation("gain_+6db_clip", "level raised by 6 dB, clipped to [-1, 1]", lambda y, sr, rng: (gain(y, 6.0), sr))
)
register(Degradation("trim_0.5s", "first 0.5 s removed", lambda y, sr, rng: (trim_start(y, sr, 0.5), sr)))
register(Degradation("silence_1s", "1 s of leading silence added", lambda y, sr, rng: (pad_silence(y, sr, 1.0), sr)))


def available(d: Degradation) -> bool:
    if d.needs_format is None:
        return True
    import soundfile as sf

    return d.needs_format in sf.available_formats()


def resolve_conditions(names: str | Sequence[str] | None = None) -> list[Degradation]:
    """Conditions by name (comma-separated or a list; None = all); 'clean' is always included first."""
    if names is None:
        chosen = list(CONDITIONS)
    else:
        items = names.split(",") if isinstance(names, str) else list(names)
        chosen = [n.strip() for n in items if n.strip()]
        unknown = [n for n in chosen if n not in CONDITIONS]
        if unknown:
            raise UsageError(f"unknown degradation(s): {', '.join(unknown)}", f"choose from {', '.join(CONDITIONS)}")
    if "clean" in chosen:
        chosen.remove("clean")
    return [CONDITIONS["clean"]] + [CONDITIONS[n] for n in dict.fromkeys(chosen)]


def apply(d: Degradation, y: np.ndarray, sr: int, seed: int = 42, utt_index: int = 0) -> tuple[np.ndarray, int]:
    """Condition `d` applied to one utterance, seeded by (seed, utterance index, condition)."""
    k = list(CONDITIONS).index(d.name) if d.name in CONDITIONS else 0
    rng = np.random.default_rng([int(seed), int(utt_index), k])
    return d.fn(np.asarray(y, dtype=np.float64), int(sr), rng)


# --------------------------------------------------------------------------------------------------- report
def recipe_for(det: DiffDetector) -> Recipe:
    """The detector's feature recipe, refused when this dfdet computes it differently (hash mismatch)."""
    if det.scorer is not None:
        return det.scorer.feature_recipe()  # dfdet.scoring's check and messages
    from dfdet.features import get_recipe, recipe_hash

    if not det.recipe:
        raise DfdetError(
            f"{det.path or 'the detector'} records no feature recipe",
            "degradation tests featurize audio: use a model trained on features from `dfdet featurize`",
        )
    recipe = get_recipe(det.recipe)
    h = recipe_hash(recipe)
    if det.recipe_hash and h != det.recipe_hash:
        raise DfdetError(
            f"{det.path}: expects recipe {det.recipe} with hash {det.recipe_hash}, this dfdet computes {h}",
            "use the dfdet version the model was trained with, or retrain",
        )
    return recipe


def featurize_clips(recipe: Recipe, clips: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
    """Features of in-memory clips with the recipe (prepare, then extract; batched when the recipe can)."""
    prepared = [recipe.prepare(y, sr) for y, sr in clips]
    batch = getattr(recipe, "extract_batch", None)
    if batch is not None and prepared:
        return np.asarray(batch(np.stack(prepared)), dtype=np.float64)
    return np.stack([np.asarray(recipe.extract(p), dtype=np.float64).reshape(-1) for p in prepared])


def _condition_metrics(scores: np.ndarray, y: np.ndarray, threshold: float, clean: np.ndarray) -> dict[str, Any]:
    from dfdet.attacks import metrics_at

    ok = np.isfinite(scores)
    out: dict[str, Any] = {"n_scored": int(ok.sum())}
    out.update(metrics_at(scores[ok], y[ok], threshold))
    dec, dec0 = scores < threshold, clean < threshold
    both = ok & np.isfinite(clean)
    out["flip_rate_vs_clean"] = float((dec[both] != dec0[both]).mean()) if both.any() else float("nan")
    out["mean_score_shift"] = float(np.mean(scores[both] - clean[both])) if both.any() else float("nan")
    out["spoof_called_bonafide"] = float(np.mean(~dec[ok & (y == 1)])) if (ok & (y == 1)).any() else float("nan")
    out["bonafide_called_spoof"] = float(np.mean(dec[ok & (y == 0)])) if (ok & (y == 0)).any() else float("nan")
    return out


# --------------------------------------------------------------------------------------------------- per file
# (status, value, condition failures): ("ok", (indices of the conditions made, float32 [len(indices), D] features),
# [(condition index, reason)]) or ("bad", (path, reason, fix) of the InputError from decoding, []).
FileResult = tuple[str, Any, list[tuple[int, str]]]


def degrade_one(recipe: Recipe, conds: Sequence[Degradation], seed: int, index: int, path: str) -> FileResult:
    """Decode one file and featurize it under every condition (no model: that stays in the parent process).

    Why a function of (seed, index) only: the noise of utterance `index` does not depend on which worker ran it or
    what ran before, so -j 1 and -j N give the same numbers. Decoding errors come back as data (`"bad"`), a failed
    condition is listed (its row stays NaN in the report); anything else raises.
    """
    from dfdet.audio import load_audio

    try:
        y, sr = load_audio(path)
    except InputError as e:
        return "bad", (e.path, e.reason, e.fix), []
    clips: list[tuple[np.ndarray, int]] = []
    good: list[int] = []
    failed: list[tuple[int, str]] = []
    for c, d in enumerate(conds):
        try:
            yd, srd = apply(d, y, sr, seed, index)
            if len(yd) == 0:
                raise ValueError("no samples left")
            clips.append((yd, srd))
            good.append(c)
        except Exception as e:  # noqa: BLE001 - a codec failure on one file is reported, not fatal
            failed.append((c, f"{d.name}: {type(e).__name__}: {e}"))
    F = featurize_clips(recipe, clips).astype(np.float32) if good else None  # float32: what the report keeps
    return "ok", (good, F), failed


_WORKER: tuple[Recipe, list[Degradation], int] | None = None


def _init_worker(recipe: Recipe, names: list[str], seed: int) -> None:
    """featurize's pool initializer (SIGINT left to the parent, one BLAS thread), plus the conditions by name."""
    global _WORKER
    from dfdet.featurize import init_worker

    init_worker(recipe)
    _WORKER = (recipe, [CONDITIONS[n] for n in names], seed)  # names: the lambdas do not pickle (spawn)


def _work(item: tuple[int, str]) -> FileResult:
    """`degrade_one` in a pool worker set up by `_init_worker`; errors pickle, so they reach the parent as raised."""
    assert _WORKER is not None
    recipe, conds, seed = _WORKER
    return degrade_one(recipe, conds, seed, *item)


def _warm_up(recipe: Recipe, conds: Sequence[Degradation]) -> None:
    """Before forking: the recipe's tables and the conditions' lazy imports (codecs, resampler), once for all."""
    from dfdet.featurize import warm_up

    warm_up(recipe)
    sr = int(getattr(recipe, "sample_rate", 16000) or 16000)
    y = 1e-3 * np.random.default_rng(0).standard_normal(sr // 10)
    for d in conds:
        with contextlib.suppress(Exception):
            apply(d, y, sr)


@contextlib.contextmanager
def file_results(
    recipe: Recipe,
    conds: Sequence[Degradation],
    paths: Sequence[str],
    seed: int = 42,
    jobs: int = 1,
    start_method: str | None = None,
) -> Iterator[Iterator[FileResult]]:
    """`degrade_one` of every path, in input order: in-process when jobs <= 1, else in featurize's pool (dfdet.pool:
    a dead worker raises WorkerDied naming its file)."""
    from dfdet.featurize import ordered_results

    names = [d.name for d in conds]
    with ordered_results(
        list(enumerate(map(str, paths))),
        lambda item: degrade_one(recipe, conds, seed, *item),
        _work,
        _init_worker,
        (recipe, names, int(seed)),
        jobs,
        start_method,
        warm=lambda: _warm_up(recipe, conds),
        name=lambda item: item[1],
    ) as results:
        yield (result for _, result in results)


def degradation_report(
    det: DiffDetector,
    utterances: Sequence[Utterance],
    conditions: Sequence[Degradation] | None = None,
    seed: int = 42,
    skip_bad: bool = False,
    progress: Callable[[Any], Any] | None = None,
    warn: Callable[[str], None] | None = None,
    jobs: int = 1,
    start_method: str | None = None,
) -> dict[str, Any]:
    """Score every utterance under every condition; per-condition metrics, failures listed (never dropped silently).

    `jobs` worker processes decode, degrade and featurize; the model scores in this process (same result for any -j).
    """
    conds = list(conditions) if conditions is not None else resolve_conditions()
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "pass -j N with N >= 1")
    unavailable = [d.name for d in conds if not available(d)]
    for name in unavailable:
        if warn:
            warn(f"condition {name} skipped: libsndfile here cannot write {CONDITIONS[name].needs_format}")
    conds = [d for d in conds if d.name not in unavailable]
    if not utterances:
        raise DfdetError("no audio inputs", "pass audio files, directories or list files")
    recipe = recipe_for(det)
    n, k = len(utterances), len(conds)
    feats = np.full((k, n, det.input_dim), np.nan, dtype=np.float32)  # what a store keeps
    failures: list[dict[str, str]] = []
    cond_fail: dict[str, int] = {d.name: 0 for d in conds}
    ok_rows = np.zeros(n, dtype=bool)
    with file_results(recipe, conds, [u.path for u in utterances], seed, jobs, start_method) as results:
        stream: Any = zip(enumerate(utterances), results, strict=True)
        if progress is not None:
            stream = progress(stream)
        for (i, u), (status, value, failed) in stream:
            if status != "ok":
                if not skip_bad:
                    raise InputError(*value)
                failures.append({"utt_id": u.utt_id, "path": u.path, "reason": value[1]})
                if warn:
                    warn(f"{u.path}: {value[1]} (skipped)")
                continue
            for c, reason in failed:
                cond_fail[conds[c].name] += 1
                failures.append({"utt_id": u.utt_id, "path": u.path, "reason": reason})
            good, F = value
            if good:
                feats[good, i] = F
            ok_rows[i] = True
    if not ok_rows.any():
        raise DfdetError("no audio could be decoded", "check the inputs (see the warnings above)")
    labels = np.array([u.label for u in utterances], dtype=np.int64)
    clean_scores = _score(det, feats[0])
    table = []
    for c, d in enumerate(conds):
        s = _score(det, feats[c])
        s[~ok_rows] = np.nan
        row = {"condition": d.name, "description": d.description, "n_failed": cond_fail[d.name]}
        row.update(_condition_metrics(s, labels, det.threshold, clean_scores))
        table.append(row)
    return {
        "detector": det.path,
        "schema": "dfdet.degrade/1",
        "detector_kind": det.kind,
        "recipe": det.recipe,
        "threshold": float(det.threshold),
        "seed": int(seed),
        "inputs": int(n),
        "inputs_scored": int(ok_rows.sum()),
        "n_bonafide": int(((labels == 0) & ok_rows).sum()),
        "n_spoof": int(((labels == 1) & ok_rows).sum()),
        "conditions": table,
        "unavailable_conditions": unavailable,
        "failures": failures,
    }


def _score(det: DiffDetector, F: np.ndarray) -> np.ndarray:
    """Scores of the rows with finite features; NaN for rows that failed or gave non-finite features."""
    out = np.full(len(F), np.nan)
    ok = np.isfinite(F).all(axis=1)
    if ok.any():
        out[ok] = det.scores(F[ok])
    return out


def format_report(rep: dict[str, Any]) -> str:
    """The per-condition table as text."""
    head = f"{'condition':<16} {'n':>5} {'EER %':>7} {'AUC':>7} {'acc':>7} {'flips':>7} {'shift':>8}"
    lines = [head]
    nan = float("nan")
    for r in rep["conditions"]:
        lines.append(
            f"{r['condition']:<16} {r['n_scored']:>5} {100 * r.get('eer', nan):>7.2f} {r.get('auc', nan):>7.4f} "
            f"{r.get('accuracy', nan):>7.3f} {r['flip_rate_vs_clean']:>7.3f} {r['mean_score_shift']:>8.3f}"
        )
    return "\n".join(lines)
