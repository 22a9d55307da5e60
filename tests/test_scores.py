"""dfdet.scores: score-file round trips, ASVspoof formats, streaming writer, key joins, clear errors."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdet.errors import DfdetError
from dfdet.scores import (
    ScoreTable,
    ScoreWriter,
    attach_keys,
    format_p,
    format_score,
    read_keys,
    read_scores,
    read_threshold,
    score_to_p_spoof,
    write_scores,
)
from tests.conftest import DATA


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def _table() -> ScoreTable:
    return ScoreTable(
        ["b_2", "a/1", "c,3"],
        np.array([1.25, -0.1, 1e-17]),
        path=["/x/b 2.wav", "/x/a/1.flac", "/x/c,3.wav"],
        p_spoof=score_to_p_spoof([1.25, -0.1, 1e-17]),
        decision=["bonafide", "spoof", "bonafide"],
        label=[0, 1, -1],
        extra={"system": ["-", "A07", ""], "speaker": ["LA_0001", "LA_0002", "ü"]},
    )


def _written(values, fmt) -> np.ndarray:
    return np.array([float(fmt(v)) if fmt(v) else np.nan for v in values])


def _same(a: ScoreTable, b: ScoreTable) -> None:
    """`a` read back from a file written from `b`: scores to 9 significant digits, p_spoof to 6, all else exact."""
    assert a.utt_id == b.utt_id
    np.testing.assert_array_equal(a.score, _written(b.score, format_score))  # exactly the text written
    np.testing.assert_allclose(a.score, b.score, rtol=5e-9, atol=0)
    assert a.path == b.path
    assert (a.p_spoof is None) == (b.p_spoof is None)
    if a.p_spoof is not None:
        np.testing.assert_array_equal(a.p_spoof, _written(b.p_spoof, format_p))
        np.testing.assert_allclose(a.p_spoof, b.p_spoof, rtol=5e-6, atol=0)
    np.testing.assert_array_equal(a.decision, b.decision)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.extra == b.extra


# ----------------------------------------------------------------------------------------------- round trips
def test_round_trip_all_columns(tmp_path):
    t = _table()
    write_scores(tmp_path / "s.tsv", t)
    text = (tmp_path / "s.tsv").read_text()
    assert text.splitlines()[0] == "utt_id\tscore\tpath\tp_spoof\tdecision\tlabel\tsystem\tspeaker"
    assert [ln.split("\t")[0] for ln in text.splitlines()[1:]] == ["a/1", "b_2", "c,3"]  # sorted by utt_id
    back = read_scores(tmp_path / "s.tsv")
    _same(back, t.sorted())
    write_scores(tmp_path / "s2.tsv", back)
    assert (tmp_path / "s2.tsv").read_text() == text  # byte-identical second generation


def test_minimal_table_writes_only_known_columns(tmp_path):
    write_scores(tmp_path / "s.tsv", ScoreTable(["x", "y"], [0.5, -0.5]))
    assert (tmp_path / "s.tsv").read_text() == "utt_id\tscore\nx\t0.5\ny\t-0.5\n"
    assert not read_scores(tmp_path / "s.tsv").has_labels


_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=12)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(_ids, st.floats(allow_nan=False, width=64), st.sampled_from([-1, 0, 1]), _ids),
        min_size=1,
        max_size=20,
        unique_by=lambda r: r[0].strip(),
    )
)
def test_round_trip_property(tmp_path, rows):
    rows = [r for r in rows if r[0].strip() and r[3].strip() and r[0].strip()[0] != "#"]
    if not rows:
        return
    t = ScoreTable(
        [r[0].strip() for r in rows],
        np.array([r[1] for r in rows]),
        label=np.array([r[2] for r in rows]),
        extra={"domain": [r[3].strip() for r in rows]},
    )
    out = tmp_path / "p.tsv"
    write_scores(out, t)
    back = read_scores(out)
    _same(back, t.sorted())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=2, max_size=40))
def test_written_scores_keep_every_float32_value_rank_and_tie(values):
    """Model scores are float32 logits: 9 significant digits give each float32 back exactly, so a score file keeps
    their order and their ties (fewer digits would tie distinct scores and move the EER)."""
    x = np.array(values, dtype=np.float32).astype(np.float64)
    back = np.array([float(format_score(v)) for v in x])
    np.testing.assert_array_equal(back.astype(np.float32), x.astype(np.float32))
    np.testing.assert_array_equal(np.argsort(back, kind="stable"), np.argsort(x, kind="stable"))
    assert len(np.unique(back)) == len(np.unique(x))


def test_score_and_p_spoof_precision():
    """score: 9 significant digits; p_spoof: 6 (a display column; the score keeps the precision)."""
    x = float(np.float32(0.1))  # 0.10000000149011612 in float64: float32 noise past the 9th digit
    assert format_score(x) == "0.100000001" and format_score(-1234.5) == "-1234.5" and format_score(2.0) == "2.0"
    assert format_score(float("nan")) == "" and format_score(float("inf")) == "inf"
    assert format_p(score_to_p_spoof(x)) == "0.475021" and format_p(0.25) == "0.25"
    assert format_p(1 - 3e-9) == "1.0" and format_p(3e-9) == "3e-09"
    assert len(format_score(1 / 3)) == len("0.333333333") and len(format_p(1 / 3)) == len("0.333333")


def test_p_spoof_is_sigmoid_of_minus_score():
    p = score_to_p_spoof([0.0, math.log(3), -1000.0, 1000.0])
    np.testing.assert_allclose(p, [0.5, 0.25, 1.0, 0.0])
    t = ScoreTable.from_scores(["a", "b"], [2.0, -2.0], threshold=0.0)
    assert t.decision.tolist() == [0, 1]
    np.testing.assert_allclose(t.p_spoof, 1 / (1 + np.exp([2.0, -2.0])))


# ----------------------------------------------------------------------------------------------- ASVspoof formats
def test_asvspoof5_export_is_what_the_official_package_reads(tmp_path):
    write_scores(tmp_path / "cm.tsv", _table(), format="asvspoof")
    assert (tmp_path / "cm.tsv").read_text().splitlines() == [
        "filename\tcm-score",
        "a/1\t-0.1",
        "b_2\t1.25",
        "c,3\t1e-17",
    ]
    t = ScoreTable(["E_2", "E_1"], [0.2, 0.1], label=["spoof", "bonafide"])
    write_scores(tmp_path / "key.tsv", t, format="asvspoof-keys")
    assert (tmp_path / "key.tsv").read_text() == "filename\tcm-label\nE_1\tbonafide\nE_2\tspoof\n"
    with pytest.raises(DfdetError, match="no label"):
        write_scores(tmp_path / "k2.tsv", _table(), format="asvspoof-keys")
    assert not (tmp_path / "k2.tsv").exists()
    # the pair reads back: score file joined with key file by filename
    write_scores(tmp_path / "cm2.tsv", t, format="asvspoof")
    table, missing = attach_keys(read_scores(tmp_path / "cm2.tsv"), read_keys(tmp_path / "key.tsv"))
    assert missing == 0 and table.utt_id == ["E_1", "E_2"] and table.label.tolist() == [0, 1]


def test_read_asvspoof_headerless_formats(tmp_path):
    two = read_scores(_write(tmp_path / "a.txt", "LA_E_2 -1.5\nLA_E_1 3.25\n"))
    assert two.utt_id == ["LA_E_2", "LA_E_1"] and two.score.tolist() == [-1.5, 3.25] and not two.has_labels
    cm19 = read_scores(_write(tmp_path / "b.txt", "LA_E_1 - bonafide 2.5\nLA_E_2 A11 spoof -5.95\n"))
    assert cm19.label.tolist() == [0, 1] and cm19.extra["system"] == ["-", "A11"]
    a5 = read_scores(_write(tmp_path / "c.txt", "LA_0015 LA_E_1103494 6.96 bonafide\nLA_0007 LA_E_74 -2.3 spoof\n"))
    assert a5.utt_id == ["LA_E_1103494", "LA_E_74"] and a5.extra["speaker"] == ["LA_0015", "LA_0007"]
    a5h = read_scores(_write(tmp_path / "d.tsv", "filename\tcm-score\nE_1\t0.01\nE_2\t0.02\n"))
    assert a5h.utt_id == ["E_1", "E_2"]
    csvf = read_scores(_write(tmp_path / "e.csv", 'utt_id,score,label,domain\n"x,1",0.5,real,itw\ny,-1,fake,itw\n'))
    assert csvf.utt_id == ["x,1", "y"] and csvf.label.tolist() == [0, 1] and csvf.extra == {"domain": ["itw"] * 2}
    numeric = read_scores(_write(tmp_path / "f.tsv", "utt_id\tscore\tlabel\na\t1\t0\nb\t2\t1\n"), numeric_labels=True)
    assert numeric.label.tolist() == [0, 1]


def test_asvspoof2019_export_reads_back(tmp_path):
    t = ScoreTable(["b", "a"], [0.5, -2.0], label=[0, 1], extra={"system": ["-", "A01"]})
    write_scores(tmp_path / "s.txt", t, format="asvspoof2019")
    assert (tmp_path / "s.txt").read_text() == "a A01 spoof -2.0\nb - bonafide 0.5\n"
    _same(read_scores(tmp_path / "s.txt"), t.sorted())


def test_reference_vectors_read():
    t = read_scores(DATA / "metric-vectors" / "scores_a.tsv")
    assert len(t) == 10200 and int((t.label == 0).sum()) == 1200


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "score file is empty"),
        ("utt_id\tscore\n", "header but no rows"),
        ("utt_id\tscore\na\t0.1\n\t0.2\n", r"s\.tsv:3: missing utt_id"),
        ("utt_id\tscore\na\t0.1\nb\t0.2\na\t0.3\n", r"s\.tsv:4: duplicate utt_id 'a' \(first on line 2\)"),
        ("utt_id\tscore\tlabel\na\t0.1\tmaybe\n", r"s\.tsv:2: unknown label 'maybe'"),
        ("utt_id\tscore\tlabel\na\t0.1\t1\n", "numeric labels need --numeric-labels"),
        ("utt_id\tscore\na\tnan\n", r"s\.tsv:2: score is NaN"),
        ("utt_id\tscore\na\tabc\n", r"s\.tsv:2: score 'abc' is not a number"),
        ("utt_id\tscore\na\t0.1\textra\n", r"s\.tsv:2: 3 fields but the header has 2"),
        ("utt_id\tlabel\na\tspoof\n", "no score column"),
        ("LA_1 0.5\nLA_2\n", r"s\.tsv:2: 1 fields but line 1 has 2"),
        ("hello world again\n", "cannot tell the score file format"),
    ],
)
def test_bad_score_files_give_clear_errors(tmp_path, text, match):
    p = _write(tmp_path / "s.tsv", text)
    with pytest.raises(DfdetError, match=match) as info:
        read_scores(p)
    assert str(p) in str(info.value) or "s.tsv" in str(info.value)
    assert info.value.fix  # every error says how to fix it


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DfdetError, match="score file not found"):
        read_scores(tmp_path / "nope.tsv")
    with pytest.raises(DfdetError, match="is a directory"):
        read_scores(tmp_path)


def test_table_construction_refuses_duplicates_and_bad_lengths():
    with pytest.raises(DfdetError, match="duplicate utt_id 'a'"):
        ScoreTable(["a", "a"], [1.0, 2.0])
    with pytest.raises(DfdetError, match="2 scores for 3 utt_ids"):
        ScoreTable(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(DfdetError, match="unknown label"):
        ScoreTable(["a"], [1.0], label=["perhaps"])


# ----------------------------------------------------------------------------------------------- streaming writer
def test_score_writer_streams_header_then_rows_in_arrival_order(capsys):
    with ScoreWriter("-", ["utt_id", "score", "p_spoof", "decision"]) as w:
        w.write("z", 1.0, p_spoof=0.25, decision=0)
        first = capsys.readouterr().out  # already flushed: visible before the block ends
        w.write("a", -1.0, p_spoof=0.75, decision="spoof")
    assert first == "utt_id\tscore\tp_spoof\tdecision\nz\t1.0\t0.25\tbonafide\n"
    assert capsys.readouterr().out == "a\t-1.0\t0.75\tspoof\n"


def test_score_writer_is_atomic_and_strict(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(DfdetError, match="duplicate utt_id"), ScoreWriter(target) as w:
        w.write("a", 1.0)
        w.write("a", 2.0)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # no partial file, no temp file
    with pytest.raises(DfdetError, match="score is NaN"), ScoreWriter(target) as w:
        w.write("a", float("nan"))
    assert not target.exists()
    with ScoreWriter(target, ["utt_id", "score", "system"]) as w:
        w.write("b", 0.5, system="A01")
        w.write("a", 0.25)
    assert target.read_text() == "utt_id\tscore\tsystem\nb\t0.5\tA01\na\t0.25\t\n"


# ----------------------------------------------------------------------------------------------- keys and joins
def test_attach_keys_from_asvspoof2019_protocol_by_basename(tmp_path):
    proto = _write(
        tmp_path / "ASVspoof2019.LA.cm.eval.trl.txt",
        "LA_0039 LA_E_1 - - bonafide\nLA_0014 LA_E_2 - A09 spoof\nLA_0014 LA_E_3 - A10 spoof\n",
    )
    scores = ScoreTable(["flac/LA_E_1", "flac/LA_E_2", "flac/LA_E_4"], [1.0, -1.0, 0.0])
    joined, missing = attach_keys(scores, read_keys(proto))
    assert joined.label.tolist() == [0, 1, -1] and missing == 1
    assert joined.extra["system"] == ["", "A09", ""] and joined.extra["speaker"][0] == "LA_0039"


def test_attach_keys_from_2021_trial_metadata_and_conflicts(tmp_path):
    meta = _write(
        tmp_path / "trial_metadata.txt",
        "LA_0009 LA_E_9 alaw ita_tx A07 spoof notrim eval\nLA_0010 LA_E_8 none none - bonafide notrim eval\n",
    )
    keys = read_keys(meta)
    assert keys.utt_id == ["LA_E_9", "LA_E_8"] and keys.label.tolist() == [1, 0]
    assert keys.extra["system"] == ["A07", ""]
    with pytest.raises(DfdetError, match="says spoof"):
        attach_keys(ScoreTable(["LA_E_9"], [1.0], label=[0], source="s.tsv"), keys)
    with pytest.raises(DfdetError, match="no utt_id matches"):
        attach_keys(ScoreTable(["other"], [1.0], source="s.tsv"), keys)


# ----------------------------------------------------------------------------------------------- thresholds
def test_read_threshold_sources(tmp_path):
    assert read_threshold(_write(tmp_path / "c.json", json.dumps({"threshold": 0.7})))[0] == 0.7
    assert read_threshold(_write(tmp_path / "d.json", json.dumps({"threshold": {"value": -1.5}})))[0] == -1.5
    assert read_threshold(_write(tmp_path / "t.txt", "2.5\n"))[0] == 2.5
    # a labelled dev score file gives its EER threshold: bona .9 .4 .7, spoof .1 .5 .3 -> 0.4 (see test_metrics)
    dev = "utt_id\tscore\tlabel\n" + "".join(
        f"u{i}\t{s}\t{lab}\n"
        for i, (s, lab) in enumerate(zip([0.9, 0.4, 0.7, 0.1, 0.5, 0.3], ["bonafide"] * 3 + ["spoof"] * 3, strict=True))
    )
    thr, source = read_threshold(_write(tmp_path / "dev.tsv", dev))
    assert thr == pytest.approx(0.4) and "EER threshold" in source
    with pytest.raises(DfdetError, match="no numeric 'threshold'"):
        read_threshold(_write(tmp_path / "e.json", "{}"))


def test_read_scores_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("utt_id\tscore\na\t1\n"))
    t = read_scores("-")
    assert t.utt_id == ["a"] and t.source == "<stdin>"
