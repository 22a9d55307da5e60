"""`dfdet score`: stores, audio, a real shell pipeline, streaming stdin, bad inputs, formats, detectors (CliRunner)."""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dfdet.cli import cli
from dfdet.provenance import file_hash
from dfdet.scores import format_score, read_scores, read_sidecar, scores_agree, sidecar_path
from tests.conftest import ROOT
from tests.fixtures import bona_signal, write_audio
from tests.test_cli_featurize import needs_proc_fifo, stalled_worker
from tests.test_scoring import build_demo_trained, build_trained, make_calibration, make_ensemble

CORE = ["utt_id", "score", "path", "p_spoof", "decision"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return build_trained(tmp_path_factory)


@pytest.fixture(scope="module")
def store_table(trained):
    """The model's scores of the feature store, by path (what every audio route must reproduce)."""
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    table, _ = score_store(load_detector(trained.model), load_features(trained.store))
    return table


def by_path(table) -> dict[str, float]:
    return dict(zip(table.path, table.score, strict=True))


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("DFDET_MP_START", None)
    return env


def test_help_states_the_score_convention(runner):
    r = runner.invoke(cli, ["score", "--help"])
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())
    assert "BONA-FIDE-POSITIVE" in text and "higher = more likely genuine" in text
    assert "log-likelihood ratio (LLR) after calibration" in text and "NOT sorted by utt_id" in text
    assert "FILE.prov.json is written beside it" in text


def test_store_to_tsv(runner, trained, store_table, tmp_path):
    out = tmp_path / "s.tsv"
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "done 12 of 12 (0 skipped)" in r.stderr
    header = out.read_text().splitlines()[0].split("\t")
    assert header == [*CORE, "label", "speaker", "system", "domain", "duration_s", "scored_s"]
    t = read_scores(out)
    assert t.utt_id == sorted(t.utt_id) and len(t) == 12
    np.testing.assert_array_equal(t.score, [float(format_score(v)) for v in store_table.score])  # as written
    np.testing.assert_array_equal(t.score.astype(np.float32), store_table.score.astype(np.float32))  # float32 exact
    assert set(t.extra["scored_s"]) == {"0.500"}
    np.testing.assert_array_equal(t.label, store_table.label)
    assert set(t.column("decision")) <= {"bonafide", "spoof"}


def test_audio_dir_matches_the_store(runner, trained, store_table):
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.audio), "-j", "2"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split("\t") == [*CORE, "duration_s", "scored_s"]
    ids = [ln.split("\t")[0] for ln in lines[1:]]
    assert ids == sorted(ids) and ids[0] == "lab/utt000"
    want = by_path(store_table)
    got = {ln.split("\t")[2]: float(ln.split("\t")[1]) for ln in lines[1:]}
    assert got.keys() == want.keys()
    for p, s in got.items():
        assert scores_agree(s, want[p])  # audio vs store: the contract's tolerance


