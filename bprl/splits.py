"""The one subject-disjoint split assigner: which subjects train, validate and test.

A subject (not a record, not a window) is the unit of a split, so no subject's data
ever appears in two splits. :func:`assign_splits` cuts a seeded permutation of the
subjects into consecutive slices sized by :func:`split_counts`; subjects in ``fixed``
(for example every real-record subject, or explicit subject lists) keep their split
and are left out of the permutation.

Both users of the assigner go through these two functions:

* the virtual cohort's manifest (:func:`bprl.cohort.assign_splits`): seed
  ``[seed, 0x5B117]``, train and val rounded, test takes the rest, slices in the
  order train, val, test (``order=("train", "val", "test")``, ``at_least_one=False``);
* the experiment runner: seed ``splits.seed``, test and val rounded with at least one
  subject each when their fraction is positive, train takes the rest, slices in the
  order test, val, train (the defaults).

>>> assign_splits(["s1", "s2", "s3", "s4", "s5"], {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
{'s1': 'train', 's2': 'train', 's3': 'test', 's4': 'train', 's5': 'val'}
>>> split_counts(5, {"train": 0.6, "val": 0.2, "test": 0.2})
{'train': 3, 'val': 1, 'test': 1}
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from bprl.errors import ConfigError

__all__ = ["SPLITS", "assign_splits", "split_counts"]

#: the split names, in the order tables list them
SPLITS: tuple[str, str, str] = ("train", "val", "test")


def _check_fractions(fractions: Mapping[str, float]) -> None:
    """ConfigError unless ``fractions`` is a non-empty mapping of values in [0, 1] that sum to 1."""
    if not fractions:
        raise ConfigError("splits: no split fractions given")
    for name, frac in fractions.items():
        if not (isinstance(frac, int | float) and math.isfinite(frac) and 0.0 <= frac <= 1.0):
            raise ConfigError(f"splits: fraction of {name!r} is {frac!r}, not a number in [0, 1]")
    total = float(sum(fractions.values()))
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"splits: fractions {dict(fractions)} sum to {total:g}, not 1")


def split_counts(
    n: int,
    fractions: Mapping[str, float],
    *,
    remainder: str | None = None,
    at_least_one: bool = True,
) -> dict[str, int]:
    """Subjects per split for ``n`` subjects.

    Every split but ``remainder`` gets ``round(fraction * n)`` subjects (Python's
    round-half-to-even), raised to 1 when ``at_least_one`` and its fraction is positive;
    ``remainder`` gets what is left (never below 0). The counts may add up to more than
    ``n`` when ``n`` is small; :func:`assign_splits` then fills the slices in order and
    later ones come up short.

    Args:
        n: number of subjects (>= 0).
        fractions: split name -> share of the subjects, each in [0, 1], summing to 1.
        remainder: the split that absorbs the rounding; default the first key of ``fractions``
            (``train`` for ``{"train": ..., "val": ..., "test": ...}``).
        at_least_one: give every split with a positive fraction at least one subject.

    Returns:
        split name -> number of subjects, in the order of ``fractions``.

    Raises:
        ConfigError: fractions outside [0, 1] or not summing to 1, negative ``n``, or a
            ``remainder`` that is not one of the splits.
    """
    _check_fractions(fractions)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigError(f"splits: number of subjects must be a non-negative integer, got {n!r}")
    rest = next(iter(fractions)) if remainder is None else remainder
    if rest not in fractions:
        raise ConfigError(f"splits: remainder split {rest!r} is not one of {list(fractions)}")
    counts: dict[str, int] = {}
    for name, frac in fractions.items():
        if name == rest:
            continue
        k = round(frac * n)
        counts[name] = max(k, 1) if at_least_one and frac > 0 else k
    left = max(int(n) - sum(counts.values()), 0)
    return {name: (left if name == rest else counts[name]) for name in fractions}


def assign_splits(
    subject_ids: Sequence[Hashable],
    fractions: Mapping[str, float],
    seed: int | Sequence[int],
    fixed: Mapping[Hashable, str] | None = None,
    *,
    order: Sequence[str] | None = None,
    at_least_one: bool = True,
) -> dict[Hashable, str]:
    """Map each subject to one split: fixed subjects keep theirs, the others follow a seeded permutation.

    The subjects not in ``fixed`` (the *pool*, in the order given) are permuted with
    ``numpy.random.default_rng(seed).permutation(len(pool))``; the permuted pool is cut into
    consecutive slices, one per split in ``order``, sized by :func:`split_counts` with the
    last split of ``order`` as the remainder. The result depends only on the ids, their order,
    the fractions and the seed; pass sorted ids for a result independent of input order.

    Args:
        subject_ids: the subjects, each once.
        fractions: split name -> share of the pool, each in [0, 1], summing to 1.
        seed: seed of the permutation (an int, or a sequence of ints as numpy accepts).
        fixed: subject -> split for subjects whose split is given (e.g. real-record subjects);
            every such subject must be in ``subject_ids`` and every split in ``fractions``.
        order: the order in which the splits take slices of the permutation; default the keys of
            ``fractions`` reversed (``test``, ``val``, ``train``: train takes what is left).
        at_least_one: give every split with a positive fraction at least one pool subject
            (as far as the pool allows).

    Returns:
        subject -> split name, in the order of ``subject_ids``.

    Raises:
        ConfigError: repeated subjects, fixed subjects or splits that are unknown, an ``order``
            that is not a permutation of the splits, or invalid fractions.
    """
    ids = list(subject_ids)
    if len(set(ids)) != len(ids):
        repeated = sorted({str(s) for s in ids if ids.count(s) > 1})
        raise ConfigError(f"splits: subjects repeated: {repeated}")
    _check_fractions(fractions)
    slices = list(reversed(list(fractions))) if order is None else list(order)
    if sorted(slices) != sorted(fractions):
        raise ConfigError(f"splits: order {slices} is not a permutation of the splits {list(fractions)}")
    fixed = dict(fixed or {})
    known = set(ids)
    for sid, name in fixed.items():
        if sid not in known:
            raise ConfigError(f"splits: fixed subject {sid!r} is not among the subjects")
        if name not in fractions:
            raise ConfigError(
                f"splits: fixed subject {sid!r} has unknown split {name!r}; valid: {list(fractions)}"
            )
    pool = [s for s in ids if s not in fixed]
    counts = split_counts(len(pool), fractions, remainder=slices[-1], at_least_one=at_least_one)
    perm = np.random.default_rng(seed).permutation(len(pool))
    drawn: dict[Hashable, str] = {}
    start = 0
    for name in slices[:-1]:
        for i in perm[start : start + counts[name]]:
            drawn[pool[i]] = name
        start += counts[name]
    for i in perm[start:]:
        drawn[pool[i]] = slices[-1]
    return {s: fixed[s] if s in fixed else drawn[s] for s in ids}
