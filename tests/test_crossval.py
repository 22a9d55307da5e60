"""Grouped cross-validation (dfdet.crossval): fold-plan invariants (hypothesis), validation rows, the group
bootstrap, the fitter registry and a whole run on a tiny generated store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdet import crossval as cv
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import FeatureGroup
from dfdet.store import FeatureSet, write_features
from dfdet.training import make_config


def make_fs(rows: list[dict], dim: int = 6, seed: int = 0) -> FeatureSet:
    """A FeatureSet from row metadata dicts (label, system, speaker, collection, family, augment); spoof rows are
    shifted so a linear model can learn something."""
    rng = np.random.default_rng(seed)
    y = np.asarray([r["label"] for r in rows], dtype=np.int8)
    X = rng.normal(size=(len(rows), dim)).astype(np.float32) + 0.8 * y[:, None]
    cols = {c: [r.get(c, "") for r in rows] for c in ("system", "speaker", "collection", "family", "augment")}
    return FeatureSet(
        X=X,
        y=y,
        utt_id=[f"u{i:04d}" for i in range(len(rows))],
        feature_names=[f"f{j}" for j in range(dim)],
        groups=[FeatureGroup("all", 0, dim)],
        **cols,
    )


def corpus(n_systems: int = 6, n_bona_speakers: int = 8, per: int = 6, shared: bool = True, aug: bool = True) -> list:
    """Spoof systems over 3 collections and 3 families; bona fide speakers (some unknown); one speaker shared by a
    spoof system and bona fide; augmented copies of every 4th row."""
    rows = []
    fams = ("tts", "vc", "vocoder")
    for s in range(n_systems):
        for j in range(per):
            spk = "shared" if shared and s == 0 and j < 2 else f"tgt{s}"
            rows.append(
                dict(label=1, system=f"sys{s}", speaker=spk, collection=f"col{s % 3}", family=fams[s % 3], augment="")
            )
    for b in range(n_bona_speakers):
        spk = "shared" if shared and b == 0 else (f"spk{b}" if b < n_bona_speakers - 2 else "")
        for _ in range(per // 2):
            rows.append(dict(label=0, system="gt", speaker=spk, collection=f"col{b % 3}", family="bonafide"))
    if aug:
        rows += [{**r, "augment": "noise"} for r in rows[::4]]
    return rows


# ------------------------------------------------------------------------------------------------- hypothesis
row_strategy = st.fixed_dictionaries(
    {
        "label": st.sampled_from([0, 1]),
        "system": st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
        "speaker": st.sampled_from(["", "", "s1", "s2", "s3", "s4", "s5", "s6"]),
        "collection": st.sampled_from(["c1", "c2", "c3", "c4"]),
        "family": st.sampled_from(["tts", "vc", "vocoder"]),
        "augment": st.sampled_from(["", "", "", "noise"]),
    }
)


def check_plan(plan: cv.FoldPlan, fs: FeatureSet) -> None:
    tested = np.zeros(len(fs), dtype=int)
    for k in range(plan.n_folds):
        tr, te = plan.train_rows(k), plan.test_rows(k)
        tested[te] += 1
        assert not plan.is_augmented[te].any(), "augmented rows are never tested"
        assert not set(tr) & set(te)
        # No group and (unless speakers are ignored) no speaker on both sides.
        assert not {plan.groups[i] for i in tr} & {plan.groups[i] for i in te}
        if plan.speakers != "none":
            assert not ({fs.speaker[i] for i in tr} - {""}) & ({fs.speaker[i] for i in te} - {""})
        # Augmented rows train only with their group: never when their group is tested in this fold.
        test_groups = {plan.groups[i] for i in np.flatnonzero(plan.fold == k)}
        assert all(plan.groups[i] not in test_groups for i in tr[plan.is_augmented[tr]])
        if plan.augmented == "drop":
            assert not plan.is_augmented[tr].any()
    original = ~plan.is_augmented
    assert (tested[original] == 1).all(), "every original row is tested exactly once"
    assert (tested[~original] == 0).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row_strategy, min_size=4, max_size=60),
    group_by=st.sampled_from(["system", "source", "family"]),
    k=st.integers(2, 5),
    speakers=st.sampled_from(["merge", "purge", "none"]),
    augmented=st.sampled_from(["train", "drop"]),
    seed=st.integers(0, 10),
)
def test_kfold_invariants(rows, group_by, k, speakers, augmented, seed) -> None:
    fs = make_fs(rows)
    try:
        plan = cv.plan_folds(fs, group_by, k, seed, speakers, augmented)
    except DfdetError as e:
        assert "group(s)" in str(e)  # too few groups for k folds: the one refusal allowed
        return
    assert plan.mode == "kfold" and plan.n_folds == k
    check_plan(plan, fs)
    assert all(len(plan.test_rows(f)) for f in range(k)), "no empty test fold"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row_strategy, min_size=4, max_size=60),
    group_by=st.sampled_from(["system", "source", "family"]),
    speakers=st.sampled_from(["auto", "merge", "purge"]),
    seed=st.integers(0, 10),
)
def test_logo_invariants(rows, group_by, speakers, seed) -> None:
    fs = make_fs(rows)
    try:
        plan = cv.plan_folds(fs, group_by, "logo", seed, speakers)
    except DfdetError as e:
        assert "held-out group(s)" in str(e)
        return
    check_plan(plan, fs)
    col = cv.GROUP_COLUMNS[group_by]
    if plan.speakers == "purge":  # each key value is held out by itself
        held = [{g for g in plan.held_out(f) if g.startswith(col + "=")} for f in range(plan.n_folds)]
        assert all(len(h) == 1 for h in held)


def test_source_logo_holds_out_each_collection_with_its_own_bona_fide() -> None:
    fs = make_fs(corpus())
    plan = cv.plan_folds(fs, "source", "logo", seed=1)
    assert plan.speakers == "purge" and plan.n_folds == 3
    for f in range(3):
        te = plan.test_rows(f)
        cols = {fs.collection[i] for i in te}
        assert len(cols) == 1 and {0, 1} <= set(fs.y[te].tolist())
    # The speaker shared by sys0 (col0) and a bona fide speaker (col0) is purged from no other fold's test set, so
    # holding out col0 drops nothing else; but a fold that tests a speaker never trains on it.
    check_plan(plan, fs)


def test_merge_joins_groups_that_share_a_speaker_and_reports_the_count() -> None:
    fs = make_fs(corpus())
    merged = cv.plan_folds(fs, "system", 3, seed=0, speakers="merge")
    apart = cv.plan_folds(fs, "system", 3, seed=0, speakers="none")
    d1, d2 = merged.describe(), apart.describe()
    assert d1["n_groups"] == d2["n_groups"] and d1["n_units"] == d2["n_units"] - 1  # sys0 + speaker=shared
    unit_of = {g: merged.unit[i] for i, g in enumerate(merged.groups)}
    assert unit_of["system=sys0"] == unit_of["speaker=shared"]


def test_too_few_groups_is_a_clear_error() -> None:
    rows = [dict(label=1, system="a", speaker="x"), dict(label=0, speaker="x"), dict(label=1, system="b")]
    with pytest.raises(DfdetError, match=r"2 group\(s\) after merging speakers for 3 folds"):
        cv.plan_folds(make_fs(rows), "system", 3)
    with pytest.raises(UsageError, match="--folds"):
        cv.plan_folds(make_fs(rows), "system", "three")
    with pytest.raises(UsageError, match="unknown --group"):
        cv.plan_folds(make_fs(rows), "speaker", 2)


def test_plan_is_seeded() -> None:
    fs = make_fs(corpus(n_systems=12, n_bona_speakers=10, shared=False))
    a, b = cv.plan_folds(fs, "system", 4, seed=3), cv.plan_folds(fs, "system", 4, seed=3)
    assert np.array_equal(a.fold, b.fold)
    others = [cv.plan_folds(fs, "system", 4, seed=s).fold for s in range(4, 10)]
    assert any(not np.array_equal(a.fold, o) for o in others)


def test_kfold_balances_rows() -> None:
    fs = make_fs(corpus(n_systems=20, n_bona_speakers=20, shared=False, aug=False))
    plan = cv.plan_folds(fs, "system", 5, seed=0)
    sizes = [len(plan.test_rows(k)) for k in range(5)]
    assert max(sizes) - min(sizes) <= 6  # one system (6 rows) at most


# ------------------------------------------------------------------------------------------------- validation rows
def test_validation_rows_hold_out_whole_groups() -> None:
    fs = make_fs(corpus(n_systems=10, n_bona_speakers=10))
    train = np.arange(len(fs))
    fit, val = cv.validation_rows(fs, train, 0.25, seed=0)
    assert len(val) and not set(fit) & set(val) and set(fit) | set(val) <= set(train)
    groups = cv.row_groups(fs, "system")
    assert not {groups[i] for i in fit} & {groups[i] for i in val}
    assert not ({fs.speaker[i] for i in fit} - {""}) & ({fs.speaker[i] for i in val} - {""})
    assert not any(fs.augment[i] for i in val)
    assert set(fs.y[val].tolist()) == {0, 1}
    assert cv.validation_rows(fs, train, 0.0, seed=0)[1].size == 0


# ------------------------------------------------------------------------------------------------- bootstrap
def test_group_bootstrap_is_seeded_and_wider_than_a_row_bootstrap_for_correlated_groups() -> None:
    rng = np.random.default_rng(0)
    n_groups, per = 10, 20
    offsets = rng.normal(0, 1.5, size=2 * n_groups)  # each group shifts all of its scores together
    labels = np.repeat([0] * n_groups + [1] * n_groups, per)
    base = np.where(labels == 0, 1.0, 0.0)
    scores = base + np.repeat(offsets, per) + rng.normal(0, 0.3, size=labels.size)
    clusters = [f"g{i}" for i in np.repeat(np.arange(2 * n_groups), per)]
    a = cv.group_bootstrap_eer(scores, labels, clusters, n_boot=300, seed=1)
    assert a == cv.group_bootstrap_eer(scores, labels, clusters, n_boot=300, seed=1)
    per_row = cv.group_bootstrap_eer(scores, labels, [str(i) for i in range(labels.size)], n_boot=300, seed=1)
    from dfdet.metrics import eer

    e = eer(scores, labels)[0]
    assert a[0] <= e <= a[1] and per_row[0] <= e <= per_row[1]
    assert a[1] - a[0] > 1.5 * (per_row[1] - per_row[0])
    assert cv.group_bootstrap_eer(scores, labels, clusters, n_boot=0) is None


# ------------------------------------------------------------------------------------------------- fitters and runs
def test_input_kind_defaults_to_vector_and_follows_the_registry(monkeypatch) -> None:
    from dfdet import models

    assert cv.input_kind("linear") == "vector" and cv.fitter_for("cnn")[0] == "vector"
    monkeypatch.setattr(models, "MODEL_INPUT", {"linear": "toy"}, raising=False)
    assert cv.input_kind("linear") == "toy"
    with pytest.raises(UsageError, match="no cross-validation fitter"):
        cv.fitter_for("linear")
    with pytest.raises(UsageError, match="unknown model"):
        cv.input_kind("nope")


def test_a_registered_fitter_is_called_per_fold_with_its_rows(monkeypatch) -> None:
    from dfdet import models

    fs = make_fs(corpus())
    plan = cv.plan_folds(fs, "system", 3, seed=0)
    calls = []

    def toy(store_path, fs_, train_rows, test_rows, model, config, seed):
        calls.append((set(train_rows.tolist()), set(test_rows.tolist()), model, seed))
        return -fs_.X[test_rows, 0].astype(np.float64)  # any deterministic score

    monkeypatch.setattr(models, "MODEL_INPUT", {"linear": "toy"}, raising=False)
    monkeypatch.setitem(cv.FITTERS, "toy", toy)
    res = cv.crossval_model(fs, plan, "linear", make_config(seed=5), n_boot=50)
    assert res["fitter"] == "toy" and len(calls) == 3
    assert [c[1] for c in calls] == [set(plan.test_rows(k).tolist()) for k in range(3)]
    assert all(c[3] == 5 for c in calls)
    assert sorted(res["scores"]["utt_id"]) == sorted(fs.utt_id[i] for i in np.flatnonzero(~plan.is_augmented))


def test_run_crossval_is_deterministic_and_pools_every_original_row(tmp_path) -> None:
    fs = make_fs(corpus(n_systems=9, n_bona_speakers=9))
    store = tmp_path / "tiny.h5"
    write_features(store, fs)
    conf = cv.CrossvalConfig(group_by="system", folds=3, seed=7, n_boot=100)

    def run():
        return cv.run_crossval(store, ["linear"], lambda m: make_config(model=m, epochs=2, seed=7), conf)

    a, b = run(), run()
    strip = lambda d: [{k: v for k, v in m.items() if k != "seconds"} for m in d["models"]]  # noqa: E731
    for d in (a, b):
        for m in d["models"]:
            for f in m["folds"]:
                f.pop("seconds")
    assert strip(a) == strip(b)
    m = a["models"][0]
    assert a["kind"] == "crossval" and a["schema"] == cv.SCHEMA and a["plan"]["n_folds"] == 3
    assert len(m["scores"]["utt_id"]) == sum(1 for x in fs.augment if not x)
    assert m["pooled"]["n_bonafide"] + m["pooled"]["n_spoof"] == len(m["scores"]["utt_id"])
    assert 0 <= m["pooled"]["eer"] <= 1 and m["pooled"]["ci"][0] <= m["pooled"]["eer"] <= m["pooled"]["ci"][1]
    assert {f["family"] for f in m["per_family"]} == {"tts", "vc", "vocoder"}
    assert m["fold_eer"]["max"] >= m["fold_eer"]["mean"] >= m["fold_eer"]["min"]
    assert a["store"]["file_hash"] and a["provenance"]["dfdet_version"]


def test_asvspoof_like_corpus_needs_speakers_none() -> None:
    """Every system speaks with every speaker (ASVspoof): merging leaves one unit, purging leaves no training."""
    rows = [dict(label=1, system=f"A0{s}", speaker=f"LA_{p}") for s in range(1, 7) for p in range(4) for _ in range(2)]
    rows += [dict(label=0, speaker=f"LA_{p}") for p in range(4) for _ in range(3)]
    fs = make_fs(rows)
    with pytest.raises(DfdetError, match="--speakers none"):
        cv.plan_folds(fs, "system", 3)
    purge = cv.plan_folds(fs, "system", 3, speakers="purge")
    with pytest.raises(DfdetError, match="--speakers none"):
        cv.crossval_model(fs, purge, "linear", make_config(epochs=1), n_boot=0)
    plan = cv.plan_folds(fs, "system", 3, speakers="none")
    check_plan(plan, fs)


def test_bootstrap_clusters_are_systems_and_speakers_whatever_the_grouping() -> None:
    fs = make_fs(corpus(aug=False))
    for group_by in ("system", "source", "family"):
        plan = cv.plan_folds(fs, group_by, "logo")
        cl = cv.bootstrap_groups(fs, plan)
        for i in range(len(fs)):
            want = (
                f"system={fs.system[i]}"
                if fs.y[i] == 1
                else (f"speaker={fs.speaker[i]}" if fs.speaker[i] else f"collection={fs.collection[i]}")
            )
            assert cl[i] == want


def test_validation_falls_back_to_systems_when_speakers_join_everything() -> None:
    rows = [dict(label=1, system=f"A0{s}", speaker=f"LA_{p}") for s in range(1, 7) for p in range(4) for _ in range(2)]
    rows += [dict(label=0, speaker=f"LA_{p}") for p in range(4) for _ in range(3)]
    fs = make_fs(rows)
    fit, val = cv.validation_rows(fs, np.arange(len(fs)), 0.25, seed=0)
    assert len(val) and set(fs.y[val].tolist()) == {0, 1}
    groups = cv.row_groups(fs, "system")
    assert not {groups[i] for i in fit} & {groups[i] for i in val}


# ------------------------------------------------------------------------------------------------- --degraded
def _degraded_store(fs, kinds=("noise:snr=5", "mp3:kbps=16")):
    """Copies ID@augK of every original row, the features shifted by K (a stand-in for a degradation)."""
    from dataclasses import fields
    from dataclasses import replace as dc_replace

    orig = np.flatnonzero([not a for a in fs.augment])
    parts = []
    for k, spec in enumerate(kinds, start=1):
        sub = fs.subset(orig)
        parts.append(
            dc_replace(sub, X=sub.X + k, utt_id=[f"{u}@aug{k}" for u in sub.utt_id], augment=[spec] * len(sub))
        )
    n = len(parts[0])
    cols = {}
    for f in fields(parts[0]):
        v = getattr(parts[0], f.name)
        if f.name in ("X", "y"):
            cols[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        elif isinstance(v, list) and len(v) == n:
            cols[f.name] = sum((list(getattr(p, f.name)) for p in parts), [])
        elif isinstance(v, np.ndarray) and v.shape[:1] == (n,):
            cols[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
    return dc_replace(parts[0], **cols)


def test_degraded_copies_are_scored_by_the_fold_model_that_held_out_their_clip(monkeypatch, tmp_path) -> None:
    from dfdet import models

    fs = make_fs(corpus())
    dfs = _degraded_store(fs)
    plan = cv.plan_folds(fs, "system", 3, seed=0)
    deg = cv.degraded_rows("deg.h5", fs, dfs)
    assert len(deg.rows) == 2 * sum(1 for a in fs.augment if not a) and set(deg.kind) == {"noise", "mp3"}
    seen = []

    def toy(store_path, fs_, train_rows, test_rows, model, config, seed, extra=()):
        ((path, efs, rows),) = extra
        seen.append((set(train_rows.tolist()), rows))
        return np.concatenate([-fs_.X[test_rows, 0], -efs.X[rows, 0]]).astype(np.float64)

    monkeypatch.setattr(models, "MODEL_INPUT", {"linear": "toy"}, raising=False)
    monkeypatch.setitem(cv.FITTERS, "toy", toy)
    res = cv.crossval_model(fs, plan, "linear", make_config(seed=5), n_boot=20, degraded=deg)
    scored = np.concatenate([rows for _, rows in seen])
    assert sorted(scored.tolist()) == sorted(deg.rows.tolist())  # every copy once
    base = {u: i for i, u in enumerate(fs.utt_id)}
    for train, rows in seen:  # never by a model that trained on its clip
        assert not {base[dfs.utt_id[j].split("@aug")[0]] for j in rows} & train
    d = res["degraded"]
    assert [k["kind"] for k in d["per_kind"]] == ["mp3", "noise"]
    assert d["all"]["n_bonafide"] + d["all"]["n_spoof"] == len(deg.rows) == d["rows"]
    got = dict(zip(d["scores"]["utt_id"], d["scores"]["score"], strict=True))
    j = int(deg.rows[0])
    assert got[dfs.utt_id[j]] == pytest.approx(-float(dfs.X[j, 0]))


def test_degraded_store_of_another_recipe_or_other_clips_is_refused() -> None:
    from dataclasses import replace as dc_replace

    fs = make_fs(corpus())
    dfs = _degraded_store(fs)
    with pytest.raises(InputError, match="recipe"):
        cv.degraded_rows("deg.h5", fs, dc_replace(dfs, recipe_hash="other"))
    with pytest.raises(InputError, match="no augmented copy"):
        cv.degraded_rows("deg.h5", fs, dc_replace(dfs, utt_id=[f"x{u}" for u in dfs.utt_id]))


def test_cli_crossval_degraded_rows_with_real_training(runner, tmp_path) -> None:
    from dfdet.cli import cli

    fs = make_fs(corpus(n_systems=9, n_bona_speakers=9))
    write_features(tmp_path / "s.h5", fs)
    write_features(tmp_path / "d.h5", _degraded_store(fs))
    args = ["crossval", str(tmp_path / "s.h5"), "--model", "logreg", "--folds", "3", "--bootstrap", "20"]
    r = runner.invoke(cli, [*args, "--degraded", str(tmp_path / "d.h5"), "-o", str(tmp_path / "cv.json")])
    assert r.exit_code == 0, r.output
    kinds = [line.split("\t")[1] for line in r.stdout.splitlines() if "\tdegraded=" in line]
    assert kinds == ["degraded=all", "degraded=mp3", "degraded=noise"]
