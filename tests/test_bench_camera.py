"""The camera benchmark's information test: own-subject MAE against other subjects' MAE."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.bench_camera import information_table


def _clips(est: list[float]) -> pd.DataFrame:
    gt = [60.0, 60.0, 80.0, 80.0, 100.0, 100.0]
    subject = ["a", "a", "b", "b", "c", "c"]
    return pd.DataFrame({"subject": subject, "gt": gt, "est": est})


def test_an_exact_estimate_is_closer_to_its_own_subject() -> None:
    tab = information_table(_clips([60.0, 60.0, 80.0, 80.0, 100.0, 100.0]), ["est"], "estimate")
    assert tab.loc["est", "own"] == 0.0
    # other subjects are 20 or 40 bpm away: mean over the 24 cross-subject pairs
    assert tab.loc["est", "others"] == np.round((16 * 20 + 8 * 40) / 24, 1)
    assert tab.loc["est", "own - others"] < 0


def test_a_blind_estimate_scores_the_same_on_own_and_other_subjects() -> None:
    tab = information_table(_clips([80.0] * 6), ["est"], "estimate")
    assert tab.loc["est", "own"] == tab.loc["est", "others"]
    # the oracle constant is the mean of the per-subject ground truths (80 here)
    row = tab.loc["constant (mean ground truth)"]
    assert row["own"] == row["others"] == np.round(40 / 3, 1)
    # the textbook constant (72 bpm) is 12, 8 and 28 bpm off the three subjects
    assert tab.loc["constant 72 bpm", "own"] == np.round((12 + 8 + 28) / 3, 1)
