"""Data augmentation for training: seeded copies of each utterance under random real-signal degradations.

Why: detectors trained on clean clips learn the recording chain (bandwidth, codec, level, noise floor) as much as the
generator; the field's reference systems are all trained with augmentation. `dfdet featurize --augment N` adds N
copies per utterance (utt_id `ID@aug1..N`, same label and metadata), featurized ahead of time from the decoded audio.

A copy is described by a spec string, e.g. `noise:kind=pink,seed=81723,snr=12.5|mp3:kbps=64`: augmentations joined by
`|`, applied in that order at the file's native rate, each with every parameter written out (random draws inside a
step come from its recorded `seed`). The spec is the store's `augment` column and fully determines the transform:
`apply_spec` of the same file and spec gives the same samples, bit for bit. The spec of copy k of an utterance is
drawn from `default_rng([seed, hash(utt_id), k])`, so it does not depend on input order, -j or sharding.

The primitives are `dfdet.degrade`'s (noise, gain, band limit, codecs, RawBoost's convolutive and impulsive noise);
this module only draws their parameters and chains them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet import degrade
from dfdet.errors import DfdetError, UsageError

if TYPE_CHECKING:
    from dfdet.features import Recipe
    from dfdet.inputs import Utterance

SCHEMA = "dfdet.augment/1"
Params = dict[str, Any]
NOISE_KINDS = ("white", "pink", "babble")
TELEPHONE_CODECS = {"none": None, "ulaw": "ULAW", "alaw": "ALAW", "gsm": "GSM610", "g721": "G721_32"}
MP3_KBPS = (16, 24, 32, 48, 64, 96, 128)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MPEG audio allows
OPUS_KBPS = (8, 12, 16, 24, 32, 48, 64)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # what Opus allows
SEED_MAX = 2**31


@dataclass(frozen=True)
class Augmentation:
    """One kind of augmentation: how to draw its parameters and how to apply them (same rate, same length).

    `params` maps each parameter to its type (the spec string is parsed with it); `needs` lists the
    (format, subtype) pairs libsndfile must write for this kind to be available here.
    """

    name: str
    description: str
    params: dict[str, type]
    draw: Callable[[np.random.Generator], Params]
    fn: Callable[[np.ndarray, int, Params], np.ndarray]
    needs: tuple[tuple[str, str], ...] = ()


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(SEED_MAX))


def _r(x: float, digits: int = 2) -> float:
    """Drawn floats are rounded so the spec stays short; the transform uses the rounded value (parsed from the spec)."""
    return round(float(x), digits)


def _noise(y: np.ndarray, sr: int, p: Params) -> np.ndarray:
    rng = np.random.default_rng(p["seed"])
    kind = p["kind"]
    if kind == "white":
        n = degrade.white_noise(rng, len(y))
    elif kind == "pink":
        n = degrade.pink_noise(rng, len(y))
    elif kind == "babble":
        n = degrade.babble_noise(rng, len(y), sr)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (one of {', '.join(NOISE_KINDS)})")
    return degrade.add_noise(y, p["snr"], n)


def _telephone(y: np.ndarray, sr: int, p: Params) -> np.ndarray:
    if p["codec"] not in TELEPHONE_CODECS:
        raise ValueError(f"unknown telephone codec {p['codec']!r} (one of {', '.join(TELEPHONE_CODECS)})")
    return degrade.band_limit(y, sr, 8000, TELEPHONE_CODECS[p["codec"]])


def mp3_level(kbps: float, sr: int) -> float:
    """libsndfile's compression level (0-1) for a constant MP3 bitrate at `sr`: its encoder sets a bitrate linear in
    the level between the MPEG version's limits (MPEG-1 at 32-48 kHz: 32-320 kbps; MPEG-2: 8-160; MPEG-2.5: 8-64),
    and LAME takes the nearest standard bitrate. Out-of-range requests are clamped to those limits."""
    lo, hi = (32.0, 320.0) if sr >= 32000 else (8.0, 160.0) if sr >= 16000 else (8.0, 64.0)
    level = (hi - (float(kbps) + 0.5)) / (hi - lo)  # +0.5: land on `kbps`, not the standard rate below it
    return float(min(max(level, 0.0), 0.999))  # libsndfile refuses 1.0


def opus_level(kbps: float) -> float:
    """libsndfile's compression level (0-1) for an Opus bitrate: linear from 256 kbps (0) to 6 kbps (1), measured with
    libsndfile 1.2 at 8-48 kHz (Opus is variable-rate: the average lands within ~15 % of `kbps`)."""
    return float(min(max((256.0 - float(kbps)) / 250.0, 0.0), 1.0))


def _codec_rate(sr: int, rates: Sequence[int], above: bool) -> int:
    """`sr` if the codec takes it, else the nearest rate it takes above (Opus) or below (MP3) it; the audio is
    resampled there and back, as an encoder's front end would."""
    if sr in rates:
        return sr
    if above:
        return min([r for r in rates if r >= sr], default=max(rates))
    return max([r for r in rates if r <= sr], default=min(rates))


