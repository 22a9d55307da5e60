"""The embedded demo corpus: synthetic source-filter "speech" and vocoder-like resyntheses of it, in two domains.

Why: `make demo` and the tests need a labelled corpus that is made in seconds, needs no download, and still behaves
like the real problem in the ways the study cares about: spoofs are the *same utterances* as the bona fide clips,
pushed through analysis/resynthesis methods that leave different artefacts (so a detector has something to learn but
no trivial content cue), and a second domain with unseen speakers, an unseen spoofing method and channel degradations
(noise, reverberation, 8 kHz band-limiting, level changes, clipping) so that domain shift can be shown.
It is synthetic: numbers measured on it only exercise the pipeline and say nothing about real deepfakes.

Spoofing methods (`system` column):
- GL:  a mel spectrogram inverted to a magnitude STFT, phase rebuilt by Griffin-Lim (blurred harmonics, phasiness).
- ENV: cepstrally smoothed spectral envelope applied to a jitter-free pulse/noise excitation at semitone-quantised f0.
- LBW: "neural vocoder at a lower rate": log-magnitude quantisation at 12-14 kHz, upsampled (little energy > 6-7 kHz).
- PV:  phase-vocoder time-stretch round trip (wild domain only: the method the lab-trained detector never saw).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal as sps
import soundfile as sf

from dfdet import __version__
from dfdet.atomic import atomic_path, write_text_atomic
from dfdet.caveats import CORPUS_FILE, DEMO_CORPUS_NAME, corpus_marker
from dfdet.provenance import config_hash

SR = 16000
DOMAINS = ("lab", "wild")
LAB_SYSTEMS = ("GL", "ENV", "LBW")
WILD_SYSTEMS = ("GL", "LBW", "PV")
BONAFIDE_SYSTEM = ""  # empty, as dfdet.protocols reads ASVspoof's "-" for bona fide rows
CSV_HEADER = ("path", "label", "speaker", "system", "domain")
SYSTEM_DESCRIPTIONS = {
    "GL": "mel spectrogram (40-80 bands) inverted to a magnitude STFT, phase rebuilt by Griffin-Lim (6-24 iter.)",
    "ENV": "cepstrally smoothed envelope on a jitter-free pulse/noise excitation at semitone-quantised f0",
    "LBW": "log-magnitude quantisation at a 12-14 kHz rate, upsampled to 16 kHz (little energy above 6-7 kHz)",
    "PV": "phase-vocoder time-stretch round trip (wild only: unseen in lab)",
}
_NAME_RE = re.compile(r"^(lab|wild)_\d{4,}\.(wav|flac)$")

# Adult male vowel formants F1-F4 (Hz), after Peterson & Barney; a speaker's formant scale multiplies them.
_VOWELS = np.array(
    [
        [270, 2290, 3010, 3700],  # i
        [390, 1990, 2550, 3600],  # I
        [530, 1840, 2480, 3600],  # e
        [660, 1720, 2410, 3600],  # ae
        [730, 1090, 2440, 3500],  # a
        [570, 840, 2410, 3500],  # o
        [440, 1020, 2240, 3500],  # U
        [300, 870, 2240, 3500],  # u
        [640, 1190, 2390, 3500],  # ^
        [500, 1500, 2500, 3500],  # schwa
    ],
    dtype=np.float64,
)
_NASAL = np.array([250, 1100, 2300, 3400], dtype=np.float64)
_CTRL_HOP = 80  # control tracks at 5 ms
_FILT_BLOCK = 160  # formant filter coefficients change every 10 ms


@dataclass(frozen=True)
class Speaker:
    """A synthetic talker: pitch range, vocal-tract length (formant scale), voice quality and speaking rate."""

    speaker: str
    f0: float  # median f0, Hz
    f0_range: float  # semitones of intonation excursion
    formant_scale: float
    jitter: float  # relative period perturbation
    shimmer: float  # relative pulse amplitude perturbation
    breath: float  # aspiration noise relative to the voiced source
    glottal_pole: float  # spectral tilt of the glottal source (closer to 1 = darker voice)
    rate: float  # speaking-rate factor (segment durations divide by it)
    fric: float  # fricative centre scale


@dataclass
class _Rendered:
    y: np.ndarray
    f0: np.ndarray  # per control frame (Hz), 0 where unvoiced
    voiced: np.ndarray  # per control frame, bool


# ----------------------------------------------------------------------------------------------------- rng helpers
def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per (domain, clip, purpose), so each clip depends only on the seed and its own key."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed) % (2**63), spawn_key=tuple(key)))


# -------------------------------------------------------------------------------------------------- STFT helpers
_WINDOWS: dict[tuple[int, str], np.ndarray] = {}


def _window(n_fft: int, dtype: Any = np.float64) -> np.ndarray:
    key = (n_fft, np.dtype(dtype).name)
    if key not in _WINDOWS:
        _WINDOWS[key] = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(dtype)  # periodic Hann
    return _WINDOWS[key]


def _stft(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred STFT, frames x bins (numpy only: librosa.stft's overhead dominated the corpus runtime)."""
    pad = n_fft // 2
    yp = np.pad(y, (pad, pad + (-(len(y)) % hop)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop]
    return np.fft.rfft(frames * _window(n_fft, yp.dtype), axis=1)


def _ola_norm(n_fft: int, hop: int, t: int) -> np.ndarray:
    w2 = (_window(n_fft) ** 2).reshape(n_fft // hop, hop)
    norm = np.zeros((t + n_fft // hop - 1, hop))
    for k in range(n_fft // hop):
        norm[k : k + t] += w2[k]
    return np.maximum(norm, 1e-8)


_NORMS: dict[tuple[int, int, int], np.ndarray] = {}


def _istft(z: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Weighted overlap-add inverse of `_stft` (hop must divide n_fft)."""
    r = n_fft // hop
    t = len(z)
    key = (n_fft, hop, t)
    if key not in _NORMS:
        _NORMS.clear() if len(_NORMS) > 64 else None
        _NORMS[key] = _ola_norm(n_fft, hop, t)
    frames = np.fft.irfft(z, n=n_fft, axis=1)
    frames = (frames * _window(n_fft, frames.dtype)).reshape(t, r, hop)
    out = np.zeros((t + r - 1, hop), dtype=frames.dtype)
    for k in range(r):
        out[k : k + t] += frames[:, k, :]
    y = (out / _NORMS[key]).ravel()
    pad = n_fft // 2
    return _fit(y[pad : pad + length], length)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


def _resample(y: np.ndarray, sr: int, target: int) -> np.ndarray:
    """soxr HQ, what librosa.resample (dfdet.audio.resample) uses, called directly to skip librosa's import."""
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr comes with librosa
        from dfdet.audio import resample

        return resample(y, sr, target)
    return np.asarray(soxr.resample(y, sr, target, quality="HQ"), dtype=np.float64)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis (edge-padded), for coarticulation-like transitions."""
    if width <= 1:
        return x
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(np.asarray(x, dtype=np.float64), width, axis=-1, mode="nearest")


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """Approximately 1/f noise (Kellet's three-pole filter on white noise)."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    return sps.lfilter(b, a, rng.standard_normal(n + 2000))[2000:]


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(y * y)) + 1e-12)


# ------------------------------------------------------------------------------------------------ bona fide speech
def make_speakers(seed: int, ids: list[str], domain_key: int) -> list[Speaker]:
    """Speakers alternate low/high voices; each gets its own f0 range, formant scale and voice quality."""
    out = []
    for i, sid in enumerate(ids):
        r = _rng(seed, domain_key, 9000 + i)
        high = i % 2 == 1
        out.append(
            Speaker(
                speaker=sid,
                f0=float(r.uniform(170, 240) if high else r.uniform(90, 140)),
                f0_range=float(r.uniform(2.0, 6.0)),
                formant_scale=float(r.uniform(1.08, 1.2) if high else r.uniform(0.9, 1.02)),
                jitter=float(r.uniform(0.004, 0.02)),
                shimmer=float(r.uniform(0.02, 0.08)),
                breath=float(r.uniform(0.02, 0.15)),
                glottal_pole=float(r.uniform(0.95, 0.985)),
                rate=float(r.uniform(0.8, 1.25)),
                fric=float(r.uniform(0.9, 1.1)),
            )
        )
    return out


def _plan(spk: Speaker, n_frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Syllable-like segments with pauses, as 5-ms control tracks (targets; smoothed later)."""
    voice = np.zeros(n_frames)
    asp = np.zeros(n_frames)
    fric = np.zeros((3, n_frames))  # s-like, sh-like, f-like
    burst = np.zeros(n_frames)
    accent = np.zeros(n_frames)
    form = np.tile(_VOWELS[-1][:, None], (1, n_frames))
    fps = SR / _CTRL_HOP

    def frames(sec: float) -> int:
        return max(1, int(round(sec * fps / spk.rate)))

    t = int(round(rng.uniform(0.05, 0.2) * fps))
    end = n_frames - int(round(rng.uniform(0.05, 0.15) * fps))
    while t < end - frames(0.08):
        for _ in range(int(rng.integers(1, 5))):  # a word of 1-4 syllables
            if t >= end - frames(0.08):
                break
            vowel = _VOWELS[int(rng.integers(len(_VOWELS)))] * spk.formant_scale
            if rng.random() < 0.75:  # onset consonant
                kind = int(rng.integers(5))
                if kind <= 2:  # fricative
                    d = frames(rng.uniform(0.06, 0.14))
                    fric[kind, t : t + d] = rng.uniform(0.3, 1.0)
                    form[:, t : t + d] = vowel[:, None]
                    t += d
                elif kind == 3:  # stop: closure, burst, aspiration
                    t += frames(rng.uniform(0.03, 0.07))
                    d = frames(rng.uniform(0.01, 0.025))
                    burst[t : t + d] = np.linspace(1.0, 0.2, len(burst[t : t + d]))
                    t += d
                    d = frames(rng.uniform(0.0, 0.04))
                    asp[t : t + d] = 0.3
                    form[:, t : t + d] = vowel[:, None]
                    t += d
                else:  # nasal
                    d = frames(rng.uniform(0.05, 0.1))
                    voice[t : t + d] = 0.35
                    form[:, t : t + d] = (_NASAL * spk.formant_scale)[:, None]
                    t += d
            d = frames(rng.uniform(0.07, 0.22))
            voice[t : t + d] = rng.uniform(0.6, 1.0)
            form[:, t : t + d] = vowel[:, None]
            if rng.random() < 0.35:  # pitch accent on this syllable
                mid = min(t + d // 2, n_frames - 1)
                accent[mid] = rng.uniform(1.0, 4.0)
            t += d
        if rng.random() < 0.6:
            t += frames(rng.uniform(0.04, 0.25))  # pause between words
    return {"voice": voice, "asp": asp, "fric": fric, "burst": burst, "accent": accent, "form": form}


def _pulses(f0_samples: np.ndarray, jitter: float, shimmer: float, rng: np.random.Generator | None) -> np.ndarray:
    """An impulse train following f0 (fractional positions split over two samples), with jitter and shimmer."""
    n = len(f0_samples)
    out = np.zeros(n + 2)
    t = 0.0
    while t < n:
        f = f0_samples[int(t)]
        period = SR / f
        amp = 1.0
        if rng is not None:
            period *= 1.0 + jitter * rng.standard_normal()
            amp = 1.0 + shimmer * rng.standard_normal()
        i = int(t)
        frac = t - i
        out[i] += amp * (1 - frac)
        out[i + 1] += amp * frac
        t += max(period, 20.0)
    return out[:n]


_FRIC_SOS: dict[tuple[int, float], np.ndarray] = {}


def _fric_sos(kind: int, scale: float) -> np.ndarray:
    key = (kind, round(scale, 3))
    if key not in _FRIC_SOS:
        band = [(3800, 7600), (2000, 4500), (1200, 7800)][kind]
        lo, hi = band[0] * scale, min(band[1] * scale, 7900)
        _FRIC_SOS[key] = sps.butter(4, [lo, hi], btype="bandpass", fs=SR, output="sos")
    return _FRIC_SOS[key]


def _formant_filter(x: np.ndarray, form: np.ndarray) -> np.ndarray:
    """Klatt-style cascade of resonators: F1-F4 tracks (coefficients updated every 10 ms) and a fixed F5.

    The four moving resonators run as one 8th-order direct-form filter per block (one scipy call per block keeps a
    3-s clip at a few milliseconds); the filter state carries over between blocks, and the smoothed tracks keep the
    coefficient steps small.
    """
    n = len(x)
    n_blocks = -(-n // _FILT_BLOCK)
    centres = np.minimum((np.arange(n_blocks) * _FILT_BLOCK + _FILT_BLOCK // 2) // _CTRL_HOP, form.shape[1] - 1)
    f = form[:, centres]  # [4, blocks]
    bw = np.array([60.0, 90.0, 130.0, 200.0])[:, None] + 0.04 * f
    r = np.exp(-np.pi * bw / SR)
    a1, a2 = -2 * r * np.cos(2 * np.pi * f / SR), r * r
    gain = np.prod(1 + a1 + a2, axis=0)  # unity gain at DC
    a = np.zeros((n_blocks, 9))  # product of the four quadratics, for all blocks at once
    a[:, 0] = 1.0
    for k in range(4):
        a[:, 1:] += a1[k][:, None] * a[:, :-1] + a2[k][:, None] * np.pad(a[:, :-2], ((0, 0), (1, 0)))
    zi = np.zeros(8)
    out = np.empty(n)
    for b in range(n_blocks):
        s = slice(b * _FILT_BLOCK, min(n, (b + 1) * _FILT_BLOCK))
        out[s], zi = sps.lfilter(gain[b : b + 1], a[b], x[s], zi=zi)
    r5 = np.exp(-np.pi * 480.0 / SR)
    c5 = 2 * r5 * np.cos(2 * np.pi * 4500.0 / SR)
    return sps.lfilter((1 - c5 + r5 * r5,), (1.0, -c5, r5 * r5), out)


def render_bonafide(spk: Speaker, seconds: float, rng: np.random.Generator) -> _Rendered:
    """Synthesize one bona fide utterance at 16 kHz: glottal pulses + aspiration + frication through formants."""
    n = int(round(seconds * SR))
    n_frames = -(-n // _CTRL_HOP) + 1
    p = _plan(spk, n_frames, rng)
    voice = _smooth(p["voice"], 4)
    asp = _smooth(p["asp"], 3)
    fric = _smooth(p["fric"], 4)
    burst = p["burst"]
    form = _smooth(p["form"], 9)

    # f0: declination + accents + a slow random walk, in semitones around the speaker's median.
    tt = np.linspace(0, 1, n_frames)
    st = spk.f0_range * (0.5 - tt) * 0.6
    st = st + _smooth(p["accent"], 31) * 12 * spk.f0_range / 4
    st = st + _smooth(np.cumsum(rng.standard_normal(n_frames)) * 0.08, 15)
    f0 = spk.f0 * 2.0 ** (st / 12)
    voiced = voice > 0.05

    pos = np.arange(n) / _CTRL_HOP

    def interp(track: np.ndarray) -> np.ndarray:
        return np.interp(pos, np.arange(len(track)), track)

    f0_s = interp(f0)
    glottal = _pulses(f0_s, spk.jitter, spk.shimmer, rng)
    pole = spk.glottal_pole
    glottal = sps.lfilter([1.0, -1.0], [1.0, -2 * pole, pole * pole], glottal)  # glottal tilt + lip radiation
    glottal /= _rms(glottal)
    white = rng.standard_normal(n)
    v = interp(voice)
    source = v * glottal + (spk.breath * v + interp(asp)) * white
    y = _formant_filter(source, form)
    y /= _rms(y[v > 0.3]) if np.any(v > 0.3) else _rms(y)
    for k in range(3):
        amp = interp(fric[k])
        if amp.any():
            y += (0.35 if k < 2 else 0.15) * amp * sps.sosfilt(_fric_sos(k, spk.fric), rng.standard_normal(n)) * 3
    b = interp(burst)
    if b.any():
        y += 0.35 * b * sps.sosfilt(_fric_sos(2, 1.0), rng.standard_normal(n)) * 3

    # A quiet room: pink-ish noise 30-55 dB below the speech; a random peak level.
    room = _pink(rng, n)
    y += room * (_rms(y) / _rms(room)) * 10 ** (-rng.uniform(30, 55) / 20)
    y *= 10 ** (-rng.uniform(3, 12) / 20) / (np.max(np.abs(y)) + 1e-12)
    return _Rendered(y=y, f0=np.where(voiced, f0, 0.0), voiced=voiced)


# ---------------------------------------------------------------------------------------------------- spoofers
def _griffin_lim(mag: np.ndarray, n_fft: int, hop: int, n: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Fast Griffin-Lim (momentum 0.99, as librosa.griffinlim) from a random initial phase, in single precision."""
    mag = mag.astype(np.float32)
    angles = np.exp(2j * np.pi * rng.random(mag.shape, dtype=np.float32))
    prev = np.zeros_like(angles)
    alpha = np.float32(0.99 / (1 + 0.99))
    for _ in range(n_iter):
        rebuilt = _stft(_istft(mag * angles, n_fft, hop, n).astype(np.float32), n_fft, hop)
        angles = rebuilt - alpha * prev
        angles /= np.abs(angles) + np.float32(1e-16)
        prev = rebuilt
    return _istft(mag * angles, n_fft, hop, n).astype(np.float64)


def _mel_fb(n_fft: int, n_mels: int, fmax: float = SR / 2) -> np.ndarray:
    """Triangular mel filterbank (HTK mel scale), n_mels x bins, each filter summing to one."""

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(0, mel(np.array(fmax)), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return fb / np.maximum(fb.sum(1, keepdims=True), 1e-12)


def spoof_gl(src: _Rendered, rng: np.random.Generator) -> np.ndarray:
    """A mel-spectrogram "TTS front end" inverted with Griffin-Lim: harmonics above ~1 kHz blur, phase is rebuilt."""
    n_fft = int(rng.choice([512, 1024]))
    hop = n_fft // 4
    mag = np.abs(_stft(src.y, n_fft, hop))
    fb = _mel_fb(n_fft, int(rng.integers(40, 81)))
    mel = mag @ fb.T
    lin = mel @ np.linalg.pinv(fb).T
    mag = np.maximum(lin, 1e-4 * lin.max())
    return _griffin_lim(mag, n_fft, hop, len(src.y), int(rng.integers(6, 25)), rng)


def _cepstral_envelope(logmag: np.ndarray, n_ceps: int) -> np.ndarray:
    cep = np.fft.irfft(logmag, axis=1)
    cep[:, n_ceps:-n_ceps] = 0.0
    return np.fft.rfft(cep, axis=1).real


def spoof_env(src: _Rendered, rng: np.random.Generator) -> np.ndarray:
    """Smoothed-envelope vocoder: the source's cepstral envelope on a jitter-free, semitone-quantised excitation."""
    n = len(src.y)
    n_fft, hop = 512, 128
    f0 = src.f0.copy()
    if rng.random() < 0.3:  # monotone: one fixed f0 for the whole utterance
        f0[src.voiced] = np.median(f0[src.voiced]) if src.voiced.any() else 100.0
    else:
        f0[src.voiced] = 440.0 * 2.0 ** (np.round(12 * np.log2(f0[src.voiced] / 440.0)) / 12)
    pos = np.arange(n) / _CTRL_HOP
    f0_s = np.interp(pos, np.arange(len(f0)), np.where(f0 > 0, f0, 100.0))
    v_s = np.interp(pos, np.arange(len(f0)), src.voiced.astype(float))
    pulses = _pulses(f0_s, 0.0, 0.0, None)
    exc = v_s * pulses / _rms(pulses) + (1 - v_s) * rng.standard_normal(n)
    x = _stft(src.y, n_fft, hop)
    e = _stft(exc, n_fft, hop)
    n_ceps = int(rng.integers(18, 41))
    env_x = _cepstral_envelope(np.log(np.abs(x) + 1e-9), n_ceps)
    env_e = _cepstral_envelope(np.log(np.abs(e) + 1e-9), n_ceps)
    z = e * np.exp(env_x - env_e)
    z *= np.sqrt((np.abs(x) ** 2).sum(1, keepdims=True) / ((np.abs(z) ** 2).sum(1, keepdims=True) + 1e-20))
    return _istft(z, n_fft, hop, n)


def spoof_lbw(src: _Rendered, rng: np.random.Generator) -> np.ndarray:
    """A vocoder running at a lower rate: quantised log magnitudes at 11-14 kHz, then upsampled (band-limited)."""
    low = int(rng.choice([12000, 13000, 14000]))
    y = _resample(src.y, SR, low)
    z = _stft(y, 512, 128)
    step = rng.uniform(1.0, 3.0)  # dB
    db = np.round(20 * np.log10(np.abs(z) + 1e-9) / step) * step
    z = 10 ** (db / 20) * np.exp(1j * np.angle(z))
    return _fit(_resample(_istft(z, 512, 128, len(y)), low, SR), len(src.y))


def _phase_vocoder(z: np.ndarray, rate: float, hop: int) -> np.ndarray:
    """Vectorised phase-vocoder time stretch of an STFT (frames x bins)."""
    n_bins = z.shape[1]
    steps = np.arange(0, len(z) - 1, rate)
    i = steps.astype(int)
    frac = (steps - i)[:, None]
    mag = (1 - frac) * np.abs(z[i]) + frac * np.abs(z[i + 1])
    advance = np.linspace(0, np.pi * hop, n_bins)[None, :]
    dphi = np.angle(z[i + 1]) - np.angle(z[i]) - advance
    dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
    phase = np.angle(z[0])[None, :] + np.vstack([np.zeros((1, n_bins)), np.cumsum(dphi + advance, axis=0)[:-1]])
    return mag * np.exp(1j * phase)


def spoof_pv(src: _Rendered, rng: np.random.Generator) -> np.ndarray:
    """Time-stretch by r and back by 1/r with a phase vocoder: phasiness and smeared onsets."""
    n_fft, hop = 1024, 256
    rate = float(rng.uniform(1.1, 1.35))
    if rng.random() < 0.5:
        rate = 1 / rate
    n = len(src.y)
    z = _phase_vocoder(_stft(src.y, n_fft, hop), rate, hop)
    mid = _istft(z, n_fft, hop, int(round(n / rate)))
    z = _phase_vocoder(_stft(mid, n_fft, hop), 1 / rate, hop)
    return _istft(z, n_fft, hop, n)


SPOOFERS: dict[str, Callable[[_Rendered, np.random.Generator], np.ndarray]] = {
    "GL": spoof_gl,
    "ENV": spoof_env,
    "LBW": spoof_lbw,
    "PV": spoof_pv,
}


# ------------------------------------------------------------------------------------------------ wild channel
def wild_channel(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Reverberation, additive noise at 5-20 dB SNR, 8 kHz band-limiting, level changes and clipping (class-blind).

    Returns the degraded signal and its sample rate (16 kHz, or 8 / 44.1 kHz for files stored at another rate).
    """
    n = len(y)
    sr = SR
    if rng.random() < 0.7:  # short synthetic room: direct path + exponentially decaying noise tail
        rt60 = rng.uniform(0.15, 0.6)
        m = int(min(rt60, 0.4) * SR)
        t = np.arange(m) / SR
        ir = rng.standard_normal(m) * np.exp(-6.9 * t / rt60) * 10 ** (-rng.uniform(6, 18) / 20) * 0.05
        ir[0] = 1.0
        y = sps.fftconvolve(y, ir)[:n]
    kind = int(rng.integers(4))
    if kind == 0:
        noise = rng.standard_normal(n)
    elif kind == 1:
        noise = _pink(rng, n)
    elif kind == 2:  # brown-ish rumble
        noise = sps.lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))
    else:  # speech-shaped babble-like noise: low-passed, 3-6 Hz amplitude modulated
        noise = sps.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
        tt = np.arange(n) / SR
        noise *= 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(3, 6) * tt + rng.uniform(0, 2 * np.pi))
    snr = rng.uniform(5, 20)
    y = y + noise * (_rms(y) / _rms(noise)) * 10 ** (-snr / 20)
    u = rng.random()
    if u < 0.4:  # telephone-like 8 kHz path; half of these files stay at 8 kHz
        y8 = _resample(y, SR, 8000)
        if rng.random() < 0.5:
            y, sr = y8, 8000
        else:
            y = _fit(_resample(y8, 8000, SR), n)
    elif u < 0.5:
        y, sr = _resample(y, SR, 44100), 44100
    level = 10 ** (rng.uniform(-24, -1) / 20)
    y = y * level / (np.max(np.abs(y)) + 1e-12)
    if rng.random() < 0.2:  # overdriven recorder
        y = np.clip(y * rng.uniform(1.5, 4.0) / (np.max(np.abs(y)) + 1e-12), -0.99, 0.99)
    return y, sr


# ------------------------------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class _Item:
    """One utterance of the plan: its bona fide clip and the spoof made from it."""

    domain: str
    key: int
    index: int
    speaker: Speaker
    system: str
    name_bonafide: str
    name_spoof: str
    flac_bonafide: bool
    flac_spoof: bool


def _write_audio(path: Path, y: np.ndarray, sr: int, fmt: str) -> None:
    y = np.clip(y, -1.0, 32767 / 32768)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), y, sr, format=fmt, subtype="PCM_16")


def _parse_seconds(seconds: float | tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(seconds), float(seconds)) if np.isscalar(seconds) else (float(seconds[0]), float(seconds[1]))
    if not (0.2 <= lo <= hi <= 30):
        raise ValueError(f"clip length range must satisfy 0.2 <= min <= max <= 30 s, got {lo}-{hi}")
    return lo, hi


def _csv_text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_HEADER, lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(rows, key=lambda r: r["path"]))
    return buf.getvalue()


def _remove_stale(outdir: Path, keep: set[Path]) -> int:
    """Delete clips a previous, larger run left behind (only our own naming pattern), so directory walks agree."""
    removed = 0
    for domain in DOMAINS:
        for cls in ("bonafide", "spoof"):
            d = outdir / domain / cls
            if not d.is_dir():
                continue
            for f in d.iterdir():
                if f.is_file() and _NAME_RE.match(f.name) and f.resolve() not in keep:
                    f.unlink()
                    removed += 1
    return removed


def make_demo_corpus(
    outdir: str | os.PathLike,
    n_per_class: int = 120,
    n_wild_per_class: int = 60,
    seed: int = 42,
    seconds: float | tuple[float, float] = (1.5, 3.5),
    n_lab_speakers: int = 6,
    n_wild_speakers: int = 4,
    progress: Callable[[list[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Write the demo corpus under `outdir` and return counts and paths.

    Layout: `outdir/{lab,wild}/{bonafide,spoof}/<domain>_NNNN.{wav,flac}`, label tables `lab.csv`, `wild.csv`,
    `labels.csv` (all rows; written last, so its presence means the corpus is complete), `README.txt` and
    `corpus.json` (marks the corpus synthetic for featurize/train, see dfdet.caveats).
    Deterministic: the same arguments give byte-identical files. `progress` may wrap the clip iterator (a tqdm-like
    callable taking an iterable); the library itself prints nothing.
    """
    if n_per_class < 1 or n_wild_per_class < 0:
        raise ValueError("need n_per_class >= 1 and n_wild_per_class >= 0")
    if n_lab_speakers < 1 or n_wild_speakers < 1:
        raise ValueError("need at least one speaker per domain")
    lo, hi = _parse_seconds(seconds)
    outdir = Path(outdir)
    spk_ids = [f"spk{i + 1:02d}" for i in range(n_lab_speakers + n_wild_speakers)]
    plan: list[_Item] = []
    for dkey, (domain, n_utt, ids, systems) in enumerate(
        [
            ("lab", n_per_class, spk_ids[:n_lab_speakers], LAB_SYSTEMS),
            ("wild", n_wild_per_class, spk_ids[n_lab_speakers:], WILD_SYSTEMS),
        ]
    ):
        speakers = make_speakers(seed, ids, dkey)
        r = _rng(seed, dkey, 8000)
        names = r.permutation(2 * n_utt)  # neutral file names: the number says nothing about class or pairing
        width = max(4, len(str(2 * n_utt - 1)))
        flac = set()
        if domain == "wild" and n_utt > 0:
            flac = {int(r.integers(n_utt)), n_utt + int(r.integers(n_utt))}  # one bona fide, one spoof
        sys_offset = int(r.integers(len(systems)))
        for u in range(n_utt):
            plan.append(
                _Item(
                    domain=domain,
                    key=dkey,
                    index=u,
                    speaker=speakers[u % len(speakers)],
                    # rotate systems within each speaker so every speaker meets every method
                    system=systems[(u // len(speakers) + sys_offset + u) % len(systems)],
                    name_bonafide=f"{domain}_{names[u]:0{width}d}",
                    name_spoof=f"{domain}_{names[n_utt + u]:0{width}d}",
                    flac_bonafide=u in flac,
                    flac_spoof=n_utt + u in flac,
                )
            )

    rows: dict[str, list[dict[str, str]]] = {d: [] for d in DOMAINS}
    written: set[Path] = set()
    for it in progress(plan) if progress is not None else plan:
        r = _rng(seed, it.key, it.index)
        src = render_bonafide(it.speaker, float(r.uniform(lo, hi)), r)
        fake = SPOOFERS[it.system](src, _rng(seed, it.key, it.index, 1))
        fake *= _rms(src.y) / _rms(fake) * 10 ** (r.uniform(-1.5, 1.5) / 20)
        if np.max(np.abs(fake)) > 0.95:
            fake *= 0.95 / np.max(np.abs(fake))
        for label, y, name, flac, system, purpose in (
            ("bonafide", src.y, it.name_bonafide, it.flac_bonafide, BONAFIDE_SYSTEM, 2),
            ("spoof", fake, it.name_spoof, it.flac_spoof, it.system, 3),
        ):
            sr = SR
            if it.domain == "wild":
                y, sr = wild_channel(y, _rng(seed, it.key, it.index, purpose))
            rel = Path(it.domain) / label / (name + (".flac" if flac else ".wav"))
            _write_audio(outdir / rel, y, sr, "FLAC" if flac else "WAV")
            written.add((outdir / rel).resolve())
            row = {"path": rel.as_posix(), "label": label, "speaker": it.speaker.speaker, "system": system}
            rows[it.domain].append({**row, "domain": it.domain})
    removed = _remove_stale(outdir, written)

    config = {
        "generator": "dfdet.democorpus",
        "dfdet_version": __version__,
        "seed": int(seed),
        "n_per_class": int(n_per_class),
        "n_wild_per_class": int(n_wild_per_class),
        "seconds": [lo, hi],
        "n_lab_speakers": int(n_lab_speakers),
        "n_wild_speakers": int(n_wild_speakers),
        "lab_systems": list(LAB_SYSTEMS),
        "wild_systems": list(WILD_SYSTEMS),
    }
    write_text_atomic(outdir / "README.txt", _readme(config, rows))
    # featurize finds this marker above the audio and train records it: models trained here say they are synthetic
    marker = corpus_marker(DEMO_CORPUS_NAME, True, config_hash=config_hash(config), generator=config["generator"])
    write_text_atomic(outdir / CORPUS_FILE, json.dumps(marker, indent=2, sort_keys=True) + "\n")
    paths = {}
    for domain in DOMAINS:
        paths[domain] = outdir / f"{domain}.csv"
        write_text_atomic(paths[domain], _csv_text(rows[domain]))
    paths["labels"] = outdir / "labels.csv"
    write_text_atomic(paths["labels"], _csv_text(rows["lab"] + rows["wild"]))  # last: the make target
    counts = {
        d: {lab: sum(1 for row in rows[d] if row["label"] == lab) for lab in ("bonafide", "spoof")} for d in DOMAINS
    }
    return {
        "outdir": str(outdir),
        "counts": counts,
        "n_files": sum(len(v) for v in rows.values()),
        "speakers": {d: sorted({row["speaker"] for row in rows[d]}) for d in DOMAINS},
        "systems": {d: sorted({row["system"] for row in rows[d]} - {BONAFIDE_SYSTEM}) for d in DOMAINS},
        "paths": {k: str(v) for k, v in paths.items()},
        "readme": str(outdir / "README.txt"),
        "removed_stale": removed,
        "config": config,
        "config_hash": config_hash(config),
    }


def _readme(config: dict[str, Any], rows: dict[str, list[dict[str, str]]]) -> str:
    def count(domain: str, label: str) -> int:
        return sum(1 for r in rows[domain] if r["label"] == label)

    spk = {d: ", ".join(sorted({r["speaker"] for r in rows[d]})) for d in DOMAINS}
    systems = "\n".join(f"  {k:<4} {v}" for k, v in SYSTEM_DESCRIPTIONS.items())
    lines = [
        "dfdet demo corpus -- SYNTHETIC AUDIO, NOT SPEECH RECORDINGS",
        "",
        "This corpus only exercises the dfdet pipeline (featurize, train, score, calibrate, report, ...).",
        "Numbers measured on it say nothing about real deepfakes; real studies use ASVspoof 2019 LA and In-the-Wild.",
        "",
        f"Made by `dfdet demo-corpus` (dfdet {config['dfdet_version']}), seed {config['seed']}; the same seed and",
        "parameters give byte-identical files. Parameters (config hash " + config_hash(config) + "):",
        *(f"  {k}: {v}" for k, v in config.items() if k not in ("generator", "dfdet_version")),
        "",
        "Bona fide: source-filter synthesis. Glottal pulse train following an f0 contour (declination, pitch accents,",
        "slow drift; per-period jitter and shimmer) plus aspiration noise, through a cascade of 5 resonators whose",
        "formants move between vowel targets; syllable-like segments (fricatives, stops with bursts, nasals, vowels)",
        "and pauses; a quiet pink room tone 30-55 dB down. Each speaker has its own f0 range, formant scale,",
        "voice quality and speaking rate.",
        "",
        "Spoof: the SAME utterances (the same bona fide rendition, same speaker) through one resynthesis method,",
        "named in the `system` column (empty for bona fide rows):",
        systems,
        "",
        f"lab  (clean, 16 kHz WAV): {count('lab', 'bonafide')} bona fide + {count('lab', 'spoof')} spoof; "
        f"speakers {spk['lab']}; systems {', '.join(LAB_SYSTEMS)}.",
        f"wild (degraded): {count('wild', 'bonafide')} bona fide + {count('wild', 'spoof')} spoof; "
        f"speakers {spk['wild'] or '-'} (disjoint from lab); systems {', '.join(WILD_SYSTEMS)} (PV unseen in lab).",
        "  Every wild clip, whatever its class: synthetic reverberation (70 %), additive noise at 5-20 dB SNR",
        "  (white, pink, brown or babble-like), an 8 kHz telephone path (40 %; half of those stored at 8 kHz),",
        "  some files stored at 44.1 kHz, random level (-24..-1 dBFS peak), clipping (20 %), two FLAC files.",
        "",
        "Files: {lab,wild}/{bonafide,spoof}/<domain>_NNNN.{wav,flac} (16-bit PCM; names are neutral: the number says",
        "nothing about class or pairing). Labels: lab.csv, wild.csv and labels.csv (all rows) with header",
        "path,label,speaker,system,domain; paths are relative to the CSV's directory. Use e.g.",
        "  dfdet featurize --labels lab.csv -o lab.h5",
        "",
    ]
    return "\n".join(lines)
