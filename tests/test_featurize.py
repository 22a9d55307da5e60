"""The featurize engine with a tiny toy recipe (independent of seed154), plus seed154 invariances."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import FeatureGroup, register_recipe
from dfdet.featurize import featurize, init_worker, ordered_results, parse_shard, shard_utterances
from dfdet.inputs import Utterance
from dfdet.store import load_features, merge_stores
from tests.conftest import speechlike


@register_recipe("toy3")
class Toy3:
    """mean / std / max of the decoded signal: cheap, exact expectations, no resampling."""

    name = "toy3"
    sample_rate = 16000
    feature_names = ["mean", "std", "max"]
    groups = [FeatureGroup("stats", 0, 3)]

    def __init__(self, nan_when_silent: bool = False, interrupt_at: float | None = None) -> None:
        self.nan_when_silent = nan_when_silent
        self.interrupt_at = interrupt_at

    def config(self) -> dict:
        return {"stats": ["mean", "std", "max"], "nan_when_silent": self.nan_when_silent}

    def prepare(self, y: np.ndarray, sr: int) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def extract(self, y: np.ndarray) -> np.ndarray:
        if self.interrupt_at is not None and y[0] == self.interrupt_at:  # Ctrl-C while on this clip
            raise KeyboardInterrupt
        std = y.std()
        if self.nan_when_silent and std == 0:
            return np.array([y.mean(), np.nan, y.max()])
        return np.array([y.mean(), std, y.max()])


def write_corpus(root: Path, n: int = 6, seconds: float = 0.2) -> list[Utterance]:
    """n short 16-bit clips with labels/speakers/systems, returned in a shuffled order (the engine must sort)."""
    utts = []
    for i in range(n):
        p = root / f"spk{i % 2}" / f"utt{i:02d}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, speechlike(16000, seconds * (1 + i % 3), f0=100 + 10 * i, seed=i), 16000, subtype="PCM_16")
        utts.append(Utterance(f"spk{i % 2}/utt{i:02d}", str(p), i % 2, f"spk{i % 2}", "A01" if i % 2 else "", "lab"))
    rng = np.random.default_rng(0)
    return [utts[i] for i in rng.permutation(n)]


def test_rows_sorted_with_metadata_and_exact_values(tmp_path):
    utts = write_corpus(tmp_path / "c")
    res = featurize(utts, tmp_path / "f.h5", recipe=Toy3(), jobs=1, chunk_rows=4)
    assert (res.done, res.total, res.skipped) == (6, 6, 0)
    fs = load_features(tmp_path / "f.h5")
    order = sorted(utts, key=lambda u: u.utt_id)
    assert fs.utt_id == [u.utt_id for u in order]
    assert fs.path == [u.path for u in order] and fs.speaker == [u.speaker for u in order]
    assert fs.y.tolist() == [u.label for u in order] and fs.system == [u.system for u in order]
    assert fs.domain == ["lab"] * 6
    for i, u in enumerate(order):
        y, sr = sf.read(u.path, dtype="float64")
        np.testing.assert_array_equal(fs.X[i], np.array([y.mean(), y.std(), y.max()], dtype=np.float32))
        assert fs.duration[i] == len(y) / sr
    assert fs.recipe == "toy3" and fs.recipe_hash and fs.feature_names == ["mean", "std", "max"]
    assert fs.attrs["n_inputs"] == 6 and fs.failures == []


def test_jobs_do_not_change_the_output(tmp_path):
    utts = write_corpus(tmp_path / "c", n=9)
    featurize(utts, tmp_path / "j1.h5", recipe=Toy3(), jobs=1)
    featurize(utts, tmp_path / "j2.h5", recipe=Toy3(), jobs=2, chunk_rows=2)
    a, b = load_features(tmp_path / "j1.h5"), load_features(tmp_path / "j2.h5")
    assert a.X.tobytes() == b.X.tobytes() and a.utt_id == b.utt_id and a.path == b.path
    np.testing.assert_array_equal(a.duration, b.duration)


def test_spawn_workers_work_too(tmp_path):
    utts = write_corpus(tmp_path / "c", n=4)
    featurize(utts, tmp_path / "fork.h5", recipe=Toy3(), jobs=1)
    featurize(utts, tmp_path / "spawn.h5", recipe=Toy3(), jobs=2, start_method="spawn")
    assert load_features(tmp_path / "fork.h5").X.tobytes() == load_features(tmp_path / "spawn.h5").X.tobytes()


def test_shards_partition_and_merge_to_a_single_run(tmp_path):
    utts = write_corpus(tmp_path / "c", n=7)
    featurize(utts, tmp_path / "all.h5", recipe=Toy3(), jobs=1)
    r1 = featurize(utts, tmp_path / "s1.h5", recipe=Toy3(), shard=(1, 2))
    r2 = featurize(utts, tmp_path / "s2.h5", recipe=Toy3(), jobs=2, shard=(2, 2))
    assert (r1.total, r2.total) == (4, 3)
    s1, s2 = load_features(tmp_path / "s1.h5"), load_features(tmp_path / "s2.h5")
    assert set(s1.utt_id).isdisjoint(s2.utt_id) and s1.attrs["shard"] == "1/2"
    merge_stores([tmp_path / "s2.h5", tmp_path / "s1.h5"], tmp_path / "m.h5")
    full, merged = load_features(tmp_path / "all.h5"), load_features(tmp_path / "m.h5")
    assert merged.X.tobytes() == full.X.tobytes()
    for name in ("utt_id", "path", "speaker", "system", "domain"):
        assert getattr(merged, name) == getattr(full, name)
    assert merged.y.tolist() == full.y.tolist() and merged.recipe_hash == full.recipe_hash


def test_more_shards_than_inputs_gives_an_empty_store(tmp_path):
    utts = write_corpus(tmp_path / "c", n=2)
    res = featurize(utts, tmp_path / "s3.h5", recipe=Toy3(), shard=(3, 3))
    assert res.total == 0 and len(load_features(tmp_path / "s3.h5")) == 0


def test_shard_selection_is_every_nth_of_the_sorted_ids():
    utts = [Utterance(f"u{i}", f"/x/{i}.wav") for i in (5, 1, 4, 2, 3, 0)]
    assert [u.utt_id for u in shard_utterances(utts, (2, 3))] == ["u1", "u4"]
    assert parse_shard("3/8") == (3, 8)
    for bad in ("0/2", "3/2", "x", "1/2/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def _bad_inputs(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    bad = {"not_audio": root / "not_audio.wav", "missing": root / "missing.wav"}
    bad["not_audio"].write_text("this is not audio\n")
    sf.write(root / "empty.wav", np.zeros(0), 16000, subtype="PCM_16")
    bad["empty"] = root / "empty.wav"
    y = speechlike(16000, 0.1)
    y[10] = np.nan
    sf.write(root / "nan.wav", y, 16000, subtype="FLOAT")
    bad["nan"] = root / "nan.wav"
    return bad


@pytest.mark.parametrize("kind", ["not_audio", "missing", "empty", "nan"])
def test_strict_stops_at_a_bad_input_and_writes_nothing(tmp_path, kind):
    utts = write_corpus(tmp_path / "c", n=3)
    bad = _bad_inputs(tmp_path / "bad")[kind]
    utts.append(Utterance("zz_bad", str(bad)))
    out = tmp_path / "out" / "f.h5"
    with pytest.raises(InputError) as e:
        featurize(utts, out, recipe=Toy3(), jobs=2 if kind == "nan" else 1)
    assert e.value.path == str(bad) and "--skip-bad" in e.value.fix
    assert os.listdir(out.parent) == []


def test_skip_bad_records_every_bad_input(tmp_path, capsys):
    utts = write_corpus(tmp_path / "c", n=3)
    bad = _bad_inputs(tmp_path / "bad")
    utts += [Utterance(f"bad/{k}", str(p)) for k, p in bad.items()]
    res = featurize(utts, tmp_path / "f.h5", recipe=Toy3(), jobs=2, skip_bad=True)
    assert (res.done, res.total, res.skipped) == (3, 7, 4)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 4 and all(any(str(p) in w for w in warnings) for p in bad.values())
    fs = load_features(tmp_path / "f.h5")
    assert len(fs) == 3 and not any(u.startswith("bad/") for u in fs.utt_id)
    reasons = {f["utt_id"]: f["reason"] for f in fs.failures}
    assert sorted(reasons) == sorted(f"bad/{k}" for k in bad)
    assert "zero-length" in reasons["bad/empty"] and "NaN" in reasons["bad/nan"]
    assert "no such file" in reasons["bad/missing"] and "decodable" in reasons["bad/not_audio"]


def test_nan_features_are_bad_inputs(tmp_path):
    utts = write_corpus(tmp_path / "c", n=2)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(1600), 16000, subtype="PCM_16")
    utts.append(Utterance("silent", str(silent)))
    with pytest.raises(InputError, match="features contain NaN"):
        featurize(utts, tmp_path / "f.h5", recipe=Toy3(nan_when_silent=True))
    assert not (tmp_path / "f.h5").exists()
    res = featurize(utts, tmp_path / "f.h5", recipe=Toy3(nan_when_silent=True), skip_bad=True)
    assert res.skipped == 1 and load_features(tmp_path / "f.h5").failures[0]["utt_id"] == "silent"


def test_interrupt_mid_run_keeps_the_old_store_and_leaves_no_temp(tmp_path):
    utts = write_corpus(tmp_path / "c", n=6)
    out = tmp_path / "out" / "f.h5"
    featurize(utts[:2], out, recipe=Toy3())
    before = out.read_bytes()
    last = sorted(utts, key=lambda u: u.utt_id)[-1]
    first_sample = sf.read(last.path, dtype="float64")[0][0]
    with pytest.raises(KeyboardInterrupt):
        featurize(utts, out, recipe=Toy3(interrupt_at=first_sample), chunk_rows=2)
    assert out.read_bytes() == before and os.listdir(out.parent) == ["f.h5"]


def test_seed154_jobs_invariance(tmp_path):
    pytest.importorskip("dfdet.features.seed154")
    utts = write_corpus(tmp_path / "c", n=5, seconds=0.7)
    featurize(utts, tmp_path / "j1.h5", recipe="seed154", jobs=1)
    featurize(utts, tmp_path / "j2.h5", recipe="seed154", jobs=2)
    a, b = load_features(tmp_path / "j1.h5"), load_features(tmp_path / "j2.h5")
    assert a.X.shape == (5, 154) and a.X.tobytes() == b.X.tobytes()
    assert a.recipe == "seed154" and a.groups[-1].stop == 154 and len(a.feature_names) == 154


class TwoArgError(Exception):
    """Its constructor differs from its args, so it does not unpickle (like InputError before it got __reduce__)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def square_or_fail(x: int) -> int:
    if x == 3:
        raise TwoArgError("x", "3")
    return x * x


