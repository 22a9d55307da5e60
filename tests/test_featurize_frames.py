"""`featurize --recipe lfcc`: frame stores through the featurize engine (order, -j, shards, merge, resume, split, info),
long files in bounded memory, clips shorter than a frame, silence; and the realspeech labels.csv layout."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from dfdet.audio import load_audio
from dfdet.cli import cli
from dfdet.errors import DfdetError, InputError
from dfdet.features import FeatureGroup, get_recipe, recipe_hash
from dfdet.features import lfcc as L
from dfdet.featurize import featurize
from dfdet.inputs import Utterance
from dfdet.protocols import detect_kind, read_labels, resolve_utterances
from dfdet.store import FrameReader, frame_stat_layout, load_features, merge_stores
from tests.conftest import SHARED, speechlike
from tests.fixtures import write_audio
from tests.reference_lfcc import lfcc_reference

REALSPEECH = SHARED / "data" / "realspeech" / "labels.csv"
RS_HEADER = ["path", "label", "system", "family", "source_repo", "commit", "speaker", "sample_rate", "duration_s"]


def write_corpus(root: Path) -> list[Utterance]:
    """Six short clips at 8-48 kHz (one stereo float WAV, one FLAC), ids spk*/utt*, labels alternating."""
    specs = [
        (16000, 0.31, {}),
        (22050, 0.27, {}),
        (44100, 0.22, {}),
        (8000, 0.4, {}),
        (48000, 0.2, {}),
        (16000, 1.3, {}),
    ]
    utts = []
    for i, (sr, sec, kw) in enumerate(specs):
        y = speechlike(sr, sec, f0=100.0 + 13 * i, seed=i)
        if i == 2:
            y = np.stack([y, 0.4 * y[::-1]], axis=1)
            kw = {"subtype": "FLOAT"}
        ext = "flac" if i == 4 else "wav"
        p = write_audio(root / f"spk{i % 2}" / f"utt{i:02d}.{ext}", y, sr, **kw)
        utts.append(
            Utterance(f"spk{i % 2}/utt{i:02d}", str(p), i % 2, speaker=f"spk{i % 2}", system="A" if i % 2 else "")
        )
    return utts


def datasets(path: Path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file as bytes, strings by value (attributes, which hold times and argv, left out)."""
    out: dict[str, bytes] = {}

    def grab(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            v = obj[...]
            out[name] = repr(v.tolist()).encode() if v.dtype.kind == "O" else v.tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(grab)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    utts = write_corpus(root / "audio")
    single = root / "single.h5"
    featurize(utts, single, recipe="lfcc", jobs=1, chunk_rows=2, show_progress=False)
    return root, utts, single


def test_store_equals_the_recipe_applied_directly(corpus):
    _, utts, single = corpus
    r = get_recipe("lfcc")
    fs = load_features(single)
    assert fs.recipe == "lfcc" and fs.recipe_hash == recipe_hash(r) and fs.dim == 120
    assert fs.utt_id == sorted(u.utt_id for u in utts) and fs.y.tolist() == [0, 0, 0, 1, 1, 1]
    order, _, _ = frame_stat_layout(r.feature_names, r.groups)
    with FrameReader(single) as rd:
        assert rd.frame_names == r.feature_names and len(rd) == 6
        for i, u in enumerate(sorted(utts, key=lambda u: u.utt_id)):
            y, sr = load_audio(u.path)
            got = rd[i]
            ref = lfcc_reference(y, sr)  # the literal, loop-based definition
            assert got.dtype == np.float32 and got.shape == ref.shape == (L.n_frames(len(L.resample_16k(y, sr))), 60)
            d = np.abs(got.astype(np.float64) - ref)
            assert np.all(d <= 1e-5 + 1e-6 * np.abs(ref)), float(d.max())
            # what the recipe's whole-utterance path gives, narrowed to the store's float32
            np.testing.assert_allclose(got, r.extract(r.prepare(y, sr)).astype(np.float32), rtol=1e-6, atol=1e-5)
            m = got.astype(np.float64)
            stats = np.concatenate([m.mean(axis=0), m.std(axis=0)])[order]
            np.testing.assert_allclose(fs.X[i], stats, rtol=1e-6, atol=1e-6)
            assert fs.duration[i] == pytest.approx(len(y) / sr)
            assert fs.speaker[i] == u.speaker and fs.system[i] == u.system
    assert int(fs.frames.n_frames.sum()) == sum(len(L.resample_16k(*load_audio(u.path))) // 160 - 1 for u in utts)


def test_jobs_do_not_change_a_single_byte(corpus, tmp_path):
    root, utts, single = corpus
    two = tmp_path / "two.h5"
    featurize(utts, two, recipe="lfcc", jobs=2, chunk_rows=3, show_progress=False)
    a, b = datasets(single), datasets(two)
    assert a.keys() == b.keys() and {"frames", "n_frames", "features", "frame_names"} <= a.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]


def test_shards_merge_to_the_single_run(corpus, tmp_path, runner):
    _, utts, single = corpus
    parts = [tmp_path / f"p{k}.h5" for k in (1, 2, 3)]
    for k, p in enumerate(parts, 1):
        featurize(utts, p, recipe="lfcc", shard=(k, 3), chunk_rows=1, show_progress=False)
    merged = merge_stores(parts[::-1], tmp_path / "m.h5")
    assert merged.frames is not None and merged.frames.n_frames.sum() == load_features(single).frames.n_frames.sum()
    a, b = datasets(single), datasets(tmp_path / "m.h5")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    res = runner.invoke(cli, ["merge", *map(str, parts), "-o", str(tmp_path / "cli.h5")])
    assert res.exit_code == 0, res.output
    assert "6 rows, " in res.stderr and " frames" in res.stderr
    assert datasets(tmp_path / "cli.h5") == a


def test_empty_frame_shards_merge_and_describe(corpus, tmp_path, runner):
    _, utts, single = corpus
    empty = tmp_path / "e.h5"
    featurize(utts[:1], empty, recipe="lfcc", shard=(2, 2), show_progress=False)  # more shards than inputs
    assert len(load_features(empty)) == 0 and load_features(empty).frames.n_frames.size == 0
    res = runner.invoke(cli, ["info", str(empty)])
    assert res.exit_code == 0 and "frames         0 x 60" in res.stdout
    merge_stores([empty, single], tmp_path / "m.h5")
    a, b = datasets(single), datasets(tmp_path / "m.h5")
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]


