"""The experiment's split of subjects into train / val / test, on top of :mod:`bprl.splits`.

:func:`assign_splits` applies an experiment's ``splits`` section to the subjects of its cohort:
explicit subject lists as given, fractions through the one split assigner
(:func:`bprl.splits.assign_splits`, real-record subjects fixed to ``records_to``), then checks
that no split the experiment asks for ends up empty. :func:`check_split_sizes` is the same check
made on the file alone, before any work, when the number of subjects is known.
"""

from __future__ import annotations

import pandas as pd

from bprl import splits
from bprl.errors import ConfigError
from bprl.experiments.schema import ExperimentConfig, SplitSpec
from bprl.splits import SPLITS

__all__ = ["assign_splits", "check_split_sizes"]


def assign_splits(subjects: pd.DataFrame, spec: SplitSpec, source: str = "experiment") -> dict[str, str]:
    """Map each subject id to a split.

    Fractions: the sorted subject ids go to :func:`bprl.splits.assign_splits` with seed
    ``spec.seed``; with ``records_to`` every real-record subject is fixed to that split and
    the fractions apply to the others. Subject lists: each listed subject goes to its split
    (subjects in no list are left out of the result).

    Args:
        subjects: one row per record or subject with columns ``subject_id`` and ``origin``
            (``virtual`` / ``records``).
        spec: the experiment's split rule.
        source: name used in error messages.

    Returns:
        subject id -> ``train`` / ``val`` / ``test``.

    Raises:
        ConfigError: a listed subject does not exist, or a split ends up empty.
    """
    ids = sorted(subjects["subject_id"].astype(str).unique())
    fractions = spec.fractions()
    if fractions is None:
        out = _listed(ids, spec, source)
    else:
        fixed: dict[str, str] = {}
        if spec.records_to is not None:
            real = subjects.loc[subjects["origin"] == "records", "subject_id"].astype(str).unique()
            fixed = dict.fromkeys(sorted(real), spec.records_to)
        out = {str(k): v for k, v in splits.assign_splits(ids, fractions, spec.seed, fixed).items()}
    _check_not_empty(out, spec, len(ids), source)
    return out


def _listed(ids: list[str], spec: SplitSpec, source: str) -> dict[str, str]:
    """Subject lists as given; ConfigError naming a listed subject that is not in the cohort."""
    known = set(ids)
    out: dict[str, str] = {}
    for name in SPLITS:
        for sid in getattr(spec, name):
            if sid not in known:
                raise ConfigError(f"{source}: splits.{name}: subject {sid!r} is not in the cohort")
            out[sid] = name
    return out


def _check_not_empty(out: dict[str, str], spec: SplitSpec, n_subjects: int, source: str) -> None:
    """ConfigError when a split the experiment asks for, or train or test, has no subject."""
    given = {s for s in SPLITS if isinstance(getattr(spec, s), list) or getattr(spec, s) > 0}
    given |= {spec.records_to} if spec.records_to else set()
    assigned = set(out.values())
    empty = [s for s in SPLITS if s in given and s not in assigned]
    if empty:
        raise ConfigError(
            f"{source}: splits: split(s) {empty} have no subjects ({n_subjects} subjects in the cohort)"
        )
    for s in ("train", "test"):
        if s not in assigned:
            raise ConfigError(f"{source}: splits: the {s} split has no subjects")


def check_split_sizes(cfg: ExperimentConfig, source: str) -> None:
    """Before any work: fraction splits must give every split a subject, when the count is known.

    The count is known when the cohort is virtual only, or when real records all go to
    ``records_to`` (the fractions then apply to the virtual subjects).

    Raises:
        ConfigError: a split (other than ``records_to``) would get no subject.
    """
    sp = cfg.splits
    fractions = sp.fractions()
    virtual = cfg.cohort.virtual
    if fractions is None or virtual is None or (cfg.cohort.records and sp.records_to is None):
        return
    n = virtual.subjects
    counts = splits.split_counts(n, fractions)
    empty = [s for s in SPLITS if counts[s] == 0 and s != sp.records_to]
    if empty:
        raise ConfigError(
            f"{source}: splits: split(s) {empty} get no subjects "
            f"({n} virtual subjects, fractions train={sp.train}, val={sp.val}, test={sp.test})"
        )