def test_ordered_results_keeps_order_and_turns_an_unpicklable_error_into_a_dfdet_error():
    """An error that would not unpickle in the parent arrives as a DfdetError naming it, in its turn."""
    items = [5, 1, 4, 2, 3, 0]
    with ordered_results(items[:4], square_or_fail, square_or_fail, init_worker, (Toy3(),), jobs=2) as it:
        assert list(it) == [(5, 25), (1, 1), (4, 16), (2, 4)]
    got = []
    with (
        pytest.raises(DfdetError, match="^TwoArgError: x/3$"),
        ordered_results(items, square_or_fail, square_or_fail, init_worker, (Toy3(),), jobs=2) as it,
    ):
        got.extend(it)
    assert got == [(5, 25), (1, 1), (4, 16), (2, 4)]  # everything before it, in order


def _stall(item: str) -> str:
    """Upper-cases `item`; `stall:PATH` writes this worker's pid to PATH and sleeps (until the test kills it)."""
    if item.startswith("stall:"):
        Path(item[6:]).write_text(str(os.getpid()))
        time.sleep(120)
    return item.upper()


def test_a_killed_worker_raises_worker_died_naming_its_item_with_the_finished_results(tmp_path):
    """The pool under a real SIGKILL of a worker: WorkerDied (exit 4) names what that worker held, carries what
    finished after the last result handed out, and leaves no worker behind."""
    import multiprocessing
    import signal
    import threading

    from dfdet.errors import WorkerDied

    marker = tmp_path / "pid"
    items = ["a", "b", f"stall:{marker}", "c", "d", "e"]
    killed: list[float] = []

    def kill_the_staller() -> None:
        while not marker.exists() or not marker.read_text():
            time.sleep(0.01)
        time.sleep(1.0)  # the other worker finishes what it was given meanwhile
        killed.append(time.monotonic())
        os.kill(int(marker.read_text()), signal.SIGKILL)

    threading.Thread(target=kill_the_staller, daemon=True).start()
    got = []
    with (
        pytest.raises(WorkerDied) as err,
        ordered_results(items, _stall, _stall, init_worker, (Toy3(),), jobs=2) as it,
    ):
        got.extend(it)
    assert time.monotonic() - killed[0] < 5
    assert got == [("a", "A"), ("b", "B")]
    assert err.value.path == f"stall:{marker}" and err.value.exit_code == 4
    assert str(err.value).startswith("a worker process was killed by SIGKILL (out of memory?) while processing stall:")
    # c went to the other worker, so it finished; d or e may have queued behind the stalled file, unfinished
    names = [x for x, _ in err.value.finished]
    assert names[0] == "c" and names == sorted(set(names)) and set(names) <= {"c", "d", "e"}
    assert all(value == x.upper() for x, value in err.value.finished)
    assert multiprocessing.active_children() == []


