"""The close-call rule (``diffmic.uncertainty.close_call``) on constructed chains: clear, close by the gap,
close by the t-test, ties, one chain; and the verdict carried into the JSON of a prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffmic.uncertainty import CLOSE_GAP, TIE_GAP, close_call, sample_uncertainty

NAMES = ["Mild", "Severe", "Proliferative DR"]


def chains(*rows: tuple[float, float, float], repeat: int = 1) -> np.ndarray:
    return np.asarray([r for r in rows for _ in range(repeat)], float)


def test_a_consistent_wide_gap_is_clear():
    u = sample_uncertainty(chains((0.1, 0.7, 0.2), (0.1, 0.75, 0.15), repeat=4))
    call = u.call
    assert call.verdict == "clear" and call.reasons == () and call.top2 == (1, 2)
    assert call.gap == pytest.approx(u.mean[1] - u.mean[2])


def test_a_small_gap_is_close_even_when_the_test_tells_them_apart():
    # every chain puts Severe 6 points above Proliferative DR: the t-test is sure, the gap is small
    u = sample_uncertainty(chains((0.05, 0.50, 0.44), (0.07, 0.49, 0.43), repeat=8))
    assert u.distinguishable and u.call.verdict == "close" and u.call.reasons == ("gap",)


def test_runs_that_split_are_close_even_when_the_mean_gap_is_wide():
    # 5 chains for Severe, 3 for Proliferative DR: 15 points apart on average, not told apart
    u = sample_uncertainty(np.vstack([chains((0.0, 0.8, 0.2), repeat=5), chains((0.0, 0.2, 0.8), repeat=3)]))
    assert u.mean[1] - u.mean[2] > CLOSE_GAP and not u.distinguishable
    call = u.call
    assert call.verdict == "close" and call.reasons == ("t-test",)
    assert call.to_dict(NAMES)["classes"] == ["Severe", "Proliferative DR"]


def test_ties_stay_ties_and_one_chain_gives_no_test():
    tie = sample_uncertainty(chains((0.1, 0.45, 0.45), repeat=4)).call
    assert tie.verdict == "tie" and tie.gap < TIE_GAP
    one = sample_uncertainty(chains((0.1, 0.7, 0.2))).call  # no test with one chain: only the gap counts
    assert one.verdict == "clear" and one.reasons == ()
    assert close_call([0.1, 0.47, 0.43], distinguishable=False, n_samples=1).reasons == ("gap",)


def test_thresholds_are_parameters_and_the_verdict_reaches_the_json():
    mean = [0.2, 0.5, 0.3]
    assert close_call(mean, True, 8).verdict == "clear"  # 20 points apart
    assert close_call(mean, True, 8, close_gap=0.25).verdict == "close"
    assert close_call(mean, True, 8, tie_gap=0.25).verdict == "tie"
    with pytest.raises(ValueError, match="at least 2 classes"):
        close_call([1.0], True, 8)
    d = sample_uncertainty(chains((0.05, 0.50, 0.44), repeat=3)).to_dict(NAMES)
    assert d["close_call"] == {
        "verdict": "close",
        "classes": ["Severe", "Proliferative DR"],
        "probabilities": pytest.approx([0.50, 0.44]),
        "gap": pytest.approx(0.06),
        "reasons": ["gap"],
    }
    json.dumps(d, allow_nan=False)
