"""dfdet.inputs: every input kind, deterministic order, unique ids, joins with label files, clear errors."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.errors import DfdetError
from dfdet.inputs import Utterance, list_audio_paths, utterances_from_paths
from dfdet.protocols import resolve_utterances
from tests.fixtures import make_asvspoof_la, make_audio_dir, write_audio

EXPECTED_IDS = ["UPPER", "a/clip", "b/c/deep", "b/clip", "low_8k", "stereo_48k", "ünï/çødé 22k"]


@pytest.fixture
def audio_dir(tmp_path) -> tuple[Path, list[Path]]:
    root = tmp_path / "corpus"
    return root, make_audio_dir(root)


def test_directory_is_walked_recursively(audio_dir):
    root, expected = audio_dir
    got = list_audio_paths([str(root)])
    assert got == expected  # hidden files/dirs and notes.txt left out, upper-case extension and unicode kept
    assert all(p.is_absolute() for p in got)


def test_single_file_and_pathlike(audio_dir):
    root, expected = audio_dir
    target = root / "b" / "c" / "deep.flac"
    assert list_audio_paths([target]) == [target]
    utts = utterances_from_paths([target])
    assert utts == [Utterance(utt_id="deep", path=str(target))]


def test_hidden_file_given_explicitly_is_kept(audio_dir):
    root, _ = audio_dir
    assert list_audio_paths([str(root / ".hidden.wav")]) == [root / ".hidden.wav"]


def test_list_file_relative_to_its_directory(audio_dir, tmp_path):
    root, expected = audio_dir
    lst = root / "lists" / "subset.lst"
    lst.parent.mkdir()
    lst.write_text("# a comment\n\n../a/clip.wav\n  ../ünï/çødé 22k.flac  \n" + str(root / "low_8k.wav") + "\n")
    got = list_audio_paths([str(lst)])
    assert got == [root / "a/clip.wav", root / "low_8k.wav", root / "ünï/çødé 22k.flac"]


@pytest.mark.parametrize("ext", [".txt", ".scp", ".list", ".LST"])
def test_list_file_extensions(audio_dir, ext):
    root, _ = audio_dir
    lst = root / f"files{ext}"
    lst.write_text("b/clip.wav\nb/c\n")  # a directory entry is walked too
    assert list_audio_paths([lst]) == [root / "b/c/deep.flac", root / "b/clip.wav"]


def test_stdin_paths_relative_to_cwd(audio_dir, monkeypatch):
    root, expected = audio_dir
    monkeypatch.chdir(root)
    text = "\n".join(str(p.relative_to(root)) for p in reversed(expected)) + "\n"
    assert list_audio_paths(["-"], stdin=io.StringIO(text)) == expected


def test_dir_and_stdin_give_identical_utterances(audio_dir):
    root, expected = audio_dir
    found = [str(p) for p in expected[::-1]]  # like `find DIR -name ...`, any order
    via_dir = resolve_utterances([str(root)])
    via_stdin = resolve_utterances(["-"], stdin=io.StringIO("\n".join(found)))
    assert via_dir == via_stdin
    assert [u.utt_id for u in via_dir] == EXPECTED_IDS
    assert all(u.label == -1 and u.speaker == "" for u in via_dir)


def test_duplicates_are_removed_and_order_is_sorted(audio_dir, tmp_path):
    root, expected = audio_dir
    link = tmp_path / "zz" / "alias.wav"  # the same file again; the first in sorted order is kept
    link.parent.mkdir()
    os.symlink(root / "a" / "clip.wav", link)
    got = list_audio_paths([str(root / "low_8k.wav"), str(root), str(root / "a" / "clip.wav"), str(link)])
    assert got == expected
    assert got == sorted(got, key=str)


def test_duplicate_basenames_in_subdirs_get_distinct_ids(audio_dir):
    root, _ = audio_dir
    utts = utterances_from_paths(list_audio_paths([root / "a", root / "b"]))
    assert [u.utt_id for u in utts] == ["a/clip", "b/c/deep", "b/clip"]
    assert utts[0].path == str(root / "a" / "clip.wav")


def test_duplicate_ids_name_both_paths(tmp_path):
    y = np.zeros(160)
    a = write_audio(tmp_path / "x" / "utt.wav", y, 16000)
    b = write_audio(tmp_path / "x" / "utt.flac", y, 16000)
    with pytest.raises(DfdetError) as info:
        utterances_from_paths(list_audio_paths([tmp_path]))
    msg = str(info.value)
    assert "duplicate utt_id 'utt'" in msg and str(a) in msg and str(b) in msg


def test_unicode_paths(tmp_path):
    p = write_audio(tmp_path / "données" / "日本語 ファイル.wav", np.zeros(160), 16000)
    assert list_audio_paths([tmp_path]) == [p]
    assert utterances_from_paths([p])[0].utt_id == "日本語 ファイル"


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(DfdetError, match="nope.wav: no such file or directory"):
        list_audio_paths([str(tmp_path / "nope.wav")])


def test_unsupported_extension_names_file_and_supported_types(tmp_path):
    bad = tmp_path / "features.csv"
    bad.write_text("a,b\n")
    with pytest.raises(DfdetError) as info:
        list_audio_paths([str(bad)])
    assert "features.csv: unsupported file type .csv" in str(info.value)
    assert ".flac" in info.value.fix and ".lst" in info.value.fix and "--labels" in info.value.fix


def test_protocol_passed_as_list_file_gets_a_hint(tmp_path):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=1)
    with pytest.raises(DfdetError, match="looks like an ASVspoof CM protocol") as info:
        list_audio_paths([proto])
    assert "--labels" in info.value.fix


def test_list_file_errors_name_line(audio_dir):
    root, _ = audio_dir
    lst = root / "bad.lst"
    lst.write_text("a/clip.wav\n\nmissing.wav\n")
    with pytest.raises(DfdetError, match=r"bad.lst:3: .*missing.wav: no such file"):
        list_audio_paths([lst])
    # missing_ok lets a per-file error be reported later (e.g. under --skip-bad)
    assert list_audio_paths([lst], missing_ok=True) == [root / "a/clip.wav", root / "missing.wav"]
    lst.write_text("notes.txt\n")
    with pytest.raises(DfdetError, match=r"bad.lst:1: .*notes.txt: not a supported audio file"):
        list_audio_paths([lst])


def test_kaldi_style_line_gets_a_hint(audio_dir):
    root, _ = audio_dir
    lst = root / "wav.scp"
    lst.write_text(f"utt1 {root / 'a/clip.wav'}\n")
    with pytest.raises(DfdetError) as info:
        list_audio_paths([lst])
    assert "one path per line" in info.value.fix


def test_resolve_needs_inputs_and_audio(tmp_path):
    with pytest.raises(DfdetError, match="no inputs"):
        resolve_utterances([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DfdetError, match="no audio files found"):
        resolve_utterances([str(tmp_path / "empty")])


def test_resolve_labels_only_and_joined(tmp_path):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=2)
    flac = tmp_path / "LA" / "ASVspoof2019_LA_train" / "flac"
    rows = [line.split() for line in proto.read_text().splitlines()]
    expected = {r[1]: (r[0], "" if r[3] == "-" else r[3], 0 if r[4] == "bonafide" else 1) for r in rows}

    only = resolve_utterances([], labels=proto)
    assert [u.utt_id for u in only] == sorted(expected)
    assert {u.utt_id: (u.speaker, u.system, u.label) for u in only} == expected

    # audio args select a subset of the label file; joined by resolved path
    some = sorted(flac.glob("*.flac"))[:3]
    joined = resolve_utterances([str(p) for p in some], labels=proto)
    assert [u.utt_id for u in joined] == [p.stem for p in some]
    assert all((u.speaker, u.system, u.label) == expected[u.utt_id] for u in joined)

    # a copy elsewhere still joins by file id (stem)
    elsewhere = tmp_path / "copy"
    shutil.copytree(flac, elsewhere)
    moved = resolve_utterances([str(elsewhere)], labels=proto)
    assert {u.utt_id: (u.speaker, u.system, u.label) for u in moved} == expected
    assert all(Path(u.path).parent == elsewhere for u in moved)

    # listed audio that the label file does not know is an error naming it
    stray = write_audio(elsewhere / "stray.flac", np.zeros(160), 16000)
    with pytest.raises(DfdetError, match="stray.flac: not in label file"):
        resolve_utterances([str(elsewhere)], labels=proto)
    stray.unlink()


def test_symlinked_directories_are_followed_once(tmp_path):
    real = tmp_path / "real"
    a = write_audio(real / "a.wav", np.zeros(160), 16000)
    (tmp_path / "top").mkdir()
    os.symlink(real, tmp_path / "top" / "linked")
    os.symlink(tmp_path / "top", tmp_path / "top" / "loop")  # a cycle must not hang the walk
    got = list_audio_paths([tmp_path / "top"])
    assert got == [tmp_path / "top" / "linked" / "a.wav"]
    # the same file reached through the real directory and the link is listed once
    assert list_audio_paths([tmp_path / "top", real]) == [a]


_NAME = st.text(alphabet="abcXYZ_-é 0", min_size=1, max_size=6).filter(lambda s: s.strip() == s and s[0] != ".")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_NAME, min_size=1, max_size=3), min_size=1, max_size=6, unique_by=tuple), st.randoms())
def test_ids_are_relative_to_common_root_and_order_free(parts, rnd):
    base = "/data/corpus"
    paths = [os.path.join(base, *p) + ".wav" for p in parts]
    root = os.path.commonpath([os.path.dirname(p) for p in paths])  # oracle: stdlib, component-wise
    expected = sorted((os.path.relpath(p, root)[:-4], p) for p in paths)
    shuffled = paths[:]
    rnd.shuffle(shuffled)
    got = utterances_from_paths(shuffled)
    assert [(u.utt_id, u.path) for u in got] == expected