def test_resume_keeps_the_rows_present_and_equals_an_uninterrupted_run(tmp_path):
    utts = write_corpus(tmp_path / "c", n=9)
    bad = _bad_inputs(tmp_path / "bad")
    utts += [Utterance("spk0/utt03b", str(bad["not_audio"])), Utterance("spk1/utt06b", str(bad["empty"]))]
    full = tmp_path / "full.h5"
    featurize(utts, full, recipe=Toy3(), jobs=2, skip_bad=True, chunk_rows=2)
    part = tmp_path / "part.h5"
    order = sorted(utts, key=lambda u: u.utt_id)
    featurize(order[::3], part, recipe=Toy3(), skip_bad=True, chunk_rows=2)  # rows and a failure, with gaps
    assert len(load_features(part)) + len(load_features(part).failures) == 4
    res = featurize(utts, part, recipe=Toy3(), jobs=2, skip_bad=True, chunk_rows=2, resume=True)
    assert (res.resumed, res.done, res.total, res.skipped) == (4, 9, 11, 2)
    a, b = load_features(full), load_features(part)
    assert a.X.tobytes() == b.X.tobytes() and a.y.tolist() == b.y.tolist()
    for name in ("utt_id", "path", "speaker", "system", "domain", "failures"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.duration, b.duration)
    # nothing left to do: the same store again; no store yet: a plain run
    assert featurize(utts, part, recipe=Toy3(), skip_bad=True, resume=True).resumed == 11
    assert load_features(part).X.tobytes() == a.X.tobytes()
    fresh = featurize(utts, tmp_path / "new.h5", recipe=Toy3(), skip_bad=True, resume=True)
    assert fresh.resumed == 0 and load_features(tmp_path / "new.h5").X.tobytes() == a.X.tobytes()