def _mp3(y: np.ndarray, sr: int, p: Params) -> np.ndarray:
    rate = _codec_rate(sr, MP3_RATES, above=False)
    level = mp3_level(p["kbps"], rate)
    return degrade.round_trip(y, sr, rate, "MPEG_LAYER_III", "MP3", compression_level=level, bitrate_mode="CONSTANT")


def _ogg(y: np.ndarray, sr: int, p: Params) -> np.ndarray:
    return degrade.round_trip(y, sr, sr, "VORBIS", "OGG", compression_level=p["level"])


def _opus(y: np.ndarray, sr: int, p: Params) -> np.ndarray:
    rate = _codec_rate(sr, OPUS_RATES, above=True)  # Opus codes at 48 kHz inside: resampling up loses nothing
    return degrade.round_trip(y, sr, rate, "OPUS", "OGG", compression_level=opus_level(p["kbps"]))


AUGMENTATIONS: dict[str, Augmentation] = {}


def register(a: Augmentation) -> Augmentation:
    """Add a kind; registry order is the order a chain applies its steps in (filtering, then noise, then channel)."""
    AUGMENTATIONS[a.name] = a
    return a


register(
    Augmentation(
        "convolutive",
        "RawBoost linear and non-linear convolutive noise: random multi-band notch filters on y, y^2 .. y^5",
        {"seed": int},
        lambda rng: {"seed": _seed(rng)},
        lambda y, sr, p: degrade.convolutive_noise(y, sr, np.random.default_rng(p["seed"])),
    )
)
register(
    Augmentation(
        "resample",
        "resampled to a random rate in 8-16 kHz and back (soxr HQ): the band above rate/2 gone, resampler traces",
        {"rate": int},
        lambda rng: {"rate": int(rng.integers(8000, 16001))},
        lambda y, sr, p: degrade.round_trip(y, sr, p["rate"]),
    )
)
register(
    Augmentation(
        "impulsive",
        "RawBoost impulsive signal-dependent noise: p % of the samples (p in 1-10) disturbed by up to 2x their value",
        {"p": float, "seed": int},
        lambda rng: {
            "p": _r(rng.uniform(1.0, 10.0)),
            "seed": _seed(rng),
        },  # RawBoost: 0-10; < 1 % barely changes a clip
        lambda y, sr, p: degrade.impulsive_noise(y, np.random.default_rng(p["seed"]), p["p"]),
    )
)
register(
    Augmentation(
        "noise",
        "additive white, pink or babble-like noise at a random SNR in 5-30 dB",
        {"kind": str, "seed": int, "snr": float},
        lambda rng: {
            "kind": NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))],
            "seed": _seed(rng),
            "snr": _r(rng.uniform(5, 30)),
        },
        _noise,
    )
)
register(
    Augmentation(
        "gain",
        "level changed by a random -20..+6 dB, clipped to [-1, 1]",
        {"db": float},
        lambda rng: {"db": _r(rng.uniform(-20.0, 6.0))},
        lambda y, sr, p: degrade.gain(y, p["db"]),
    )
)
register(
    Augmentation(
        "telephone",
        "telephone line: 8 kHz band limit, then none, mu-law, A-law, GSM 6.10 or G.721 ADPCM at 8 kHz",
        {"codec": str},
        lambda rng: {"codec": list(TELEPHONE_CODECS)[int(rng.integers(len(TELEPHONE_CODECS)))]},
        _telephone,
        (("WAV", "ULAW"), ("WAV", "ALAW"), ("WAV", "GSM610"), ("WAV", "G721_32")),
    )
)
register(
    Augmentation(
        "mp3",
        f"MP3 re-encoding at a random constant bitrate ({', '.join(map(str, MP3_KBPS))} kbps)",
        {"kbps": int},
        lambda rng: {"kbps": MP3_KBPS[int(rng.integers(len(MP3_KBPS)))]},
        _mp3,
        (("MP3", "MPEG_LAYER_III"),),
    )
)
register(
    Augmentation(
        "ogg",
        "OGG/Vorbis re-encoding at a random libsndfile compression level 0-1 (about 70-33 kbps at 16 kHz)",
        {"level": float},
        lambda rng: {"level": _r(rng.uniform(0.0, 1.0))},
        _ogg,
        (("OGG", "VORBIS"),),
    )
)
register(
    Augmentation(
        "opus",
        f"Opus (OGG) re-encoding at a random bitrate ({', '.join(map(str, OPUS_KBPS))} kbps; VoIP and messaging apps)",
        {"kbps": int},
        lambda rng: {"kbps": OPUS_KBPS[int(rng.integers(len(OPUS_KBPS)))]},
        _opus,
        (("OGG", "OPUS"),),
    )
)


