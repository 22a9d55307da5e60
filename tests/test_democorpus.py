"""The embedded demo corpus: layout, label tables, determinism, audio properties and the `demo-corpus` command."""

from __future__ import annotations

import csv
import hashlib
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dfdet.cli import cli
from dfdet.democorpus import make_demo_corpus

HEADER = ["path", "label", "speaker", "system", "domain"]


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == HEADER
        return list(reader)


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _high_band_fraction(path: Path, cutoff: float = 7000.0) -> float:
    y, sr = sf.read(path, dtype="float64")
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1.0 / sr)
    return float(power[freqs > cutoff].sum() / power.sum())


def _dynamic_range_db(path: Path) -> float:
    """Loud frames vs quiet frames (25 ms): high for clean speech with pauses, low under additive noise."""
    y, sr = sf.read(path, dtype="float64")
    n = int(0.025 * sr)
    frames = y[: len(y) // n * n].reshape(-1, n)
    energy = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    return float(np.percentile(energy, 95) - np.percentile(energy, 5))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    start = time.process_time()
    result = make_demo_corpus(out, n_per_class=12, n_wild_per_class=6, seed=3)
    result["cpu_seconds"] = time.process_time() - start
    return out, result


def test_counts_labels_speakers_systems(corpus):
    out, result = corpus
    lab, wild, everything = _rows(out / "lab.csv"), _rows(out / "wild.csv"), _rows(out / "labels.csv")
    assert Counter(r["label"] for r in lab) == {"bonafide": 12, "spoof": 12}
    assert Counter(r["label"] for r in wild) == {"bonafide": 6, "spoof": 6}
    assert result["counts"] == {"lab": {"bonafide": 12, "spoof": 12}, "wild": {"bonafide": 6, "spoof": 6}}
    assert {r["domain"] for r in lab} == {"lab"} and {r["domain"] for r in wild} == {"wild"}
    # labels.csv holds every row of both tables, sorted by path like each table
    assert sorted(map(tuple, (r.values() for r in lab + wild))) == [tuple(r.values()) for r in everything]
    assert [r["path"] for r in lab] == sorted(r["path"] for r in lab)
    for r in everything:
        assert (out / r["path"]).is_file()
        assert Path(r["path"]).parts[:2] == (r["domain"], r["label"])  # OUTDIR/<domain>/<label>/<utt>
    files = {p.relative_to(out).as_posix() for p in out.glob("*/*/*")}
    assert files == {r["path"] for r in everything}
    # speakers: disjoint across domains, each speaker in both classes
    spk = {d: {r["speaker"] for r in rows} for d, rows in (("lab", lab), ("wild", wild))}
    assert spk["lab"].isdisjoint(spk["wild"]) and len(spk["lab"]) >= 3 and len(spk["wild"]) >= 2
    for rows in (lab, wild):
        for s in {r["speaker"] for r in rows}:
            assert {r["label"] for r in rows if r["speaker"] == s} == {"bonafide", "spoof"}
    # systems: bona fide empty (as the ASVspoof reader gives), lab methods, wild with one method lab never saw
    assert {r["system"] for r in everything if r["label"] == "bonafide"} == {""}
    lab_sys = Counter(r["system"] for r in lab if r["label"] == "spoof")
    wild_sys = {r["system"] for r in wild if r["label"] == "spoof"}
    assert set(lab_sys) == {"GL", "ENV", "LBW"} and set(lab_sys.values()) == {4}
    assert "PV" in wild_sys and "PV" not in lab_sys and wild_sys & set(lab_sys)
    readme = (out / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "seed 3" in readme and "only exercises the dfdet pipeline" in readme


def test_audio_readable_with_expected_rates_and_lengths(corpus):
    out, _ = corpus
    for r in _rows(out / "labels.csv"):
        info = sf.info(out / r["path"])
        assert info.subtype == "PCM_16" and info.channels == 1
        assert 1.5 - 1e-3 <= info.duration <= 3.5 + 1e-3
        if r["domain"] == "lab":
            assert (info.samplerate, info.format) == (16000, "WAV")
        else:
            assert info.samplerate in (8000, 16000, 44100)
        y, _ = sf.read(out / r["path"])
        assert np.isfinite(y).all() and np.abs(y).max() > 1e-3  # not silent
    wild_formats = Counter(sf.info(out / r["path"]).format for r in _rows(out / "wild.csv"))
    assert wild_formats["FLAC"] == 2
    wild_rates = {sf.info(out / r["path"]).samplerate for r in _rows(out / "wild.csv")}
    assert wild_rates != {16000}  # some files exercise resampling


def test_spoofs_are_the_same_utterances(corpus):
    """Each spoof is a resynthesis of one bona fide clip: per speaker, the clip lengths pair up exactly (lab)."""
    out, _ = corpus
    lengths: dict[tuple[str, str], list[int]] = {}
    for r in _rows(out / "lab.csv"):
        lengths.setdefault((r["speaker"], r["label"]), []).append(sf.info(out / r["path"]).frames)
    for s in {k[0] for k in lengths}:
        assert sorted(lengths[(s, "bonafide")]) == sorted(lengths[(s, "spoof")])


def test_lbw_spoofs_have_little_energy_above_7khz(corpus):
    out, _ = corpus
    rows = _rows(out / "lab.csv")
    bona = [_high_band_fraction(out / r["path"]) for r in rows if r["label"] == "bonafide"]
    lbw = [_high_band_fraction(out / r["path"]) for r in rows if r["system"] == "LBW"]
    others = [_high_band_fraction(out / r["path"]) for r in rows if r["system"] in ("GL", "ENV")]
    assert len(lbw) == 4
    assert max(lbw) < 0.01 * np.median(bona)  # at least 20 dB less energy above 7 kHz
    assert np.median(others) > 0.1 * np.median(bona)  # the other methods keep the full band


def test_wild_is_noisier_than_lab(corpus):
    out, _ = corpus
    lab = [_dynamic_range_db(out / r["path"]) for r in _rows(out / "lab.csv")]
    wild = [_dynamic_range_db(out / r["path"]) for r in _rows(out / "wild.csv")]
    assert np.median(lab) > np.median(wild) + 10


def test_labels_csv_is_written_last(corpus):
    out, _ = corpus
    last = (out / "labels.csv").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= last for p in out.rglob("*") if p.is_file())
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temp files


def test_runtime_is_small(corpus):
    _, result = corpus
    # 36 clips; the default 360-clip corpus takes ~6 s of CPU on one core (generous bound for shared machines)
    assert result["cpu_seconds"] < 10


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    kw = {"n_per_class": 3, "n_wild_per_class": 2, "seconds": (1.5, 1.8)}
    a = _hashes(Path(make_demo_corpus(tmp_path / "a", seed=11, **kw)["outdir"]))
    b = _hashes(Path(make_demo_corpus(tmp_path / "b", seed=11, **kw)["outdir"]))
    c = _hashes(Path(make_demo_corpus(tmp_path / "c", seed=12, **kw)["outdir"]))
    assert a == b and len(a) == 3 * 2 + 2 * 2 + 5  # + README.txt, lab/wild/labels.csv, corpus.json
    audio = [k for k in a if k.endswith((".wav", ".flac"))]
    shared = [k for k in audio if k in c]
    assert shared and all(a[k] != c[k] for k in shared)


def test_rerun_smaller_removes_stale_clips(tmp_path):
    out = tmp_path / "corpus"
    make_demo_corpus(out, n_per_class=4, n_wild_per_class=2, seed=1, seconds=1.5)
    (out / "lab" / "notes.txt").write_text("keep me")  # not ours: never deleted
    result = make_demo_corpus(out, n_per_class=2, n_wild_per_class=1, seed=1, seconds=1.5)
    listed = {r["path"] for r in _rows(out / "labels.csv")}
    assert {p.relative_to(out).as_posix() for p in out.glob("*/*/*")} == listed
    assert result["removed_stale"] >= (8 + 4) - (4 + 2)  # more when a name switched between .wav and .flac
    assert (out / "lab" / "notes.txt").read_text() == "keep me"


def test_cli_writes_corpus_and_prints_labels_path(runner, tmp_path):
    out = tmp_path / "demo"
    r = runner.invoke(cli, ["--seed", "5", "demo-corpus", str(out), "--n-per-class", "3", "--seconds", "1.5-2"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{out / 'labels.csv'}\n"
    assert "done 8 of 8 (0 skipped)" in r.stderr and "lab: 3 bona fide + 3 spoof" in r.stderr
    rows = _rows(out / "labels.csv")
    assert Counter((x["domain"], x["label"]) for x in rows) == {
        ("lab", "bonafide"): 3,
        ("lab", "spoof"): 3,
        ("wild", "bonafide"): 1,
        ("wild", "spoof"): 1,
    }
    # the root --seed drives generation: same bytes as the library with that seed
    lib = make_demo_corpus(tmp_path / "lib", n_per_class=3, n_wild_per_class=1, seed=5, seconds=(1.5, 2.0))
    assert _hashes(out) == _hashes(Path(lib["outdir"]))


def test_cli_quiet_and_help(runner, tmp_path):
    r = runner.invoke(cli, ["-q", "demo-corpus", str(tmp_path / "q"), "--n-per-class", "1", "--seconds", "1.5"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "" and r.stdout.strip().endswith("labels.csv")
    h = runner.invoke(cli, ["demo-corpus", "--help"])
    assert h.exit_code == 0 and "SYNTHETIC" in h.stdout and "labels.csv" in h.stdout


@pytest.mark.parametrize("value", ["abc", "3-1.5", "0.01", "2-99"])
def test_cli_rejects_bad_seconds(runner, tmp_path, value):
    r = runner.invoke(cli, ["demo-corpus", str(tmp_path / "x"), "--seconds", value])
    assert r.exit_code == 2 and "--seconds" in r.stderr
    assert not (tmp_path / "x").exists()


def test_cli_outdir_is_a_file(runner, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    r = runner.invoke(cli, ["demo-corpus", str(target), "--n-per-class", "1"])
    assert r.exit_code == 2 and "demo-corpus" in r.stderr
    assert target.read_text() == "x"


def test_table_reader_reads_the_labels(corpus):
    protocols = pytest.importorskip("dfdet.protocols")
    out, _ = corpus
    utts = protocols.read_labels(out / "lab.csv")
    rows = _rows(out / "lab.csv")
    assert len(utts) == len(rows)
    by_path = {str((out / r["path"]).resolve()): r for r in rows}
    for u in utts:
        r = by_path[str(Path(u.path).resolve())]
        assert u.label == (0 if r["label"] == "bonafide" else 1)
        assert (u.speaker, u.system, u.domain) == (r["speaker"], r["system"], r["domain"])
