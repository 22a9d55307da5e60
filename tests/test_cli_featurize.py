"""`dfdet featurize`: input forms, corpus layouts, bad inputs, interruption, options."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dfdet.cli import cli
from dfdet.store import load_features
from tests.conftest import ROOT, speechlike
from tests.fixtures import make_asvspoof_la, make_bad_audio, make_itw, make_table_corpus
from tests.test_featurize import Toy3  # noqa: F401  (registers the "toy3" recipe)


def wav_dir(root: Path, n: int = 4, seconds: float = 0.3) -> Path:
    """Nested 16 kHz wavs (a duplicate basename, a unicode name) of different lengths."""
    names = ["a/x.wav", "b/x.wav", "b/c/ünï code.wav", "top.wav", "a/d/e.wav"][:n]
    for i, rel in enumerate(names):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, speechlike(16000, seconds * (1 + i), f0=110 + 9 * i, seed=i), 16000, subtype="PCM_16")
    return root


def assert_same_store(a, b) -> None:
    assert a.X.tobytes() == b.X.tobytes()
    assert a.utt_id == b.utt_id and a.path == b.path and a.y.tolist() == b.y.tolist()
    np.testing.assert_array_equal(a.duration, b.duration)
    assert a.recipe_hash == b.recipe_hash and a.feature_names == b.feature_names


def test_dir_and_find_pipeline_on_stdin_give_identical_stores(runner, tmp_path, monkeypatch):
    d = wav_dir(tmp_path / "corpus")
    r = runner.invoke(cli, ["featurize", str(d), "-o", str(tmp_path / "a.h5"), "-j", "1"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "done 4 of 4 (0 skipped)" in r.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = f"find {d} -name '*.wav' | {sys.executable} -m dfdet featurize - -o {tmp_path / 'b.h5'} -j 2"
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    a, b = load_features(tmp_path / "a.h5"), load_features(tmp_path / "b.h5")
    assert a.X.shape == (4, 154) and a.recipe == "seed154"
    assert a.utt_id == ["a/x", "b/c/ünï code", "b/x", "top"]
    assert_same_store(a, b)
    np.testing.assert_allclose(a.duration, [0.3, 0.9, 0.6, 1.2])
    # a list on stdin with relative paths (CliRunner input=) and a list file give the same store again
    listing = "\n".join(sorted(str(p.relative_to(tmp_path)) for p in d.rglob("*.wav")))
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli, ["featurize", "-", "-o", "c.h5", "-j", "1"], input=listing + "\n")
    assert r.exit_code == 0, r.stderr
    (tmp_path / "files.lst").write_text(listing + "\n")
    r = runner.invoke(cli, ["featurize", "files.lst", "-o", "d.h5", "-j", "1"])
    assert r.exit_code == 0, r.stderr
    assert_same_store(a, load_features(tmp_path / "c.h5"))
    assert_same_store(a, load_features(tmp_path / "d.h5"))


def _protocol_rows(proto: Path) -> dict[str, tuple[str, str, int]]:
    rows = {}
    for line in proto.read_text().splitlines():
        speaker, file_id, _, system, key = line.split()
        rows[file_id] = (speaker, "" if system == "-" else system, 0 if key == "bonafide" else 1)
    return rows


def test_asvspoof2019_la_layout(runner, tmp_path):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=3, seconds=0.4)
    expected = _protocol_rows(proto)
    r = runner.invoke(cli, ["featurize", "--labels", str(proto), "-o", str(tmp_path / "la.h5"), "-j", "1"])
    assert r.exit_code == 0, r.stderr
    fs = load_features(tmp_path / "la.h5")
    assert fs.utt_id == sorted(expected) and all(u.startswith("LA_T_") for u in fs.utt_id)
    assert [(s, a, int(y)) for s, a, y in zip(fs.speaker, fs.system, fs.y, strict=True)] == [
        expected[u] for u in fs.utt_id
    ]
    assert {s for s in fs.system if s} <= {f"A{k:02d}" for k in range(1, 7)} and fs.y.tolist().count(1) == 3
    assert all(p.endswith(f"ASVspoof2019_LA_train/flac/{u}.flac") for p, u in zip(fs.path, fs.utt_id, strict=True))
    # audio dir + protocol (joined by path) gives the same rows
    flac = tmp_path / "LA" / "ASVspoof2019_LA_train" / "flac"
    r = runner.invoke(cli, ["featurize", str(flac), "--labels", str(proto), "-o", str(tmp_path / "la2.h5"), "-j", "1"])
    assert r.exit_code == 0, r.stderr
    assert_same_store(fs, load_features(tmp_path / "la2.h5"))


def test_in_the_wild_layout(runner, tmp_path):
    meta = make_itw(tmp_path / "itw", n=4, seconds=0.4)
    r = runner.invoke(cli, ["featurize", "--labels", str(meta), "--label-kind", "itw", "-o", str(tmp_path / "w.h5")])
    assert r.exit_code == 0, r.stderr
    fs = load_features(tmp_path / "w.h5")
    expected = {}
    with open(meta, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            expected[str(tmp_path / "itw" / row["file"])] = (row["speaker"], 0 if row["label"] == "bona-fide" else 1)
    assert len(expected) == len(fs) == 4
    got = {p: (s, int(y)) for p, s, y in zip(fs.path, fs.speaker, fs.y, strict=True)}
    assert got == expected and "Zoë Kravitz" in fs.speaker


BAD_KINDS = ["not_audio", "zero_length", "nan", "inf", "missing", "truncated"]


def _corpus_with_bad(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    d = wav_dir(tmp_path / "corpus", n=2, seconds=0.1)
    bad = make_bad_audio(tmp_path / "corpus" / "bad")
    bad = {k: bad[k] for k in BAD_KINDS if k in bad}  # short and silent clips are decodable: not bad
    bad["missing"] = tmp_path / "corpus" / "bad" / "missing.wav"
    whole = tmp_path / "whole.flac"
    sf.write(whole, speechlike(16000, 0.5), 16000)
    bad["truncated"] = tmp_path / "corpus" / "bad" / "truncated.flac"  # unreadable: the decoder loses sync
    bad["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return d, bad


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_strict_bad_input_exits_1_without_output(runner, tmp_path, kind):
    d, bad = _corpus_with_bad(tmp_path)
    good = [str(p) for p in sorted(d.rglob("*.wav")) if "bad" not in p.parts]
    out = tmp_path / "out" / "f.h5"
    out.parent.mkdir()
    listing = "\n".join([*good, str(bad[kind])]) + "\n"
    r = runner.invoke(cli, ["featurize", "-", "--recipe", "toy3", "-o", str(out), "-j", "1"], input=listing)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("dfdet featurize: error: ") and str(bad[kind]) in lines[-1]
    assert "pass --skip-bad" in lines[-1] or kind == "missing"
    assert os.listdir(out.parent) == []


def test_skip_bad_exits_3_warns_once_each_and_info_lists_them(runner, tmp_path):
    d, bad = _corpus_with_bad(tmp_path)
    found = sorted(p for p in d.rglob("*") if p.suffix in (".wav", ".flac"))
    listing = "\n".join([*(str(p) for p in found), str(bad["missing"])]) + "\n"
    out = tmp_path / "f.h5"
    r = runner.invoke(
        cli, ["featurize", "-", "--recipe", "toy3", "--skip-bad", "-o", str(out), "-j", "2"], input=listing
    )
    assert r.exit_code == 3, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(BAD_KINDS) == 6
    for p in bad.values():
        assert sum(str(p) in w for w in warnings) == 1
    assert "done 4 of 10 (6 skipped)" in r.stderr and "6 input(s) skipped" in r.stderr
    fs = load_features(out)
    assert len(fs) == 4 and sorted(f["path"] for f in fs.failures) == sorted(str(p) for p in bad.values())
    r = runner.invoke(cli, ["info", str(out)])
    assert r.exit_code == 0
    assert re.search(r"^failures +6$", r.stdout, re.M)
    for f in fs.failures:
        assert f"  {f['path']}: {f['reason']}" in r.stdout


def launcher(name: str, extract_body: str) -> str:
    """A `dfdet` entry script with a one-feature recipe `name` whose extract() runs `extract_body` first."""
    body = textwrap.indent(textwrap.dedent(extract_body).strip(), " " * 8)
    return f"""
