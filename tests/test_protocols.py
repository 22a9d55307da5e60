"""dfdet.protocols: ASVspoof 2019 LA protocols, In-the-Wild meta.csv, generic tables, auto-detection, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dfdet.errors import DfdetError, UsageError
from dfdet.protocols import detect_kind, read_labels
from tests.fixtures import ASVSPOOF5_CODECS, make_asvspoof5, make_asvspoof_la, make_itw, make_table_corpus


def _protocol_rows(proto: Path) -> dict[str, tuple[str, str, int]]:
    """Expected (speaker, system, label) per file id, read with plain split()."""
    out = {}
    for line in proto.read_text().splitlines():
        spk, fid, _, system, key = line.split()
        out[fid] = (spk, "" if system == "-" else system, 0 if key == "bonafide" else 1)
    return out


def test_asvspoof_la_train(tmp_path):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=6)
    assert detect_kind(proto) == "asvspoof2019"
    utts = read_labels(proto)
    expected = _protocol_rows(proto)
    assert [u.utt_id for u in utts] == sorted(expected)
    assert {u.utt_id: (u.speaker, u.system, u.label) for u in utts} == expected
    assert sorted({u.system for u in utts if u.label == 1}) == ["A01", "A02", "A03", "A04", "A05", "A06"]
    assert {u.system for u in utts if u.label == 0} == {""}
    assert {u.speaker for u in utts} == {"LA_0079", "LA_0080", "LA_0081", "LA_0082"}
    flac = tmp_path / "LA" / "ASVspoof2019_LA_train" / "flac"
    assert all(u.path == str(flac / f"{u.utt_id}.flac") and Path(u.path).exists() for u in utts)
    assert all(u.utt_id.startswith("LA_T_") for u in utts)


@pytest.mark.parametrize(("partition", "prefix"), [("dev", "LA_D_"), ("eval", "LA_E_")])
def test_asvspoof_partitions(tmp_path, partition, prefix):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=2, partition=partition)
    utts = read_labels(proto)
    assert all(u.utt_id.startswith(prefix) for u in utts)
    assert all(Path(u.path).parent == tmp_path / "LA" / f"ASVspoof2019_LA_{partition}" / "flac" for u in utts)
    assert all(Path(u.path).exists() for u in utts)
    if partition == "eval":
        assert {u.system for u in utts if u.label == 1} == {"A07", "A08"}


def test_asvspoof_audio_root_and_renamed_protocol(tmp_path):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=2)
    moved = tmp_path / "elsewhere" / "my_protocol.txt"  # no partition in the name: taken from LA_T_ ids
    moved.parent.mkdir()
    shutil.copy(proto, moved)
    flac = tmp_path / "LA" / "ASVspoof2019_LA_train" / "flac"
    for root in (tmp_path / "LA", flac.parent, flac):
        utts = read_labels(moved, audio_root=root)
        assert all(u.path == str(flac / f"{u.utt_id}.flac") for u in utts), root


def test_asvspoof_does_not_need_audio(tmp_path):
    proto = tmp_path / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    proto.parent.mkdir(parents=True)
    proto.write_text("LA_0069 LA_D_1047731 - - bonafide\nLA_0069 LA_D_1105538 - A03 spoof\n")
    utts = read_labels(proto)
    assert [u.path for u in utts] == [
        str(tmp_path / "LA" / "ASVspoof2019_LA_dev" / "flac" / f"{i}.flac") for i in ("LA_D_1047731", "LA_D_1105538")
    ]
    assert [(u.label, u.system) for u in utts] == [(0, ""), (1, "A03")]


def test_asvspoof_errors_name_the_line(tmp_path):
    proto = tmp_path / "ASVspoof2019.LA.cm.train.trn.txt"
    proto.write_text("LA_0079 LA_T_1 - - bonafide\nLA_0079 LA_T_2 - A01\n")
    with pytest.raises(DfdetError, match=r"trn.txt:2: expected 5 fields"):
        read_labels(proto)
    proto.write_text("LA_0079 LA_T_1 - - bonafide\n\nLA_0079 LA_T_2 - A01 maybe\n")
    with pytest.raises(DfdetError, match=r"trn.txt:3: unknown label 'maybe'"):
        read_labels(proto)
    proto.write_text("LA_0079 LA_T_1 - - bonafide\nLA_0079 LA_T_2 - A01 spoof\nLA_0080 LA_T_1 - A02 spoof\n")
    with pytest.raises(DfdetError, match=r"trn.txt:3: duplicate utt_id 'LA_T_1' \(first on line 1\)") as info:
        read_labels(proto)
    assert info.value.fix


def test_itw(tmp_path):
    meta = make_itw(tmp_path / "itw", n=6)
    assert detect_kind(meta) == "itw"
    utts = read_labels(meta)
    assert [u.utt_id for u in utts] == ["0", "1", "2", "3", "4", "5"]
    assert [u.label for u in utts] == [0, 1, 0, 1, 0, 1]
    assert utts[3].speaker == "Lastname, Firstname" and utts[2].speaker == "Zoë Kravitz"
    assert all(u.system == "" for u in utts)
    assert all(u.path == str(tmp_path / "itw" / f"{u.utt_id}.wav") and Path(u.path).exists() for u in utts)
    # the same file read as a generic table gives the same utterances
    assert read_labels(meta, kind="table") == utts


def test_itw_unknown_label_and_duplicates(tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_text("file,speaker,label\n0.wav,A,bona-fide\n1.wav,B,deep fake\n")
    with pytest.raises(DfdetError, match=r"meta.csv:3: unknown label 'deep fake'"):
        read_labels(meta)
    meta.write_text("file,speaker,label\n0.wav,A,bona-fide\n0.wav,B,spoof\n")
    with pytest.raises(DfdetError, match=r"meta.csv:3: duplicate utt_id '0' \(first on line 2\)"):
        read_labels(meta)


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_table_corpus(tmp_path, delimiter):
    table = make_table_corpus(tmp_path / "t", n=4, delimiter=delimiter)
    assert detect_kind(table) == "table"
    utts = read_labels(table)
    assert [u.utt_id for u in utts] == [
        "audio/lab/utt000",
        "audio/lab/utt001",
        "audio/wild/utt002",
        "audio/wild/utt003",
    ]
    assert [(u.label, u.speaker, u.system, u.domain) for u in utts] == [
        (0, "spk0", "", "lab"),
        (1, "spk1", "voc1", "lab"),
        (0, "spk0", "", "wild"),
        (1, "spk1", "voc1", "wild"),
    ]
    assert all(Path(u.path).exists() for u in utts)


def test_table_synonyms_and_optional_columns(tmp_path):
    table = tmp_path / "sub" / "labels.csv"
    table.parent.mkdir()
    table.write_text(
        "File,Key,Attack,ID\n"
        "x/a.wav,real,,utt-a\n"
        "x/b.flac,FAKE,tts1,\n"
        "c.wav,bona fide,,\n"
        "d.wav,,,\n"  # no label: unknown
    )
    utts = {u.utt_id: u for u in read_labels(table)}
    assert sorted(utts) == ["c", "d", "utt-a", "x/b"]
    assert (utts["utt-a"].label, utts["x/b"].label, utts["c"].label, utts["d"].label) == (0, 1, 0, -1)
    assert utts["x/b"].system == "tts1"
    assert utts["utt-a"].path == str(tmp_path / "sub" / "x" / "a.wav")


def test_table_absolute_paths_outside_its_dir(tmp_path):
    table = tmp_path / "tables" / "labels.tsv"
    table.parent.mkdir()
    a, b = tmp_path / "data" / "s1" / "a.wav", tmp_path / "data" / "s2" / "a.wav"
    table.write_text(f"path\tlabel\n{a}\tspoof\n{b}\tbonafide\n")
    utts = read_labels(table)
    assert [(u.utt_id, u.path, u.label) for u in utts] == [("s1/a", str(a), 1), ("s2/a", str(b), 0)]


def test_numeric_labels_need_the_flag(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("path,label\na.wav,0\nb.wav,1\n")
    with pytest.raises(DfdetError, match=r"labels.csv:2: unknown label '0'") as info:
        read_labels(table)
    assert "--numeric-labels" in info.value.fix
    assert [u.label for u in read_labels(table, numeric_labels=True)] == [0, 1]


def test_table_errors(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("path,label,speaker\na.wav,spoof,s1\nb.wav,spoof\n")
    with pytest.raises(DfdetError, match=r"labels.csv:3: malformed row: 2 fields, header has 3"):
        read_labels(table)
    table.write_text("path,label\na.wav,spoof\n\nb.wav,spoof\na.wav,bonafide\n")
    with pytest.raises(DfdetError, match=r"labels.csv:5: duplicate utt_id 'a' \(first on line 2\)"):
        read_labels(table)
    table.write_text("path,label\n")
    with pytest.raises(DfdetError, match="no utterances"):
        read_labels(table)
    table.write_text("name,score\na.wav,1.5\n")
    with pytest.raises(DfdetError, match="cannot tell the label file format"):
        read_labels(table)
    with pytest.raises(DfdetError, match="no path column"):
        read_labels(table, kind="table")
    table.write_text("path,score\na.wav,1.5\n")
    with pytest.raises(DfdetError, match="no label column in header path,score"):
        read_labels(table, kind="table")


def test_label_file_errors(tmp_path):
    with pytest.raises(DfdetError, match="label file not found"):
        read_labels(tmp_path / "nope.csv")
    with pytest.raises(DfdetError, match="is a directory"):
        read_labels(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DfdetError, match="label file is empty"):
        read_labels(empty)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("path,label\nZo\xeb.wav,spoof\n".encode("latin-1"))
    with pytest.raises(DfdetError, match="not UTF-8"):
        read_labels(latin1)
    with pytest.raises(UsageError, match="unknown label kind"):
        read_labels(empty, kind="asvspoof2021")


def test_forced_kind_and_bom(tmp_path):
    table = tmp_path / "meta.csv"
    table.write_bytes("\ufefffile,speaker,label\nclip.wav,S,spoof\n".encode())
    assert detect_kind(table) == "itw"
    assert [(u.utt_id, u.speaker, u.label) for u in read_labels(table, kind="itw")] == [("clip", "S", 1)]
    with pytest.raises(DfdetError, match="expected 5 fields"):
        read_labels(table, kind="asvspoof2019")


def test_windows_line_endings(tmp_path):
    proto = tmp_path / "ASVspoof2019.LA.cm.dev.trl.txt"
    proto.write_bytes(b"LA_0069 LA_D_1 - - bonafide\r\nLA_0069 LA_D_2 - A02 spoof\r\n")
    assert [(u.utt_id, u.system, u.label) for u in read_labels(proto)] == [("LA_D_1", "", 0), ("LA_D_2", "A02", 1)]
    table = tmp_path / "t.csv"
    table.write_bytes(b"path,label\r\na.wav,fake\r\n\r\nb.wav,real\r\n")
    assert [(u.utt_id, u.label) for u in read_labels(table)] == [("a", 1), ("b", 0)]


# ----------------------------------------------------------------------------------------------- ASVspoof 5
def _asvspoof5_rows(proto: Path) -> dict[str, dict[str, str | int]]:
    """Expected fields per file id, read with plain split() (ten-column form)."""
    out = {}
    for line in proto.read_text().splitlines():
        spk, fid, gender, codec, q, _seed, tag, attack, key, _tmp = line.split()
        out[fid] = {
            "speaker": spk,
            "gender": gender,
            "codec": "" if codec == "-" else codec,
            "codec_q": "" if q == "-" else q,
            "attack": "" if tag == "-" else tag,
            "system": "" if attack == "bonafide" else attack,
            "label": 0 if key == "bonafide" else 1,
        }
    return out


@pytest.mark.parametrize(("partition", "flac"), [("train", "flac_T"), ("dev", "flac_D"), ("eval", "flac_E_eval")])
def test_asvspoof5_partitions(tmp_path, partition, flac):
    proto = make_asvspoof5(tmp_path / "ASVspoof5", n_per_class=4, partition=partition)
    assert detect_kind(proto) == "asvspoof5"
    utts = read_labels(proto)
    expected = _asvspoof5_rows(proto)
    assert [u.utt_id for u in utts] == sorted(expected)
    fields = ("speaker", "gender", "codec", "codec_q", "attack", "system", "label")
    assert {u.utt_id: {k: getattr(u, k) for k in fields} for u in utts} == expected
    assert all(u.path == str(tmp_path / "ASVspoof5" / flac / f"{u.utt_id}.flac") for u in utts)
    assert all(Path(u.path).exists() for u in utts)
    assert {u.attack for u in utts if u.label == 0} == {""} and {u.attack for u in utts if u.label == 1} >= {"AC1"}
    assert {u.gender for u in utts} == {"M", "F"}
    if partition == "eval":
        assert {u.codec for u in utts} == {c for c in ASVSPOOF5_CODECS if c != "-"} | {""}
        assert {u.codec_q for u in utts if not u.codec} == {"0"}
    else:
        assert {u.codec for u in utts} == {""}


def test_asvspoof5_phase1_six_columns_beside_the_audio(tmp_path):
    proto = make_asvspoof5(tmp_path / "release", n_per_class=3, phase1=True)
    assert proto.parent == tmp_path / "release" and detect_kind(proto) == "asvspoof5"
    utts = read_labels(proto)
    assert len(utts) == 6 and all(Path(u.path).exists() for u in utts)
    assert all(Path(u.path).parent == tmp_path / "release" / "flac_T" for u in utts)
    assert sorted(u.system for u in utts) == ["", "", "", "A01", "A02", "A03"]
    assert {u.attack for u in utts} == {""} and {u.gender for u in utts} == {"M", "F"}


def test_asvspoof5_audio_root_and_no_audio_needed(tmp_path):
    proto = make_asvspoof5(tmp_path / "a", n_per_class=2, partition="dev", audio=False)
    moved = tmp_path / "protocols" / "renamed.txt"  # no partition in its name: taken from the D_ ids
    moved.parent.mkdir()
    shutil.copy(proto, moved)
    utts = read_labels(moved, audio_root=tmp_path / "corpus")
    assert all(u.path == str(tmp_path / "corpus" / "flac_D" / f"{u.utt_id}.flac") for u in utts)
    assert not any(Path(u.path).exists() for u in utts)  # reading a protocol never touches the audio


def test_asvspoof5_errors_name_file_and_line(tmp_path):
    p = tmp_path / "ASVspoof5.train.tsv"
    good = "T_1 T_0000000001 F - - - - bonafide bonafide -"
    p.write_text(f"{good}\nT_1 T_0000000002 M - - - AC1 A01 spoof\n")
    with pytest.raises(DfdetError, match=r"ASVspoof5.train.tsv:2: expected 10 fields 'SPEAKER_ID .* TMP', got 9"):
        read_labels(p)
    p.write_text(f"{good}\nT_1 T_0000000002 M - - - AC1 A01 fake? -\n")
    with pytest.raises(DfdetError, match=r"ASVspoof5.train.tsv:2: KEY: unknown label 'fake\?'"):
        read_labels(p)
    p.write_text(f"# comment\n{good}\n\n{good}\n")
    with pytest.raises(DfdetError, match=r"ASVspoof5.train.tsv:4: duplicate utt_id 'T_0000000001' \(first on line 2\)"):
        read_labels(p)
    p.write_text("T_1 T_0000000001 F - - - - bonafide\n")  # 8 fields, key in no known position
    with pytest.raises(DfdetError, match="cannot tell the label file format"):
        read_labels(p)
    with pytest.raises(DfdetError, match=r"ASVspoof5.train.tsv:1: expected an ASVspoof 5 protocol line of 10"):
        read_labels(p, kind="asvspoof5")
    six = tmp_path / "ASVspoof5.dev.metadata.txt"
    six.write_text("D_1 D_0000000001 F - - bonafide\nD_1 D_0000000002 F - A01 spoof extra\n")
    with pytest.raises(DfdetError, match=r"metadata.txt:2: expected 6 fields 'SPEAKER_ID .* KEY', got 7"):
        read_labels(six)
