"""The one split assigner (bprl.splits): disjoint, complete, deterministic, and the two rules it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from bprl.errors import ConfigError
from bprl.splits import SPLITS, assign_splits, split_counts

FRACTIONS = [
    (0.6, 0.2, 0.2),
    (0.5, 0.5, 0.0),
    (0.0, 0.5, 0.5),
    (1 / 3, 1 / 3, 1 / 3),
    (0.8, 0.1, 0.1),
    (0.5, 0.2, 0.3),
    (1.0, 0.0, 0.0),
]


def _fr(t: tuple[float, float, float]) -> dict[str, float]:
    return dict(zip(SPLITS, t, strict=True))


# --------------------------------------------------------- the rules before issue 12, frozen here
def _cohort_rule_before(n: int, seed: int, fr: dict[str, float]) -> list[str]:
    """bprl.cohort.assign_splits as it was: train and val rounded, test the rest, cut train-val-test."""
    order = np.random.default_rng([seed, 0x5B117]).permutation(n)
    n_train = round(fr["train"] * n)
    n_val = round(fr["val"] * n)
    labels = np.empty(n, dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_val]] = "val"
    labels[order[n_train + n_val :]] = "test"
    return list(labels)


def _experiment_counts_before(n: int, fr: dict[str, float]) -> dict[str, int]:
    """bprl.experiments.split_counts as it was."""
    n_test = round(fr["test"] * n)
    n_val = round(fr["val"] * n)
    if fr["test"] > 0:
        n_test = max(n_test, 1)
    if fr["val"] > 0:
        n_val = max(n_val, 1)
    return {"train": max(n - n_test - n_val, 0), "val": n_val, "test": n_test}


def _experiment_rule_before(
    ids: list[str], records: list[str], fr: dict[str, float], seed: int, records_to: str | None
) -> dict[str, str]:
    """The fraction branch of bprl.experiments.assign_splits as it was (without its empty-split errors)."""
    ids = sorted(set(ids) | set(records))
    out: dict[str, str] = {}
    pool = ids
    if records_to is not None:
        out.update(dict.fromkeys(sorted(records), records_to))
        pool = [s for s in ids if s not in out]
    counts = _experiment_counts_before(len(pool), fr)
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    bounds = {"test": (0, counts["test"]), "val": (counts["test"], counts["test"] + counts["val"])}
    for i, sid in enumerate(order):
        out[sid] = next((s for s, (a, b) in bounds.items() if a <= i < b), "train")
    return out


@pytest.mark.parametrize("fractions", FRACTIONS)
def test_reproduces_the_cohort_manifest_rule(fractions: tuple[float, float, float]) -> None:
    fr = _fr(fractions)
    for n in range(1, 45):
        for seed in range(4):
            got = assign_splits(
                list(range(n)), fr, [seed, 0x5B117], order=("train", "val", "test"), at_least_one=False
            )
            assert [got[i] for i in range(n)] == _cohort_rule_before(n, seed, fr), (n, seed)


@pytest.mark.parametrize("fractions", FRACTIONS)
def test_reproduces_the_experiment_rule(fractions: tuple[float, float, float]) -> None:
    fr = _fr(fractions)
    for n in range(0, 30):
        assert split_counts(n, fr) == _experiment_counts_before(n, fr)
        ids = [f"s{i:03d}" for i in range(n)]
        for seed in range(3):
            for records in ([], ["p1"], ["p1", "p0", "p2"]):
                for records_to in (None, "test", "train"):
                    if not ids and not records:
                        continue
                    every = sorted(ids + records)
                    fixed = dict.fromkeys(records, records_to) if records_to else None
                    got = assign_splits(every, fr, seed, fixed)
                    want = _experiment_rule_before(ids, records, fr, seed, records_to)
                    assert got == want, (n, seed, records, records_to)


# --------------------------------------------------------- properties
def test_every_subject_in_exactly_one_split_and_counts_match() -> None:
    ids = [f"s{i:02d}" for i in range(37)]
    fr = {"train": 0.6, "val": 0.2, "test": 0.2}
    got = assign_splits(ids, fr, seed=11)
    assert list(got) == ids  # every subject once, in the order given
    assert set(got.values()) <= set(SPLITS)
    counts = split_counts(len(ids), fr)
    assert counts == {"train": 23, "val": 7, "test": 7}
    assert {s: list(got.values()).count(s) for s in SPLITS} == counts
    groups = [{k for k, v in got.items() if v == s} for s in SPLITS]
    assert sum(len(g) for g in groups) == len(ids) == len(set().union(*groups))


def test_deterministic_by_seed() -> None:
    ids = [f"s{i:02d}" for i in range(20)]
    fr = {"train": 0.5, "val": 0.25, "test": 0.25}
    a = assign_splits(ids, fr, 3)
    assert a == assign_splits(ids, fr, 3) == assign_splits(tuple(ids), fr, 3)
    assert a != assign_splits(ids, fr, 4)


def test_fixed_subjects_keep_their_split_and_leave_the_pool() -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    got = assign_splits(ids, {"train": 0.5, "val": 0.25, "test": 0.25}, 0, fixed={"c": "test", "f": "test"})
    assert got["c"] == got["f"] == "test"
    pool = [got[s] for s in ids if s not in ("c", "f")]
    assert pool.count("test") == 1 and pool.count("val") == 1 and pool.count("train") == 2


def test_counts_rounding_remainder_and_at_least_one() -> None:
    fr = {"train": 0.8, "val": 0.1, "test": 0.1}
    assert split_counts(3, fr) == {"train": 1, "val": 1, "test": 1}
    assert split_counts(3, fr, at_least_one=False) == {"train": 3, "val": 0, "test": 0}
    assert split_counts(3, fr, remainder="test", at_least_one=False) == {"train": 2, "val": 0, "test": 1}
    assert split_counts(1, fr) == {"train": 0, "val": 1, "test": 1}  # more asked than there are
    got = assign_splits(["x"], fr, 0)
    assert got == {"x": "test"}  # slices are filled in order (test, val, train)
    assert split_counts(0, fr) == {"train": 0, "val": 1, "test": 1}
    assert assign_splits([], fr, 0) == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fractions": {"train": 0.7, "val": 0.2, "test": 0.2}}, "sum to"),
        ({"fractions": {"train": 1.2, "val": -0.2}}, "not a number in"),
        ({"fractions": {}}, "no split fractions"),
        ({"subject_ids": ["a", "a", "b"]}, "repeated"),
        ({"fixed": {"zz": "test"}}, "not among the subjects"),
        ({"fixed": {"a": "holdout"}}, "unknown split"),
        ({"order": ("train", "val")}, "not a permutation"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    args = {"subject_ids": ["a", "b", "c"], "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        assign_splits(**args)
    with pytest.raises(ConfigError, match="non-negative integer"):
        split_counts(-1, {"train": 1.0})
    with pytest.raises(ConfigError, match="remainder"):
        split_counts(3, {"train": 1.0}, remainder="test")
