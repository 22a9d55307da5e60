"""The score contract in test form (dfdet.scores: SCORE_ATOL/SCORE_RTOL): the one way tests compare scores that two
code paths computed. Same-path reruns are compared bit for bit with numpy's array_equal instead."""

from __future__ import annotations

from typing import Any

import numpy as np

from dfdet.scores import near_threshold, scores_agree


def assert_scores_agree(got: Any, want: Any, decisions: tuple[Any, Any] | None = None, threshold: float | None = None):
    """Scores within the contract's tolerance; decisions equal except for rows that close to the threshold."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    ok = scores_agree(got, want)
    assert ok.all(), f"{(~ok).sum()} score(s) outside the contract, max |diff| {np.abs(got - want).max():.3g}"
    if decisions is not None:
        assert threshold is not None
        da, db = (np.asarray(d) for d in decisions)
        free = near_threshold(want, threshold)
        assert np.array_equal(da[~free], db[~free])