def test_merging_a_frame_store_with_a_vector_store_is_an_error(corpus, tmp_path, runner):
    _, utts, single = corpus
    vec = tmp_path / "vec.h5"
    featurize(utts[:2], vec, recipe="seed154", show_progress=False)
    with pytest.raises(DfdetError, match="is a frame store .* but .*vec.h5 is a vector store"):
        merge_stores([single, vec], tmp_path / "x.h5")
    res = runner.invoke(cli, ["merge", str(vec), str(single), "-o", str(tmp_path / "y.h5")])
    assert res.exit_code == 1 and "frame store" in res.stderr and not (tmp_path / "y.h5").exists()


def test_resume_equals_an_uninterrupted_run(tmp_path):
    utts = write_corpus(tmp_path / "a")
    short = write_audio(tmp_path / "a" / "spk9" / "short.wav", np.full(200, 0.1), 16000, subtype="PCM_16")
    utts.append(Utterance("spk9/short", str(short), 1))
    full = tmp_path / "full.h5"
    featurize(utts, full, recipe="lfcc", jobs=2, skip_bad=True, chunk_rows=2, show_progress=False)
    part = tmp_path / "part.h5"
    order = sorted(utts, key=lambda u: u.utt_id)
    featurize(order[::3], part, recipe="lfcc", skip_bad=True, show_progress=False)  # rows and the failure, gaps
    assert [f["utt_id"] for f in load_features(part).failures] == ["spk9/short"]
    res = featurize(utts, part, recipe="lfcc", jobs=2, skip_bad=True, chunk_rows=2, resume=True, show_progress=False)
    assert (res.resumed, res.done, res.skipped) == (3, 6, 1)
    a, b = datasets(full), datasets(part)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    with pytest.raises(DfdetError, match="holds features of recipe lfcc"):  # a vector recipe cannot resume it
        featurize(utts, part, recipe="seed154", skip_bad=True, resume=True, show_progress=False)