def unavailable_reason(a: Augmentation) -> str | None:
    """Why libsndfile here cannot run `a` (None when it can)."""
    if not a.needs:
        return None
    import soundfile as sf

    for fmt, subtype in a.needs:
        if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
            return f"libsndfile {sf.__libsndfile_version__} here cannot write {fmt}/{subtype}"
    return None


# ---------------------------------------------------------------------------------------------------- spec strings
def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def format_spec(chain: Sequence[tuple[str, Params]]) -> str:
    """`name:k=v,k=v|name:...` (parameters sorted by name)."""
    return "|".join(f"{name}:{','.join(f'{k}={_fmt(p[k])}' for k in sorted(p))}" for name, p in chain)


def parse_spec(spec: str) -> list[tuple[str, Params]]:
    """The chain a spec string describes, each parameter converted to its kind's type; UsageError when malformed."""
    fix = f"write NAME:KEY=VALUE,...|NAME:..., NAME one of {', '.join(AUGMENTATIONS)}"
    chain: list[tuple[str, Params]] = []
    for step in spec.split("|"):
        name, _, body = step.strip().partition(":")
        a = AUGMENTATIONS.get(name.strip())
        if a is None:
            raise UsageError(f"augmentation spec {spec!r}: unknown augmentation {name.strip()!r}", fix)
        p: Params = {}
        for item in filter(None, body.split(",")):
            k, eq, v = item.partition("=")
            if not eq or k not in a.params:
                raise UsageError(f"augmentation spec {spec!r}: bad parameter {item!r} for {a.name}", fix)
            try:
                p[k] = a.params[k](v)
            except ValueError:
                raise UsageError(
                    f"augmentation spec {spec!r}: {k}={v!r} is not a {a.params[k].__name__}", fix
                ) from None
        missing = set(a.params) - set(p)
        if missing:
            raise UsageError(f"augmentation spec {spec!r}: {a.name} lacks {', '.join(sorted(missing))}", fix)
        chain.append((a.name, p))
    return chain


def apply_spec(y: np.ndarray, sr: int, spec: str) -> np.ndarray:
    """The augmented audio (float64, same rate and length) that `spec` describes; errors name the spec and step."""
    out = np.asarray(y, dtype=np.float64)
    for name, p in parse_spec(spec):
        try:
            out = np.asarray(AUGMENTATIONS[name].fn(out, int(sr), p), dtype=np.float64)
        except Exception as e:  # noqa: BLE001 - a codec or filter failure is reported with its spec
            raise DfdetError(f"augmentation {spec!r} failed in {name}: {type(e).__name__}: {e}") from e
        if not np.isfinite(out).all():
            raise DfdetError(f"augmentation {spec!r} gave non-finite samples in {name}")
    return out


def load_augmented(recipe: Recipe, path: str, spec: str) -> tuple[np.ndarray, float]:
    """`features.load_prepared` for an augmented copy: the whole file decoded, `spec` applied at its native rate,
    then the recipe's `prepare` -> (prepared audio, duration of the augmented audio in seconds)."""
    from dfdet.audio import load_audio

    y, sr = load_audio(path)
    z = apply_spec(y, sr, spec)
    return recipe.prepare(z, sr), len(z) / float(sr)


