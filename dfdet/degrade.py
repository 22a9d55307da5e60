"""Real-signal degradations: noise, gain, band limits and telephone codecs, lossy re-encoding, RawBoost-style
convolutive and impulsive noise, trims and padding, as named conditions (a registry).

Why: deepfakes in the wild arrive degraded (noisy phone lines, 8 kHz codecs, lossy re-encoding, level changes, cut
or padded recordings). These are the primitives `dfdet.augment` draws training copies from and `dfdet.robustness`
measures a detector under (`dfdet attack MODEL AUDIO... --method degrade`). This module depends on no other part of
dfdet beyond its errors, so both can use it without a circle.
Seeded: condition k of utterance i draws its noise from `default_rng([seed, i, k])`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dfdet.errors import UsageError

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