def test_resume_refuses_another_recipe_shard_or_inputs_and_keeps_the_store(tmp_path):
    utts = write_corpus(tmp_path / "c", n=4)
    out = tmp_path / "f.h5"
    featurize(utts[:2], out, recipe=Toy3())
    before = out.read_bytes()
    with pytest.raises(DfdetError, match="not toy3") as e:
        featurize(utts, out, recipe=Toy3(nan_when_silent=True), resume=True)
    assert "drop --resume" in e.value.fix
    with pytest.raises(DfdetError, match="is shard all, not 1/2"):
        featurize(utts, out, recipe=Toy3(), shard=(1, 2), resume=True)
    stranger = sorted(u.utt_id for u in utts[:2])[0]
    with pytest.raises(DfdetError, match=f"1 utterance.s. not among the inputs .e.g. {stranger}"):
        featurize([u for u in utts if u.utt_id != stranger], out, recipe=Toy3(), resume=True)
    assert out.read_bytes() == before


def test_the_pool_takes_a_bounded_window_of_inputs():
    """Memory flat in corpus size: the pool takes at most WINDOW x jobs inputs ahead of the results handed out."""
    from dfdet.pool import WINDOW

    pulled: list[int] = []

    def inputs():
        for i in range(2000):
            pulled.append(i)
            yield i

    with ordered_results(inputs(), str, str, init_worker, (Toy3(),), jobs=2) as it:
        assert next(it) == (0, "0")
        assert len(pulled) <= WINDOW * 2 + 1
        rest = list(it)
    assert rest == [(i, str(i)) for i in range(1, 2000)]