def test_labels_with_audio_and_asvspoof_format(runner, trained, store_table):
    r = runner.invoke(cli, ["score", str(trained.model), "--labels", str(trained.table), "--format", "asvspoof"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "filename\tcm-score" and len(lines) == 13
    ids = [ln.split("\t")[0] for ln in lines[1:]]
    assert ids == sorted(store_table.utt_id)  # ids from the label table, like the store's
    want = dict(zip(store_table.utt_id, store_table.score, strict=True))
    for ln in lines[1:]:
        u, s = ln.split("\t")
        assert scores_agree(float(s), want[u])


def _line_reader(stream) -> queue.Queue:
    """Lines of `stream` on a queue, read by a thread (select() would miss lines already in Python's buffer)."""
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def test_real_shell_pipeline_streams_before_stdin_closes(trained, store_table, tmp_path):
    """`find DIR -name '*.wav' | python -m dfdet score MODEL -` in a real shell gives the store's scores, and rows
    stream out while stdin is still open: `cat` keeps the pipe open after find's paths until the test closes it."""
    wavs = sorted(str(p) for p in trained.audio.rglob("*.wav"))
    extra = tmp_path / "late.wav"  # a copy of one clip, sent after find's paths
    shutil.copy(wavs[3], extra)
    model, audio = shlex.quote(str(trained.model)), shlex.quote(str(trained.audio))
    cmd = f"{{ find {audio} -name '*.wav'; cat; }} | {shlex.quote(sys.executable)} -m dfdet score {model} - -j 2"
    proc = subprocess.Popen(
        cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(), cwd=trained.root,
    )  # fmt: skip
    try:
        lines = _line_reader(proc.stdout)
        header = lines.get(timeout=90)  # interpreter start-up and imports on a loaded test machine
        assert header.rstrip("\n").split("\t") == [*CORE, "duration_s", "scored_s"]
        rows = [lines.get(timeout=30).rstrip("\n").split("\t") for _ in wavs]  # find's paths, stdin still open
        assert proc.poll() is None
        t0 = time.perf_counter()
        proc.stdin.write(f"{extra}\n")  # one more path: its row comes back while stdin stays open
        proc.stdin.flush()
        rows.append(lines.get(timeout=20).rstrip("\n").split("\t"))
        latency = time.perf_counter() - t0
        assert proc.poll() is None
        proc.stdin.close()
        assert lines.get(timeout=60) is None and proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    print(f"first row {latency * 1000:.0f} ms after its path arrived")
    want = by_path(store_table)
    assert sorted(r[2] for r in rows[:-1]) == wavs and rows[-1][2] == str(extra)
    assert scores_agree(float(rows[-1][1]), want[wavs[3]])
    for r in rows[:-1]:
        assert scores_agree(float(r[1]), want[r[2]])
        assert r[0] + ".wav" == os.path.relpath(r[2], trained.root)  # stream ids: relative to the working directory
    # find's order is kept (streamed rows are not sorted)
    assert [r[2] for r in rows[:-1]] == [ln.strip() for ln in subprocess.check_output(
        ["find", str(trained.audio), "-name", "*.wav"], text=True).splitlines()]  # fmt: skip


def test_wrong_recipe_refused(runner, trained, tmp_path):
    from dfdet.store import load_features, write_features

    fs = load_features(trained.store)
    fs.recipe, fs.recipe_hash = "seed154", "0000000000000000"
    bad = tmp_path / "old.h5"
    write_features(bad, fs)
    out = tmp_path / "s.tsv"
    r = runner.invoke(cli, ["score", str(trained.model), str(bad), "-o", str(out)])
    assert r.exit_code == 1 and r.stdout == "" and not out.exists()
    err = r.stderr.strip().splitlines()[-1]  # after the note on the model's training data
    assert err.startswith("dfdet score: error: ") and errors_of(r.stderr) == [err]
    assert "0000000000000000" in err and fs.attrs is not None and "--recipe seed154" in err


def test_skip_bad_writes_the_rest_and_exits_3(runner, trained, tmp_path):
    corrupt = tmp_path / "bad" / "corrupt.wav"
    corrupt.parent.mkdir()
    corrupt.write_text("not audio at all\n")
    out = tmp_path / "s.tsv"
    args = ["score", str(trained.model), str(trained.audio), str(corrupt), "-o", str(out)]
    r = runner.invoke(cli, args)
    assert r.exit_code == 1 and str(corrupt) in r.stderr and "--skip-bad" in r.stderr and not out.exists()
    assert not sidecar_path(out).exists()  # a failed run leaves neither the score file nor its sidecar
    r = runner.invoke(cli, [*args, "--skip-bad"])
    assert r.exit_code == 3, r.stderr
    assert f"warning: skipped {corrupt}" in r.stderr and "done 12 of 13 (1 skipped)" in r.stderr
    t = read_scores(out)
    assert len(t) == 12 and str(corrupt) not in t.path
    side = json.loads(sidecar_path(out).read_text())
    assert side["scores"]["rows"] == 12 and side["input"] == {"kind": "audio", "files": 13, "arguments": args[2:4]}
    assert [f["path"] for f in side["skipped"]] == [str(corrupt)] and side["skipped"][0]["reason"]
    # streaming stdin: the same policy
    text = f"{corrupt}\n" + "".join(f"{p}\n" for p in sorted(trained.audio.rglob("*.wav"))[:2])
    r = runner.invoke(cli, ["score", str(trained.model), "-", "--skip-bad", "-j", "1"], input=text)
    assert r.exit_code == 3 and f"skipped {corrupt}" in r.stderr
    assert len(r.stdout.splitlines()) == 3


def test_calibrated_detector_ensemble_and_members(runner, trained, tmp_path):
    from dfdet.artifact import load_model
    from dfdet.calibration import apply_calibration, load_calibration
    from dfdet.fusion import apply_ensemble, load_ensemble
    from dfdet.store import load_features

    fs = load_features(trained.store)
    cal = make_calibration(trained, tmp_path / "cal.json", detector=trained.model)
    ens = make_ensemble(trained, tmp_path / "ens.json")
    # expected: the model artifacts' own scores through the calibration / fusion modules' own apply functions
    raw = [load_model(p).scores(fs.X) for p in (trained.model, trained.model2)]
    expected = {
        cal: apply_calibration(load_calibration(cal), raw[0]),
        ens: apply_ensemble(load_ensemble(ens), np.column_stack(raw)),
    }
    for det in (cal, ens):
        r = runner.invoke(cli, ["score", str(det), str(trained.store), "--members"])
        assert r.exit_code == 0, r.stderr
        lines = r.stdout.splitlines()
        t = {ln.split("\t")[0]: ln.split("\t") for ln in lines[1:]}
        header = lines[0].split("\t")
        want, dec = expected[det]
        for i, u in enumerate(fs.utt_id):
            assert t[u][1] == format_score(want[i])
            assert t[u][header.index("decision")] == ("bonafide" if dec[i] == 0 else "spoof")
        members = [h for h in header if h.startswith("score_")]
        assert members == (["score_adamw"] if det == cal else ["score_adamw", "score_sgd"])
    # --calibration on top of a bare model = the calibrated detector
    bare = make_calibration(trained, tmp_path / "bare.json", detector=None)
    r1 = runner.invoke(cli, ["score", str(trained.model), str(trained.store), "--calibration", str(bare)])
    r2 = runner.invoke(cli, ["score", str(cal), str(trained.store)])
    assert r1.exit_code == 0 and r1.stdout == r2.stdout


def test_usage_errors(runner, trained, tmp_path):
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store), str(trained.audio)])
    assert r.exit_code == 2 and "ONE feature store" in r.stderr
    r = runner.invoke(cli, ["score", str(trained.model)])
    assert r.exit_code == 2 and "no inputs" in r.stderr
    r = runner.invoke(cli, ["score", str(trained.model), "-"], input="")
    assert r.exit_code == 1 and "no audio paths on stdin" in r.stderr