def test_split_keeps_frames_with_their_rows(corpus, tmp_path, runner):
    _, _, single = corpus
    res = runner.invoke(cli, ["split", str(single), "--parts", "a=0.5,b=0.5", "-o", str(tmp_path), "--seed", "3"])
    assert res.exit_code == 0, res.output
    whole = load_features(single)
    pos = {u: i for i, u in enumerate(whole.utt_id)}
    seen = []
    with FrameReader(single) as src:
        for name in ("a", "b"):
            part = load_features(tmp_path / f"{name}.h5")
            assert part.frames is not None and len(part) >= 1
            with FrameReader(tmp_path / f"{name}.h5") as rd:
                for j, u in enumerate(part.utt_id):
                    np.testing.assert_array_equal(rd[j], src[pos[u]])
                    assert rd.n_frames[j] == src.n_frames[pos[u]]
                    assert part.X[j].tobytes() == whole.X[pos[u]].tobytes() and part.y[j] == whole.y[pos[u]]
            seen += part.utt_id
    assert sorted(seen) == whole.utt_id


def test_writing_changed_features_of_a_frame_store_is_refused(corpus, tmp_path):
    from dfdet.store import write_features

    fs = load_features(corpus[2])
    fs.X[1] += 1.0
    with pytest.raises(DfdetError, match="not the statistics of its frames"):
        write_features(tmp_path / "w.h5", fs)
    assert not (tmp_path / "w.h5").exists()


def test_info_describes_a_frame_store(corpus, runner):
    _, _, single = corpus
    n = load_features(single).frames.n_frames
    res = runner.invoke(cli, ["info", str(single), "--json"])
    assert res.exit_code == 0, res.output
    fr = json.loads(res.stdout)["frames"]
    assert fr["total"] == int(n.sum()) and fr["dim"] == 60
    assert fr["per_row"] == {"min": int(n.min()), "median": float(np.median(n)), "max": int(n.max())}
    text = runner.invoke(cli, ["info", str(single)]).stdout
    assert f"frames         {int(n.sum())} x 60 ({n.min()}/{np.median(n):g}/{n.max()} per row" in text
    assert "dims           120 (mean and std of each frame dimension)" in text


