"""Generators of small, seeded fixture corpora written with soundfile (no binary blobs in the repository).

Reusable by any test: ASVspoof 2019 LA layout, In-the-Wild layout, a generic labelled table, a directory of varied
audio (nested, duplicate basenames, unicode, 8-48 kHz, stereo) and a set of bad inputs.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import speechlike

PROTOCOL_NAMES = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}
_PREFIX = {"train": "T", "dev": "D", "eval": "E"}
ITW_SPEAKERS = ("Alec Guinness", "Barack Obama", "Zoë Kravitz", "Lastname, Firstname")


def write_audio(path: str | os.PathLike, y: np.ndarray, sr: int, **kwargs) -> Path:
    """sf.write into a fresh parent directory; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kwargs)
    return path


def bona_signal(sr: int = 16000, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A bona fide clip: speech-like with a seed-dependent pitch."""
    return speechlike(sr=sr, seconds=seconds, f0=100.0 + 7.0 * (seed % 15), seed=seed)


def spoof_signal(sr: int = 16000, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A 'spoofed' clip: the same kind of signal smoothed (vocoder-like) with a faint high tone, so it is learnable."""
    y = np.convolve(bona_signal(sr, seconds, seed), np.full(4, 0.25), mode="same")
    t = np.arange(len(y)) / sr
    return y + 0.02 * np.sin(2 * np.pi * min(6000.0, 0.4 * sr) * t)


def make_asvspoof_la(
    root: str | os.PathLike,
    n_per_class: int = 3,
    partition: str = "train",
    systems: tuple[str, ...] | None = None,
    sr: int = 16000,
    seconds: float = 0.5,
    seed: int = 0,
) -> Path:
    """An ASVspoof 2019 LA tree under `root` (the LA root); returns the CM protocol path.

    Writes `ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.<partition>.<trn|trl>.txt` and
    `ASVspoof2019_LA_<partition>/flac/LA_<T|D|E>_NNNNNNN.flac`: n_per_class bona fide rows (system `-`) and n_per_class
    spoof rows cycling through `systems` (default A01-A06; eval: A07-A19); speakers cycle LA_0079..LA_0082.
    """
    root = Path(root)
    if systems is None:
        systems = tuple(f"A{k:02d}" for k in (range(1, 7) if partition != "eval" else range(7, 20)))
    flac = root / f"ASVspoof2019_LA_{partition}" / "flac"
    proto = root / "ASVspoof2019_LA_cm_protocols" / PROTOCOL_NAMES[partition]
    proto.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(2 * n_per_class):
        file_id = f"LA_{_PREFIX[partition]}_{1000000 + (seed * 7919 + i * 104729) % 9000000:07d}"
        speaker = f"LA_{79 + i % 4:04d}"
        spoof = i >= n_per_class
        system = systems[(i - n_per_class) % len(systems)] if spoof else "-"
        y = (spoof_signal if spoof else bona_signal)(sr, seconds, seed * 1000 + i)
        write_audio(flac / f"{file_id}.flac", y, sr, subtype="PCM_16")
        lines.append(f"{speaker} {file_id} - {system} {'spoof' if spoof else 'bonafide'}")
    proto.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return proto


ASVSPOOF5_PROTOCOLS = {
    "train": "ASVspoof5.train.tsv",
    "dev": "ASVspoof5.dev.track_1.tsv",
    "eval": "ASVspoof5.eval.track_1.tsv",
}
ASVSPOOF5_FLAC = {"train": "flac_T", "dev": "flac_D", "eval": "flac_E_eval"}
ASVSPOOF5_CODECS = ("-", "C01", "C05", "C08")  # eval codec conditions cycled (`-` = uncoded)


def make_asvspoof5(
    root: str | os.PathLike,
    n_per_class: int = 4,
    partition: str = "train",
    phase1: bool = False,
    sr: int = 16000,
    seconds: float = 0.5,
    seed: int = 0,
    audio: bool = True,
) -> Path:
    """An ASVspoof 5 tree under `root`; returns the protocol path.

    Writes `ASVspoof5_protocols/<ASVspoof5.train.tsv | ASVspoof5.dev.track_1.tsv | ASVspoof5.eval.track_1.tsv>` in the
    ten-column form `SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY
    TMP` and `flac_T/` (`flac_D/`, `flac_E_eval/`) `<T|D|E>_NNNNNNNNNN.flac`. Spoofs cycle attacks A01..A04 (eval
    A17..A20) with tags AC1..AC3; speakers alternate genders; eval rows cycle ASVSPOOF5_CODECS (quality 0 when
    uncoded, else 1..5); train/dev are uncoded (`-`). `phase1`: the earlier six-column
    `ASVspoof5.<part>.metadata.txt` (SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC ATTACK_LABEL KEY) at `root`,
    beside `flac_T/`. `audio=False` writes the protocol only.
    """
    root = Path(root)
    letter = _PREFIX[partition]
    flac = root / ASVSPOOF5_FLAC[partition]
    if phase1:
        proto = root / f"ASVspoof5.{partition}.metadata.txt"
    else:
        proto = root / "ASVspoof5_protocols" / ASVSPOOF5_PROTOCOLS[partition]
    proto.parent.mkdir(parents=True, exist_ok=True)
    attacks = [f"A{k:02d}" for k in (range(17, 21) if partition == "eval" else range(1, 5))]
    lines = []
    for i in range(2 * n_per_class):
        file_id = f"{letter}_{(seed * 7919 + i * 104729) % 10**10:010d}"
        speaker, gender = f"{letter}_{4000 + i % 5:04d}", "MF"[i % 2]
        spoof = i >= n_per_class
        attack = attacks[(i - n_per_class) % len(attacks)] if spoof else "bonafide"
        tag = f"AC{1 + (i - n_per_class) % 3}" if spoof else "-"
        codec = ASVSPOOF5_CODECS[i % len(ASVSPOOF5_CODECS)] if partition == "eval" else "-"
        quality = ("0" if codec == "-" else str(1 + i % 5)) if partition == "eval" else "-"
        key = "spoof" if spoof else "bonafide"
        if audio:
            y = (spoof_signal if spoof else bona_signal)(sr, seconds, seed * 1000 + i)
            write_audio(flac / f"{file_id}.flac", y, sr, subtype="PCM_16")
        if phase1:
            lines.append(f"{speaker} {file_id} {gender} {codec} {attack if spoof else '-'} {key}")
        else:
            lines.append(f"{speaker} {file_id} {gender} {codec} {quality} - {tag} {attack} {key} -")
    proto.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return proto


def make_itw(root: str | os.PathLike, n: int = 6, sr: int = 16000, seconds: float = 0.5, seed: int = 0) -> Path:
    """An In-the-Wild tree: `root/meta.csv` (file,speaker,label; bona-fide/spoof alternating) and `root/<i>.wav`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = root / "meta.csv"
    with open(meta, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "speaker", "label"])
        for i in range(n):
            spoof = i % 2 == 1
            y = (spoof_signal if spoof else bona_signal)(sr, seconds, seed * 1000 + i)
            write_audio(root / f"{i}.wav", y, sr, subtype="PCM_16")
            w.writerow([f"{i}.wav", ITW_SPEAKERS[i % len(ITW_SPEAKERS)], "spoof" if spoof else "bona-fide"])
    return meta


def make_table_corpus(
    root: str | os.PathLike, n: int = 4, delimiter: str = ",", sr: int = 16000, seconds: float = 0.5, seed: int = 0
) -> Path:
    """`root/labels.csv` (or .tsv) with path,label,speaker,system,domain and audio under `root/audio/<domain>/`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    table = root / ("labels.tsv" if delimiter == "\t" else "labels.csv")
    with open(table, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(["path", "label", "speaker", "system", "domain"])
        for i in range(n):
            spoof = i % 2 == 1
            domain = "lab" if i < n / 2 else "wild"
            rel = f"audio/{domain}/utt{i:03d}.wav"
            y = (spoof_signal if spoof else bona_signal)(sr, seconds, seed * 1000 + i)
            write_audio(root / rel, y, sr, subtype="PCM_16")
            w.writerow([rel, "spoof" if spoof else "bonafide", f"spk{i % 2}", "voc1" if spoof else "", domain])
    return table


def make_audio_dir(root: str | os.PathLike, seconds: float = 0.25, seed: int = 0) -> list[Path]:
    """A directory of varied readable audio; returns the absolute paths a recursive walk must find, sorted.

    Nested dirs, duplicate basenames in different subdirs, a unicode dir/name, an upper-case extension,
    8/16/22.05/44.1/48 kHz, a stereo file; plus things the walk must skip: hidden files/dirs and a .txt note.
    """
    root = Path(root).absolute()
    specs = [
        ("a/clip.wav", 16000, 1, {"subtype": "PCM_16"}),
        ("b/clip.wav", 16000, 1, {"subtype": "PCM_16"}),
        ("b/c/deep.flac", 44100, 1, {}),
        ("low_8k.wav", 8000, 1, {"subtype": "PCM_16"}),
        ("stereo_48k.wav", 48000, 2, {"subtype": "FLOAT"}),
        ("ünï/çødé 22k.flac", 22050, 1, {}),
        ("UPPER.WAV", 16000, 1, {"subtype": "PCM_16"}),
    ]
    out = []
    for k, (rel, sr, ch, kw) in enumerate(specs):
        y = bona_signal(sr, seconds, seed + k)
        if ch == 2:
            y = np.stack([y, 0.5 * y[::-1]], axis=1)
        out.append(write_audio(root / rel, y, sr, **kw))
    write_audio(root / ".hidden.wav", bona_signal(16000, seconds, seed), 16000)
    write_audio(root / ".cache" / "skip.wav", bona_signal(16000, seconds, seed), 16000)
    (root / "notes.txt").write_text("not audio\n", encoding="utf-8")
    return sorted(out, key=str)


def make_bad_audio(root: str | os.PathLike, sr: int = 16000) -> dict[str, Path]:
    """Bad inputs by kind: not_audio (text named .wav), zero_length, nan, inf; decodable edge cases: short, silent."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    bad = {"not_audio": root / "not_audio.wav"}
    bad["not_audio"].write_text("this is not audio\n", encoding="utf-8")
    bad["zero_length"] = write_audio(root / "zero_length.wav", np.zeros(0), sr, subtype="PCM_16")
    y = bona_signal(sr, 0.25)
    y_nan, y_inf = y.copy(), y.copy()
    y_nan[100] = np.nan
    y_inf[200] = np.inf
    bad["nan"] = write_audio(root / "nan.wav", y_nan, sr, subtype="FLOAT")
    bad["inf"] = write_audio(root / "inf.wav", y_inf, sr, subtype="FLOAT")
    bad["short"] = write_audio(root / "short.wav", y[:10], sr, subtype="PCM_16")
    bad["silent"] = write_audio(root / "silent.wav", np.zeros(sr // 4), sr, subtype="PCM_16")
    return bad