def test_score_file_gets_a_provenance_sidecar(runner, trained, tmp_path, monkeypatch):
    out = tmp_path / "s.tsv"
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    side_file = tmp_path / "s.tsv.prov.json"
    assert sidecar_path(out) == side_file and side_file.is_file()
    side = json.loads(side_file.read_text())
    assert side["schema_version"] == 1 and side["kind"] == "scores"
    assert side["detector"]["kind"] == "model" and side["detector"]["path"] == str(trained.model)
    assert side["detector"]["hash"] == file_hash(trained.model)
    assert [m["hash"] for m in side["detector"]["members"]] == [file_hash(trained.model)]
    rows = out.read_text().splitlines()[1:]
    assert side["scores"]["rows"] == len(rows) == len(read_scores(out)) == 12
    assert side["scores"]["hash"] == file_hash(out) and side["scores"]["format"] == "tsv"
    assert side["input"] == {"kind": "features", "path": str(trained.store), "hash": file_hash(trained.store)}
    assert side["calibration"] is None and side["skipped"] == []
    assert side["provenance"]["command"] == "score" and side["provenance"]["dfdet_version"]
    assert read_sidecar(out) == side

    # --calibration is recorded with its hash; the detector stays the model
    cal = make_calibration(trained, tmp_path / "bare.json", detector=None)
    out2 = tmp_path / "cal.tsv"
    args = ["score", str(trained.model), str(trained.store), "--calibration", str(cal), "--format", "asvspoof"]
    r = runner.invoke(cli, [*args, "-o", str(out2)])
    assert r.exit_code == 0, r.stderr
    side = json.loads(sidecar_path(out2).read_text())
    assert side["calibration"] == {"path": str(cal), "hash": file_hash(cal)}
    assert side["detector"]["hash"] == file_hash(trained.model) and side["detector"]["kind"] == "model"
    assert side["scores"]["format"] == "asvspoof" and side["scores"]["rows"] == 12 == len(read_scores(out2))

    # streaming stdin into a file: the row count is known only at the end, and is right
    wavs = sorted(trained.audio.rglob("*.wav"))[:3]
    out3 = tmp_path / "stream.tsv"
    r = runner.invoke(cli, ["score", str(trained.model), "-", "-j", "1", "-o", str(out3)],
                      input="".join(f"{p}\n" for p in wavs))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    side = json.loads(sidecar_path(out3).read_text())
    assert side["scores"]["rows"] == 3 == len(read_scores(out3)) and side["input"]["kind"] == "stdin"
    assert side["input"]["files"] == 3

    # stdout: no sidecar anywhere
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store)])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 13
    assert set(tmp_path.rglob("*")) == before

    # a rewrite that records no provenance drops the sidecar that described the old content
    from dfdet.scores import write_scores

    write_scores(out, read_scores(out).subset(np.arange(12) < 5))
    assert len(read_scores(out)) == 5 and not sidecar_path(out).exists()