def test_cli_stdin_and_directory_give_the_same_store(corpus, tmp_path, runner):
    root, utts, _ = corpus
    a, b = tmp_path / "dir.h5", tmp_path / "stdin.h5"
    res = runner.invoke(cli, ["featurize", "--recipe", "lfcc", str(root / "audio"), "-o", str(a), "-j", "2"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stderr and "6 rows, " in res.stderr and "frames x 60 features" in res.stderr
    listing = "".join(f"{u.path}\n" for u in utts)
    res = runner.invoke(cli, ["featurize", "--recipe", "lfcc", "-", "-o", str(b)], input=listing)
    assert res.exit_code == 0, res.output
    assert datasets(a) == datasets(b)


def test_clip_shorter_than_a_frame_is_a_clear_error_and_silence_is_finite(tmp_path, runner):
    silent = write_audio(tmp_path / "in" / "silent.wav", np.zeros(4000), 16000, subtype="PCM_16")
    short = write_audio(tmp_path / "in" / "short.wav", speechlike(44100, 0.007), 44100, subtype="PCM_16")
    ok = write_audio(tmp_path / "in" / "ok.wav", speechlike(16000, 0.3), 16000, subtype="PCM_16")
    out = tmp_path / "s.h5"
    res = runner.invoke(cli, ["featurize", "--recipe", "lfcc", str(tmp_path / "in"), "-o", str(out)])
    assert res.exit_code == 1 and not out.exists()
    assert "short.wav: audio too short for one 20 ms frame" in res.stderr and "--skip-bad" in res.stderr
    res = runner.invoke(cli, ["featurize", "--recipe", "lfcc", str(tmp_path / "in"), "-o", str(out), "--skip-bad"])
    assert res.exit_code == 3, res.output
    fs = load_features(out)
    assert fs.utt_id == ["ok", "silent"] and [f["path"] for f in fs.failures] == [str(short)]
    assert "too short" in fs.failures[0]["reason"]
    with FrameReader(out) as rd:
        sil = rd[1]
    assert sil.shape == (L.n_frames(4000), 60) and np.isfinite(sil).all() and np.isfinite(fs.X).all()
    np.testing.assert_allclose(sil[:, 1:], 0.0, atol=1e-12)  # every band at the log floor: only c0 is non-zero
    np.testing.assert_allclose(sil[:, 0], np.sqrt(20) * np.log10(L.LOG_FLOOR), rtol=1e-6)
    assert fs.path == [str(ok), str(silent)]


def test_ten_minute_file_in_bounded_memory(tmp_path):
    """600 s at 48 kHz: decoded whole it would be 230 MB of float64; the run holds its 14 MB of float32 frames."""
    sr, seconds = 48000, 600
    path = tmp_path / "long.wav"
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(10 * sr) / sr)
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(tone + 0.01 * rng.standard_normal(len(tone)))
    out = tmp_path / "long.h5"
    tracemalloc.start()
    try:
        res = featurize([Utterance("long", str(path))], out, recipe="lfcc", show_progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n = L.n_frames(seconds * 16000)
    assert res.frames == n == 59999
    frame_bytes, whole_decode = n * 60 * 4, seconds * sr * 8
    assert peak < 3 * frame_bytes < whole_decode / 4, (peak, frame_bytes)
    fs = load_features(out)
    assert fs.frames.n_frames.tolist() == [n] and fs.duration[0] == pytest.approx(seconds)
    with FrameReader(out) as rd:
        assert np.isfinite(rd.read(0, n - 5)).all() and rd.read(0, n - 5).shape == (5, 60)


# ---- the realspeech labels.csv layout -------------------------------------------------------------------------------


def make_realspeech(root: Path) -> Path:
    """A tiny tree in the shared realspeech layout: audio/<source>/<system>/<name>.<flac|wav> and labels.csv."""
    rows = [
        ("src_a", "gt_vctk", "bonafide", "bonafide", "org/a-demo", "p225", 48000, ""),
        ("src_a", "hifigan", "spoof", "vocoder", "org/a-demo", "p225", 22050, ""),
        ("src_a", "vits", "spoof", "tts", "org/a-demo", "", 22050, "FLOAT"),
        ("src_b", "gt_ljspeech", "bonafide", "bonafide", "other/b-page", "LJ", 16000, ""),
        ("src_b", "freevc", "spoof", "vc", "other/b-page", "p226", 24000, ""),
    ]
    table = root / "labels.csv"
    root.mkdir(parents=True, exist_ok=True)
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(RS_HEADER)
        for i, (src, system, label, family, repo, spk, sr, subtype) in enumerate(rows):
            rel = f"audio/{src}/{system}/clip__{i:02d}.{'wav' if subtype else 'flac'}"
            seconds = 0.3 + 0.05 * i
            write_audio(root / rel, speechlike(sr, seconds, seed=i), sr, **({"subtype": subtype} if subtype else {}))
            w.writerow([rel, label, system, family, repo, f"{i:040x}", spk, sr, f"{seconds:.3f}"])
    return table


def test_realspeech_layout_is_detected_and_read(tmp_path):
    table = make_realspeech(tmp_path / "rs")
    assert detect_kind(table) == "realspeech"
    utts = read_labels(table)
    assert [u.utt_id for u in utts] == [
        "audio/src_a/gt_vctk/clip__00",
        "audio/src_a/hifigan/clip__01",
        "audio/src_a/vits/clip__02",
        "audio/src_b/freevc/clip__04",
        "audio/src_b/gt_ljspeech/clip__03",
    ]
    by = {u.system: u for u in utts}
    assert by["hifigan"].label == 1 and by["hifigan"].family == "vocoder" and by["hifigan"].collection == "org/a-demo"
    assert by["gt_ljspeech"].label == 0 and by["gt_ljspeech"].family == "bonafide" and by["gt_ljspeech"].speaker == "LJ"
    assert by["vits"].speaker == "" and Path(by["vits"].path) == (tmp_path / "rs" / "audio/src_a/vits/clip__02.wav")
    assert all(Path(u.path).is_file() for u in utts)


def test_realspeech_featurize_keeps_origin_and_no_format_metadata(tmp_path, runner):
    table = make_realspeech(tmp_path / "rs")
    out = tmp_path / "rs.h5"
    res = runner.invoke(cli, ["featurize", "--recipe", "lfcc", "--labels", str(table), "-o", str(out), "-j", "2"])
    assert res.exit_code == 0, res.output
    fs = load_features(out)
    assert fs.family == ["bonafide", "vocoder", "tts", "vc", "bonafide"]
    assert fs.collection == ["org/a-demo"] * 3 + ["other/b-page"] * 2
    assert fs.system == ["gt_vctk", "hifigan", "vits", "freevc", "gt_ljspeech"] and fs.y.tolist() == [0, 1, 1, 1, 0]
    with h5py.File(out, "r") as f:  # sample rate, format and the table's durations are not stored anywhere
        names: list[str] = []
        f.visit(names.append)
        assert not any("sample_rate" in n or "commit" in n for n in names)
        strings = {
            s
            for n in names
            if isinstance(f[n], h5py.Dataset) and f[n].dtype.kind == "O"
            for s in f[n].asstr()[...].tolist()
        }
    assert not strings & {"48000", "22050", "16000", "24000", "FLOAT", "PCM_16", "flac", "wav"}
    assert "sample_rate" not in (fs.recipe_config or {}).get("length_policy", "")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("audio/x/y.flac,spoof,vits,tts", r"labels.csv:3: malformed row: 4 fields, header has 9"),
        ("audio/x/y.flac,maybe,vits,tts,o/r,c,,16000,1.0", r"labels.csv:3: unknown label 'maybe'"),
        ("audio/x/y.flac,spoof,vits,bonafide,o/r,c,,16000,1.0", r"labels.csv:3: label 'spoof' disagrees with family"),
        ("audio/x/y.flac,bonafide,gt,,o/r,c,,16000,1.0", r"labels.csv:3: empty family"),
        (",spoof,vits,tts,o/r,c,,16000,1.0", r"labels.csv:3: empty path"),
        ('"audio/x/y.flac,spoof,vits,tts,o/r,c,,16000,1.0', r"labels.csv:3"),
    ],
)
def test_realspeech_malformed_lines_name_file_and_line(tmp_path, line, message):
    table = tmp_path / "labels.csv"
    good = "audio/a/b.flac,bonafide,gt,bonafide,o/r,c,spk,16000,1.0"
    table.write_text(f"{','.join(RS_HEADER)}\n{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(DfdetError, match=message):
        read_labels(table)


def test_generic_tables_fill_origin_columns_when_present(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("path,label,family,collection,augment\na.wav,spoof,vc,pageA,mp3\nb.wav,bonafide,,,\n", "utf-8")
    assert detect_kind(table) == "table"  # no system / source_repo: not the realspeech layout, no strict checks
    a, b = read_labels(table)
    assert (a.family, a.collection, a.augment) == ("vc", "pageA", "mp3") and (b.family, b.collection) == ("", "")


@pytest.mark.skipif(not REALSPEECH.is_file(), reason="shared realspeech corpus not present")
def test_shared_realspeech_labels_read_whole():
    utts = resolve_utterances([], labels=REALSPEECH)
    assert len(utts) == 1284 and sum(u.label == 0 for u in utts) == 423
    assert {u.family for u in utts} == {"bonafide", "tts", "vc", "vocoder"}
    assert len({u.collection for u in utts}) == 16 and all(u.system for u in utts)
    assert all(Path(u.path).is_file() for u in utts[:: len(utts) // 20])


class ToyFrames:
    """A frame recipe without `read_file`: featurize decodes, prepares and extracts it like a vector recipe."""

    name, sample_rate, frames = "toyframes", 16000, True
    feature_names = ["level", "slope"]
    groups = [FeatureGroup("toy", 0, 2)]

    def config(self) -> dict:
        return {"frame": 400}

    def prepare(self, y: np.ndarray, sr: int) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def extract(self, y: np.ndarray) -> np.ndarray:
        f = y[: len(y) // 400 * 400].reshape(-1, 400)
        return np.stack([np.abs(f).mean(axis=1), f[:, -1] - f[:, 0]], axis=1)


def test_a_frame_recipe_without_a_file_reader_goes_through_prepare_and_extract(tmp_path):
    y = speechlike(16000, 0.5, seed=11)
    p = write_audio(tmp_path / "a.wav", y, 16000, subtype="FLOAT")
    featurize([Utterance("a", str(p))], tmp_path / "t.h5", recipe=ToyFrames(), show_progress=False)
    with FrameReader(tmp_path / "t.h5") as rd:
        np.testing.assert_array_equal(rd[0], ToyFrames().extract(load_audio(p)[0]).astype(np.float32))
        assert rd.n_frames.tolist() == [20] and rd.frame_names == ["level", "slope"]


def test_too_short_input_error_in_strict_library_run(tmp_path):
    short = write_audio(tmp_path / "s.wav", np.full(319, 0.1), 16000, subtype="PCM_16")
    with pytest.raises(InputError, match=r"s.wav: audio too short for one 20 ms frame \(319 samples"):
        featurize([Utterance("s", str(short))], tmp_path / "o.h5", recipe="lfcc", show_progress=False)
    assert not (tmp_path / "o.h5").exists()