# ---------------------------------------------------------------------------------------------------- drawing copies
@dataclass(frozen=True)
class AugmentConfig:
    """How copies are drawn: `copies` per utterance, chains of 1..`max_ops` distinct `kinds`, from `seed`."""

    copies: int
    seed: int = 0
    kinds: tuple[str, ...] = ()
    max_ops: int = 2
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it is not available here

    def record(self) -> dict[str, Any]:
        """What a store's attrs keep (`augment`) so a run can be reproduced and compared."""
        return {
            "schema": SCHEMA,
            "copies": self.copies,
            "seed": self.seed,
            "kinds": list(self.kinds),
            "max_ops": self.max_ops,
            "skipped": dict(self.skipped),
        }


def resolve_config(
    copies: int,
    seed: int = 0,
    kinds: str | Sequence[str] | None = None,
    max_ops: int = 2,
    warn: Callable[[str], None] | None = None,
) -> AugmentConfig:
    """Checked config: kinds by name (comma-separated or a list; None = all) put in registry order; kinds libsndfile
    cannot run here are dropped with the reason recorded (and warned about)."""
    if copies < 1:
        raise UsageError(f"--augment must be >= 1, got {copies}", "pass the number of augmented copies per input")
    if seed < 0:
        raise UsageError(f"the augmentation seed must be >= 0, got {seed}", "pass --augment-seed 0 or more")
    if max_ops < 1:
        raise UsageError(f"max_ops must be >= 1, got {max_ops}", "chains have at least one step")
    names = list(AUGMENTATIONS) if kinds is None else kinds.split(",") if isinstance(kinds, str) else list(kinds)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise UsageError(f"unknown augmentation(s): {', '.join(unknown)}", f"choose from {', '.join(AUGMENTATIONS)}")
    skipped: dict[str, str] = {}
    for n in names:
        reason = unavailable_reason(AUGMENTATIONS[n])
        if reason is not None:
            skipped[n] = reason
            if warn is not None:
                warn(f"augmentation {n} skipped: {reason}")
    chosen = tuple(n for n in AUGMENTATIONS if n in names and n not in skipped)
    if not chosen:
        raise UsageError("no augmentation available", f"choose from {', '.join(AUGMENTATIONS)}")
    return AugmentConfig(int(copies), int(seed), chosen, int(max_ops), skipped)


def _id_key(utt_id: str) -> list[int]:
    """A stable 64-bit key of an utt_id as two 32-bit words (Python's hash() changes between processes)."""
    h = int.from_bytes(hashlib.blake2b(utt_id.encode("utf-8"), digest_size=8).digest(), "little")
    return [h & 0xFFFFFFFF, h >> 32]


def draw_spec(cfg: AugmentConfig, utt_id: str, copy: int) -> str:
    """The spec of copy `copy` (1-based) of `utt_id`: a function of (seed, utt_id, copy) only."""
    rng = np.random.default_rng([cfg.seed, *_id_key(utt_id), int(copy)])
    n = int(rng.integers(1, min(cfg.max_ops, len(cfg.kinds)) + 1))
    picked = sorted(rng.choice(len(cfg.kinds), size=n, replace=False).tolist())
    return format_spec([(cfg.kinds[i], AUGMENTATIONS[cfg.kinds[i]].draw(rng)) for i in picked])


def with_copies(utterances: Sequence[Utterance], cfg: AugmentConfig) -> list[Utterance]:
    """The utterances, then `cfg.copies` augmented copies of each (`ID@augK`, same label and metadata, `augment` =
    spec). Utterances that already carry a spec (an augmented copy) are not copied again."""
    out = list(utterances)
    for u in utterances:
        if u.augment:
            continue
        out.extend(
            replace(u, utt_id=f"{u.utt_id}@aug{k}", augment=draw_spec(cfg, u.utt_id, k))
            for k in range(1, cfg.copies + 1)
        )
    return out


def check_resume(out_path: str, cfg: AugmentConfig) -> None:
    """`featurize --resume` with --augment: the store at `out_path` (if any) must hold copies drawn the same way."""
    from pathlib import Path

    if not Path(out_path).exists():
        return
    from dfdet.store import StoreRows

    had = StoreRows(out_path).attrs.get("augment")
    if had != cfg.record():
        raise DfdetError(
            f"{out_path} holds augmented copies made with {had or 'no augmentation'}, not {cfg.record()}",
            "resume with the --augment options of the first run, or drop --resume to start over",
        )
