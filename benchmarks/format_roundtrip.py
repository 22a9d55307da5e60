"""Format round trip: does a detector react to the file format instead of the speech?

In the shared realspeech corpus the container and coding correlate with the label (float WAV and some sample rates
are nearly all spoof, 48 kHz nearly all bona fide, one page is all MP3). A recipe that decodes and resamples every
file to 16 kHz should not see that. This check takes the BONA FIDE clips, writes each again in the spoof side's
formats (float32 WAV at 22.05 kHz; 24 kHz MP3; 16 kHz float WAV) and scores original and copies with one detector.
If the format were a cue, the copies' scores would move toward spoof: the script prints, per format, the median
score shift, the share of clips whose decision flips to spoof, and the AUC of copies against originals (0.5 = the
detector cannot tell them apart).

Usage: .venv/bin/python benchmarks/format_roundtrip.py DETECTOR SHARED/data/realspeech/labels.csv [--max N]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from dfdet.audio import decode, resample  # noqa: E402
from dfdet.degrade import reencode  # noqa: E402
from dfdet.scoring import load_detector, score_audio_stream  # noqa: E402

FORMATS = {  # name -> (rate, writer)
    "float_wav_22k": (22050, lambda p, y, sr: sf.write(p.with_suffix(".wav"), y, sr, subtype="FLOAT")),
    "mp3_24k": (
        24000,
        lambda p, y, sr: sf.write(
            p.with_suffix(".wav"), reencode(y, sr, "MP3", "MPEG_LAYER_III")[0], sr, subtype="FLOAT"
        ),
    ),  # fmt: skip
    "float_wav_16k": (16000, lambda p, y, sr: sf.write(p.with_suffix(".wav"), y, sr, subtype="FLOAT")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detector")
    ap.add_argument("labels")
    ap.add_argument("--max", type=int, default=0, help="at most N bona fide clips (0 = all)")
    a = ap.parse_args()
    root = Path(a.labels).parent
    with open(a.labels, newline="", encoding="utf-8") as fh:
        bona = [root / r["path"] for r in csv.DictReader(fh) if r["label"] == "bonafide"]
    bona = bona[: a.max] if a.max else bona
    det = load_detector(a.detector)
    thr = float(det.threshold)
    orig = np.array([r.score for r in score_audio_stream(det, [str(p) for p in bona], jobs=1)])
    print(f"{len(bona)} bona fide clips, detector {a.detector} (threshold {thr:.4g})")
    print(f"original: median score {np.median(orig):.4g}, called spoof {np.mean(orig < thr):.1%}")
    print("format\tmedian shift\tflipped to spoof\tflipped to bona fide\tAUC copies vs originals")
    from sklearn.metrics import roc_auc_score

    with tempfile.TemporaryDirectory() as tmp:
        for name, (rate, write) in FORMATS.items():
            paths = []
            for i, p in enumerate(bona):
                d = decode(p)
                y = np.clip(resample(d.y, d.sr, rate), -1, 1)
                out = Path(tmp) / name / f"{i:05d}"
                out.parent.mkdir(exist_ok=True)
                write(out, y, rate)
                paths.append(str(out.with_suffix(".wav")))
            copy = np.array([r.score for r in score_audio_stream(det, paths, jobs=1)])
            shift = copy - orig
            auc = roc_auc_score(np.r_[np.zeros(len(orig)), np.ones(len(copy))], -np.r_[orig, copy])
            print(
                f"{name}\t{np.median(shift):+.4g}\t{np.mean((orig >= thr) & (copy < thr)):.1%}\t"
                f"{np.mean((orig < thr) & (copy >= thr)):.1%}\t{auc:.3f}"
            )


if __name__ == "__main__":
    main()