def test_failed_sidecar_leaves_neither_file(runner, trained, tmp_path, monkeypatch):
    """The sidecar cannot be built, or cannot be committed after the score file: neither new file remains."""
    import dfdet.atomic
    import dfdet.scoring

    out = tmp_path / "s.tsv"

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(dfdet.scoring, "score_provenance", broken)
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store), "-o", str(out)])
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()

    real_replace = os.replace
    committed = []

    def fail_sidecar(src, dst):
        if str(dst).endswith(".prov.json"):
            raise OSError("disk full")
        committed.append(os.path.basename(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(dfdet.atomic.os, "replace", fail_sidecar)
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store), "-o", str(out)])
    monkeypatch.undo()
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert committed == ["s.tsv"]  # the score file did commit first ...
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # ... and was taken back; no temp files left


@needs_proc_fifo
def test_killed_worker_exits_4_naming_its_file_streamed_rows_kept_and_no_half_written_file(trained, tmp_path):
    """A worker SIGKILLed while stdin is still open ends the stream at once (exit 4, one error line naming the file
    it held), the rows already streamed stay on stdout; scoring a directory into -o FILE writes nothing."""
    wavs = sorted(str(p) for p in trained.audio.rglob("*.wav"))[:3]
    fifo = tmp_path / "stall.wav"  # read by its worker for ever, until the test kills that worker
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "dfdet", "score", str(trained.model), "-", "-j", "2"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), cwd=trained.root)  # fmt: skip
    try:
        proc.stdin.write("".join(f"{p}\n" for p in [*wavs, str(fifo)]))
        proc.stdin.flush()  # and stdin stays open
        lines = _line_reader(proc.stdout)
        rows = [lines.get(timeout=90) for _ in range(1 + len(wavs))]  # the header and the rows before the fifo
        pid, wfd = stalled_worker(proc, fifo)
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(30) == 4
        err = proc.stderr.read()
        os.close(wfd)
    finally:
        proc.kill()
        proc.wait()
    assert [r.split("\t")[2] for r in rows[1:]] == wavs and lines.get(timeout=5) is None  # nothing after them
    notes = [ln for ln in err.splitlines() if ln.startswith("note: detector ")]  # the training-domain note
    assert len(notes) == 1 and len(errors_of(err)) == 1 and len(err.strip().splitlines()) == 2, err
    assert errors_of(err)[0].startswith(
        f"dfdet score: error: a worker process was killed by SIGKILL (out of memory?) while processing {fifo} ("
    )
    # a directory scored into a file: the file appears whole or not at all
    d = tmp_path / "dir"
    d.mkdir()
    for p in wavs:
        shutil.copy(p, d)
    os.rename(fifo, d / "zz_stall.wav")
    out = tmp_path / "out" / "scores.tsv"
    cmd = [sys.executable, "-m", "dfdet", "score", str(trained.model), str(d), "-j", "2", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        pid, wfd = stalled_worker(proc, d / "zz_stall.wav")
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        os.close(wfd)
    finally:
        proc.kill()
    assert proc.returncode == 4 and f"while processing {d / 'zz_stall.wav'}" in err, err
    assert not out.parent.exists() or os.listdir(out.parent) == []


# --------------------------------------------------------------------------------------------------- honest verdicts
def clips(root, **seconds: float) -> dict[str, str]:
    """16-kHz speech-like clips `root/NAME.wav` of the given lengths."""
    out = {}
    for k, (name, sec) in enumerate(seconds.items()):
        out[name] = str(write_audio(root / f"{name}.wav", bona_signal(16000, sec, seed=k), 16000, subtype="PCM_16"))
    return out


def errors_of(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("dfdet score: error:")]


def test_too_short_clip_is_refused_naming_file_and_fix(runner, trained, tmp_path):
    c = clips(tmp_path / "in", ok=0.5, tiny=0.05)
    out = tmp_path / "s.tsv"
    r = runner.invoke(cli, ["score", str(trained.model), str(tmp_path / "in"), "-o", str(out)])
    assert r.exit_code == 1 and r.stdout == "" and not out.exists()
    assert errors_of(r.stderr) == [
        f"dfdet score: error: {c['tiny']}: too short to judge (0.05 s of audio; a verdict needs at least 0.25 s) "
        "(use clips of at least 0.25 s, or pass --skip-bad to score the rest)"
    ]
    # streamed on stdin: the same line
    r = runner.invoke(cli, ["score", str(trained.model), "-", "-j", "1"], input=f"{c['tiny']}\n")
    assert r.exit_code == 1 and errors_of(r.stderr)[0].startswith(f"dfdet score: error: {c['tiny']}: too short")
    # --min-seconds lowers the bar for whoever wants a verdict on padding anyway
    r = runner.invoke(cli, ["score", str(trained.model), c["tiny"], "--min-seconds", "0"])
    assert r.exit_code == 0 and r.stdout.splitlines()[1].split("\t")[-2:] == ["0.050", "0.050"]


def test_too_short_clip_is_flagged_under_skip_bad(runner, trained, tmp_path):
    c = clips(tmp_path / "in", ok=0.5, tiny=0.05)
    out = tmp_path / "s.tsv"
    r = runner.invoke(cli, ["score", str(trained.model), str(tmp_path / "in"), "--skip-bad", "-o", str(out)])
    assert r.exit_code == 3, r.stderr
    reason = "too short to judge (0.05 s of audio; a verdict needs at least 0.25 s)"
    assert f"warning: skipped {c['tiny']}: {reason}" in r.stderr.splitlines()
    assert "done 1 of 2 (1 skipped)" in r.stderr
    assert read_scores(out).utt_id == ["ok"]
    side = json.loads(sidecar_path(out).read_text())
    assert side["skipped"] == [{"utt_id": "tiny", "path": c["tiny"], "reason": reason}]
    text = f"{c['tiny']}\n{c['ok']}\n"
    r = runner.invoke(cli, ["score", str(trained.model), "-", "--skip-bad", "-j", "1"], input=text)
    assert r.exit_code == 3 and f"warning: skipped {c['tiny']}: {reason}" in r.stderr
    assert [ln.split("\t")[2] for ln in r.stdout.splitlines()[1:]] == [c["ok"]]


@pytest.mark.parametrize("stream", [False, True])
def test_rows_scored_on_a_crop_say_so(runner, trained, tmp_path, stream):
    """seed154 looks at the first 2 s: a 5-s clip gets scored_s 2.000 < duration_s and one note per run; a 1.5-s
    clip is scored whole and no note is printed."""
    c = clips(tmp_path / "in", long=5.0, mid=1.5)
    note = (
        "note: 1 of 2 files was longer than 2 s; only their first 2 s were scored (the recipe's fixed window; see the "
        "scored_s column)"
    )

    def run(*paths: str):
        if stream:
            args, text = ["score", str(trained.model), "-", "-j", "1"], "".join(f"{p}\n" for p in paths)
        else:
            args, text = ["score", str(trained.model), *paths], None
        r = runner.invoke(cli, args, input=text)
        assert r.exit_code == 0, r.stderr
        lines = r.stdout.splitlines()
        header = lines[0].split("\t")
        assert header == [*CORE, "duration_s", "scored_s"]
        rows = {ln.split("\t")[2]: ln.split("\t") for ln in lines[1:]}
        return {p: (row[5], row[6]) for p, row in rows.items()}, r.stderr

    got, err = run(c["long"], c["mid"])
    assert got == {c["long"]: ("5.000", "2.000"), c["mid"]: ("1.500", "1.500")}
    assert err.splitlines().count(note) == 1
    got, err = run(c["mid"])
    assert got == {c["mid"]: ("1.500", "1.500")} and "were scored" not in err


def test_training_domain_on_stderr_once(runner, trained, tmp_path, tmp_path_factory):
    demo = build_demo_trained(tmp_path_factory)
    c = clips(tmp_path / "in", a=0.5, b=0.6)
    r = runner.invoke(cli, ["score", str(demo.model), str(tmp_path / "in")])
    assert r.exit_code == 0, r.stderr
    warning = (
        f"warning: detector {demo.model} was trained on the synthetic demo corpus (lab; store lab.h5); its verdicts "
        "on real speech mean nothing"
    )
    assert r.stderr.splitlines().count(warning) == 1
    r = runner.invoke(cli, ["-q", "score", str(demo.model), "-", "-j", "1"], input=f"{c['a']}\n{c['b']}\n")
    assert r.exit_code == 0 and r.stderr.splitlines() == [warning]  # a warning: -q keeps it
    # a model trained on an unmarked corpus: its store and domains, as a note
    r = runner.invoke(cli, ["score", str(trained.model), str(trained.store)])
    assert r.exit_code == 0 and "synthetic" not in r.stderr
    assert f"note: detector {trained.model} was trained on feats.h5 (domain lab, wild)" in r.stderr.splitlines()
