"""The score contract (dfdet.scores, README): what is bit-identical and what agrees within SCORE_ATOL/SCORE_RTOL."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from dfdet.fusion import make_fuser
from tests.contract import assert_scores_agree
from tests.test_scoring import build_trained, store_scores_by_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return build_trained(tmp_path_factory)


@pytest.mark.parametrize("method", ["mean", "auc2", "logistic"])
def test_fusion_is_bit_identical_whatever_the_layout_or_batch(method):
    """A fixed-order float64 sum: C or Fortran order, a misaligned buffer and split batches give the same bits."""
    rng = np.random.default_rng(0)
    y = (rng.random(997) < 0.5).astype(np.int8)
    S = rng.standard_normal((997, 5)) * [1, 3, 0.5, 2, 7] + (1 - 2 * y)[:, None] * [1, 0.5, 2, -1, 0.3]
    fuser = make_fuser(method).fit(S, y)
    want = fuser.transform(S)
    buf = np.empty(S.size + 1)
    shifted = buf[1:].reshape(S.shape)  # 8 bytes off the allocator's alignment
    shifted[...] = S
    for other in (np.asfortranarray(S), shifted, S[:, [0, 1, 2, 3, 4]]):
        assert np.array_equal(fuser.transform(other), want)
    parts = [fuser.transform(S[:1]), fuser.transform(S[1:500]), fuser.transform(S[500:])]
    assert np.array_equal(np.concatenate(parts), want)


def test_a_files_score_does_not_depend_on_the_rest_of_the_run(trained, tmp_path):
    """Audio scoring forwards each file alone: alone, in a directory run, reversed on stdin with -j 2, or next to a
    byte-identical copy of itself, a file gets exactly the same score."""
    from dfdet.inputs import list_audio_paths, utterances_from_paths
    from dfdet.scoring import load_detector, score_audio_stream, stdin_utterances

    det = load_detector(trained.model)
    utts = utterances_from_paths(list_audio_paths([trained.audio]))
    base = {r.path: r.score for r in score_audio_stream(det, utts, jobs=1)}
    paths = [u.path for u in utts]
    rev = score_audio_stream(det, stdin_utterances(io.StringIO("\n".join(paths[::-1]) + "\n")), jobs=2)
    assert {r.path: r.score for r in rev} == base
    first = paths[0]
    alone = list(score_audio_stream(det, utterances_from_paths([first]), jobs=1))
    assert alone[0].score == base[first]
    twin = tmp_path / "twin.wav"
    shutil.copyfile(first, twin)
    pair = list(score_audio_stream(det, utterances_from_paths([first, str(twin)]), jobs=2))
    assert pair[0].score == pair[1].score == base[first]


def test_store_blocks_and_files_agree_within_the_contract(trained):
    """A store is scored in blocks, audio one file at a time: another float32 arithmetic, same scores within
    SCORE_ATOL + SCORE_RTOL * |score| (and decisions equal away from the threshold)."""
    from dfdet.inputs import list_audio_paths, utterances_from_paths
    from dfdet.scoring import load_detector, score_audio_stream

    det = load_detector(trained.model)
    want = store_scores_by_path(trained)
    rows = list(score_audio_stream(det, utterances_from_paths(list_audio_paths([trained.audio])), jobs=2))
    got = np.array([r.score for r in rows])
    ref = np.array([want[r.path] for r in rows])
    ref_dec = np.where(ref >= det.threshold, 0, 1)
    assert_scores_agree(got, ref, (np.array([r.decision for r in rows]), ref_dec), det.threshold)