import os, signal, sys, time
import numpy as np
from dfdet.features import FeatureGroup, register_recipe

@register_recipe("{name}")
class Recipe:
    name = "{name}"
    sample_rate = 16000
    feature_names = ["mean"]
    groups = [FeatureGroup("m", 0, 1)]
    def config(self):
        return {{}}
    def prepare(self, y, sr):
        return y
    def extract(self, y):
{body}
        return np.array([y.mean()])

from dfdet.cli import main
sys.argv[0] = "dfdet"
main()
"""


LAUNCHER = launcher("slow1", "time.sleep(0.05)")


def launched_featurize(tmp_path: Path, script: str, recipe: str, levels: list[float]):
    """(command, output dir, env) of `featurize` through a launcher script over constant clips at `levels`."""
    src = tmp_path / "in"
    src.mkdir()
    for i, level in enumerate(levels):
        sf.write(src / f"u{i:03d}.wav", np.full(160, level), 16000, subtype="PCM_16")
    (tmp_path / "launch.py").write_text(textwrap.dedent(script))
    outdir = tmp_path / "out"
    outdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(tmp_path / "launch.py"), "featurize", str(src), "--recipe", recipe]
    return [*cmd, "-o", str(outdir / "f.h5")], outdir, env


@pytest.mark.parametrize(("sig", "jobs", "group"), [(signal.SIGTERM, 2, False), (signal.SIGINT, 1, False),
                                                    (signal.SIGTERM, 2, True)])  # fmt: skip
def test_killed_run_leaves_no_output_and_no_temp_file(tmp_path, sig, jobs, group):
    """A stop (Ctrl-C, kill, or `kill -TERM -PGID`, which also kills the workers: still an interrupt, not exit 4)."""
    # 200 clips: 5 s of work at -j 2, so the signal lands well before the end even on a loaded machine
    cmd, outdir, env = launched_featurize(tmp_path, LAUNCHER, "slow1", [0.01 * (i % 7) for i in range(200)])
    proc = subprocess.Popen(
        [*cmd, "-j", str(jobs), "--chunk-rows", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".tmp") for p in outdir.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.5)  # rows are being written
    assert proc.poll() is None
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "dfdet featurize: interrupted" in err
    assert list(outdir.iterdir()) == []


# the fifth clip sends a SIGTERM whose KeyboardInterrupt is lost, as in a weakref callback
SWALLOWING_LAUNCHER = launcher(
    "swallow1",
    """
    if y.mean() > 0.035:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            pass
    """,
)


def test_swallowed_sigterm_still_ends_the_run_interrupted_with_nothing_written(tmp_path):
    """CI once saw the handler's KeyboardInterrupt land in a weakref callback; the run then committed its output."""
    cmd, outdir, env = launched_featurize(tmp_path, SWALLOWING_LAUNCHER, "swallow1", [0.01 * i for i in range(8)])
    proc = subprocess.run([*cmd, "-j", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert "dfdet featurize: interrupted" in proc.stderr
    assert list(outdir.iterdir()) == []


def test_verbose_echoes_config_and_usage_errors(runner, tmp_path):
    d = wav_dir(tmp_path / "c", n=2, seconds=0.1)
    out = str(tmp_path / "f.h5")
    r = runner.invoke(cli, ["-v", "featurize", str(d), "--recipe", "toy3", "-o", out, "-j", "1", "--chunk-rows", "7"])
    assert r.exit_code == 0, r.stderr
    assert "recipe toy3" in r.stderr and "jobs 1" in r.stderr and "chunk rows 7" in r.stderr and out in r.stderr
    r = runner.invoke(cli, ["featurize", str(d), "--shard", "3/2", "-o", out])
    assert r.exit_code == 2 and "K <= N" in r.stderr
    r = runner.invoke(cli, ["featurize", str(d), "--recipe", "nope", "-o", out])
    assert r.exit_code == 2 and "unknown feature recipe 'nope'" in r.stderr
    r = runner.invoke(cli, ["featurize", "-o", out])
    assert r.exit_code == 1 and "no inputs" in r.stderr
    r = runner.invoke(cli, ["featurize", str(d), "--recipe", "toy3", "-o", "-"])
    assert r.exit_code == 2 and "cannot be written to stdout" in r.stderr and r.stdout == ""


def test_shard_option_records_shard(runner, tmp_path):
    d = wav_dir(tmp_path / "c", n=5, seconds=0.1)
    r = runner.invoke(cli, ["featurize", str(d), "--recipe", "toy3", "--shard", "2/2", "-o", str(tmp_path / "s.h5")])
    assert r.exit_code == 0, r.stderr
    fs = load_features(tmp_path / "s.h5")
    assert fs.attrs["shard"] == "2/2" and fs.attrs["n_inputs"] == 5 and len(fs) == 2
    assert "done 2 of 2 (0 skipped)" in r.stderr


def test_table_labels_carry_domain_and_system(runner, tmp_path):
    table = make_table_corpus(tmp_path / "t", n=4, seconds=0.1)
    with open(table, encoding="utf-8", newline="") as fh:
        rows = {str(tmp_path / "t" / r["path"]): r for r in csv.DictReader(fh)}
    r = runner.invoke(cli, ["featurize", "--labels", str(table), "--recipe", "toy3", "-o", str(tmp_path / "t.h5")])
    assert r.exit_code == 0, r.stderr
    fs = load_features(tmp_path / "t.h5")
    for p, dom, sysid, y in zip(fs.path, fs.domain, fs.system, fs.y, strict=True):
        assert (dom, sysid, int(y)) == (rows[p]["domain"], rows[p]["system"], int(rows[p]["label"] == "spoof"))
    r = runner.invoke(cli, ["info", str(tmp_path / "t.h5")])
    assert re.search(r"^domains +lab 2, wild 2$", r.stdout, re.M)


# ---- a worker that dies -------------------------------------------------------------------------------------------
needs_proc_fifo = pytest.mark.skipif(
    not (hasattr(os, "mkfifo") and Path("/proc/self/fd").is_dir()), reason="needs Linux /proc and named pipes"
)


def children(pid: int) -> list[int]:
    """Pids of the live child processes of `pid`, from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def stalled_worker(proc: subprocess.Popen, fifo: Path, timeout: float = 90) -> tuple[int, int]:
    """(pid of the worker of `proc` that holds `fifo`, write end of the fifo). The worker blocks opening the named
    pipe until this opens its write end, then blocks reading it: it holds that one file for as long as the test likes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until some process opens it for reading
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no worker opened the fifo"
            time.sleep(0.02)
    while True:
        for pid in children(proc.pid):
            with contextlib.suppress(OSError):
                if any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(fifo) for fd in os.listdir(f"/proc/{pid}/fd")):
                    return pid, wfd
        assert time.monotonic() < deadline, "no child of the run holds the fifo"
        time.sleep(0.02)


@needs_proc_fifo
def test_killed_worker_exits_4_naming_its_file_keeps_finished_rows_and_resume_equals_a_full_run(runner, tmp_path):
    """A worker SIGKILLed mid-run (as the OOM killer does) ends the run at once with exit 4 and one error line
    naming the file it held; the finished rows are committed, marked incomplete; --resume then gives the store an
    uninterrupted run gives."""
    d = tmp_path / "c"
    d.mkdir()
    clips = {f"u{i:02d}": speechlike(16000, 0.3 + 0.05 * (i % 4), f0=100 + 7 * i, seed=i) for i in range(16)}
    for name, y in clips.items():
        if name != "u06":
            sf.write(d / f"{name}.wav", y, 16000, subtype="PCM_16")
    fifo = d / "u06.wav"  # a file whose reading never ends, until the test kills its worker
    os.mkfifo(fifo)
    out = tmp_path / "out" / "f.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("DFDET_MP_START", None)
    cmd = [sys.executable, "-m", "dfdet", "featurize", str(d), "-o", str(out), "-j", "2", "--chunk-rows", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid, wfd = stalled_worker(proc, fifo)
        time.sleep(0.5)  # the other worker finishes the files after u06 within the window
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        stdout, err = proc.communicate(timeout=60)
        ended = time.monotonic() - killed
        os.close(wfd)
    finally:
        proc.kill()
    assert proc.returncode == 4, err
    assert ended < 10, f"the run took {ended:.1f} s to end after its worker died"
    assert stdout == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"dfdet featurize: error: a worker process was killed by SIGKILL (out of memory?) while "
                          f"processing {fifo} (") and "--resume" in err  # fmt: skip
    fs = load_features(out)
    assert fs.attrs["incomplete"]["reason"].endswith(f"while processing {fifo}")
    assert fs.utt_id == sorted(fs.utt_id) and "u06" not in fs.utt_id
    assert {f"u{i:02d}" for i in range(6)} <= set(fs.utt_id)  # every file before it, and those done after it
    assert f"{len(fs)} finished row(s) kept in {out}" in err
    kept = len(fs)
    # the file is readable now: --resume featurizes only what the store lacks
    fifo.unlink()
    sf.write(fifo, clips["u06"], 16000, subtype="PCM_16")
    p = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"resumed: {kept} of 16 input(s) were already in {out}" in p.stderr
    r = runner.invoke(cli, ["featurize", str(d), "-o", str(tmp_path / "full.h5"), "-j", "1"])
    assert r.exit_code == 0, r.stderr
    resumed, full = load_features(out), load_features(tmp_path / "full.h5")
    assert_same_store(resumed, full)
    for name in ("speaker", "system", "domain"):
        assert getattr(resumed, name) == getattr(full, name)
    assert resumed.failures == full.failures == [] and "incomplete" not in resumed.attrs
    assert sorted(os.listdir(out.parent)) == ["f.h5"]
