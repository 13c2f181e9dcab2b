"""One report comparing the policies of several results folders, paired per test subject.

:func:`compare_results` reads the episode logs of two or more results folders of ``bprl run`` (each
experiment's current policies and seeds, as ``bprl report`` does), checks that every run was
evaluated on the same test subjects of the same cohort, and writes into one output folder the
report of :func:`bprl.report.write_report` on all runs' logs (policies relabelled
``<label>:<policy>``, the paired table first), ``paired_differences.csv``
(:func:`paired_differences`: the same policy in each run against the reference run, per subject),
``metrics.csv`` (:func:`bprl.evaluation.compare_policies`) and ``compared.json`` (the input
folders, labels, experiment names, seeds, policies and git commits).
The same inputs give byte-identical files.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bprl import __version__
from bprl import evaluation as ev
from bprl.errors import EvaluationError
from bprl.features.replay_set import REPLAY_SET_INDEX
from bprl.io import atomic_output, write_json_atomic
from bprl.report.tables import Table, format_value
from bprl.report.write import results_subjects, write_report

__all__ = [
    "COMPARED_FILE",
    "TIE_MMHG",
    "Comparison",
    "Run",
    "compare_results",
    "current_log_paths",
    "default_labels",
    "paired_differences",
    "paired_table",
    "read_run",
]

#: the marker file of a results folder of ``bprl run`` (:data:`bprl.experiments.RESULTS_MARKER`)
RESULTS_MARKER = ".bprl-results"
#: the file naming the compared folders in a comparison's output folder
COMPARED_FILE = "compared.json"
#: a run label: letters, digits, ``.``, ``_``, ``+``, ``-`` (it becomes part of policy and folder names)
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
#: per-subject differences within this many mmHg count as ties (neither better nor worse):
#: floating-point noise of equal MAEs summed in another order
TIE_MMHG = 1e-9
#: subject ids named in an error message before "..."
_SHOWN_IDS = 5
_BPS = ("sbp", "dbp")
#: the columns of :func:`paired_differences` per BP kind, ``<bp>_<stat>``
_STATS = "mae_reference_mmhg mae_run_mmhg diff_mmhg diff_ci_lo_mmhg diff_ci_hi_mmhg n_better n_worse".split()


@dataclass(frozen=True)
class Run:
    """One results folder as the comparison reads it.

    Attributes:
        label: the run's name in the comparison.
        folder: the results folder, as given.
        log: its checked episode logs (original policy names).
        problems: one message per log file that could not be read.
        config: its ``config.resolved.yaml`` (empty when absent).
        provenance: its ``provenance.json`` (empty when absent or unreadable).
        test_split: the replay set's test subjects, or None when the folder has no replay set index.
    """

    label: str
    folder: Path
    log: pd.DataFrame
    problems: list[str]
    config: dict[str, Any]
    provenance: dict[str, Any]
    test_split: frozenset[str] | None

    @property
    def subjects(self) -> frozenset[str]:
        """Subject ids in the run's episode logs."""
        return frozenset(self.log["subject_id"].astype(str))

    @property
    def policies(self) -> list[str]:
        """Policy names in the run's logs, in order of first appearance."""
        return [str(p) for p in pd.unique(self.log["policy"])]


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_results` wrote.

    Attributes:
        out: the output folder.
        report: its ``report.html``.
        labels: the run labels, reference first.
        paired: the paired per-subject differences (:func:`paired_differences`).
    """

    out: Path
    report: Path
    labels: list[str]
    paired: pd.DataFrame


def _load_mapping(path: Path) -> dict[str, Any]:
    """A YAML / JSON mapping file (``yaml.safe_load``); empty when absent or unreadable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _clean_label(name: str) -> str:
    """``name`` with characters a label may not hold replaced by ``_`` (``run`` when nothing is left)."""
    text = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip("._+-")[:64]
    return text or "run"


def default_labels(folders: Sequence[str | Path]) -> list[str]:
    """Labels of the folders: their names; clashing names get the parent folder's name, then a number.

    >>> default_labels(["results/quickstart", "other/quickstart", "results/b c"])
    ['results-quickstart', 'other-quickstart', 'b_c']
    """
    names = [_clean_label(Path(f).name) for f in folders]
    counts = Counter(names)
    names = [
        _clean_label(f"{Path(f).parent.name}-{n}") if counts[n] > 1 else n
        for f, n in zip(folders, names, strict=True)
    ]
    counts, seen = Counter(names), Counter[str]()
    out = []
    for n in names:
        seen[n] += 1
        out.append(f"{n}-{seen[n]}" if counts[n] > 1 else n)
    return out


def _check_labels(labels: Sequence[str], n_folders: int) -> list[str]:
    """The labels, checked: one per folder, each valid, no two alike."""
    labels = [str(x) for x in labels]
    if len(labels) != n_folders:
        raise EvaluationError(
            f"compare: {len(labels)} labels for {n_folders} results folders (give one each)"
        )
    bad = [x for x in labels if not _LABEL.match(x)]
    if bad:
        raise EvaluationError(
            f"compare: invalid label(s) {bad}: use 1-64 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    dup = sorted(x for x, n in Counter(labels).items() if n > 1)
    if dup:
        raise EvaluationError(f"compare: duplicate label(s) {dup}: every results folder needs its own label")
    return labels


def current_log_paths(results: Path, config: dict[str, Any]) -> list[Path]:
    """The episode logs of the experiment's current policies and seeds, in the experiment's order:
    :func:`bprl.evaluation.results_logs`, the rule of ``bprl report`` (a policy counts as swept
    when the folder holds its ``<name>@<rate>`` logs: this layer does not load calibrator classes).
    """
    return ev.results_logs(results, config)


def read_run(folder: str | Path, label: str) -> Run:
    """Read one results folder: the logs of its current policies and seeds, config and provenance.

    Raises:
        EvaluationError: not a results folder written by ``bprl run``, or no readable episode log.
    """
    path = Path(folder)
    if not path.is_dir():
        raise EvaluationError(f"compare: {path}: not a folder")
    marked = (path / RESULTS_MARKER).is_file() or (path / "config.resolved.yaml").is_file()
    if not marked or not (path / "logs").is_dir():
        raise EvaluationError(
            f"compare: {path}: not a results folder of `bprl run` (no {RESULTS_MARKER} marker or no logs/)"
        )
    config = _load_mapping(path / "config.resolved.yaml")
    paths = current_log_paths(path, config)
    if not paths:
        raise EvaluationError(f"compare: {path}: no episode logs of the experiment's policies and seeds")
    log, problems = ev.read_episode_logs(paths)
    index = path / "work" / "replay_set" / REPLAY_SET_INDEX
    test_split = None
    if index.is_file():
        try:
            table = pd.read_csv(index, dtype=str)
        except (OSError, ValueError) as exc:
            raise EvaluationError(f"compare: {index}: unreadable replay set index ({exc})") from exc
        if {"subject_id", "split"} <= set(table.columns):
            test_split = frozenset(table.loc[table["split"] == "test", "subject_id"])
    return Run(
        label=label,
        folder=path,
        log=log,
        problems=[f"{label}: {p}" for p in problems],
        config=config,
        provenance=_load_mapping(path / "provenance.json"),
        test_split=test_split,
    )


def _ids(ids: set[str] | frozenset[str]) -> str:
    """``a, b, c, ... (n)``: the first sorted ids and their count."""
    shown = sorted(ids)
    more = ", ..." if len(shown) > _SHOWN_IDS else ""
    return f"{', '.join(shown[:_SHOWN_IDS])}{more} ({len(shown)})" if shown else "none"


def check_same_subjects(runs: Sequence[Run]) -> None:
    """Refuse runs whose test subjects differ from the first run's.

    Compared are the subject ids in the logs, the replay sets' test splits (where both folders
    have one) and the cohorts (``cohort.virtual`` / ``cohort.records`` of the resolved configs,
    where both have them: equal ids of different virtual cohorts are different people).

    Raises:
        EvaluationError: naming both folders and the subjects only in one of them.
    """
    ref = runs[0]
    for run in runs[1:]:
        pairs = [("episode logs", ref.subjects, run.subjects)]
        if ref.test_split is not None and run.test_split is not None:
            pairs.append(("test split", ref.test_split, run.test_split))
        for what, a, b in pairs:
            if a != b:
                raise EvaluationError(
                    f"compare: {ref.folder} and {run.folder} have different test subjects ({what}): "
                    f"only in {ref.folder}: {_ids(a - b)}; only in {run.folder}: {_ids(b - a)}. "
                    "Paired per-subject differences need the same test subjects: run the experiments "
                    "with the same cohort and splits."
                )
        for key in ("virtual", "records"):
            a = (ref.config.get("cohort") or {}).get(key)
            b = (run.config.get("cohort") or {}).get(key)
            if ref.config and run.config and a != b:
                raise EvaluationError(
                    f"compare: {ref.folder} and {run.folder} have the same test subject ids "
                    f"({_ids(ref.subjects)}) but different cohorts (cohort.{key}: {a} against {b}), "
                    "so the ids name different subjects"
                )


def _relabelled(run: Run) -> pd.DataFrame:
    """The run's log with ``policy``, ``family`` and ``base_policy`` prefixed ``<label>:``."""
    log = run.log.copy()
    for col in ("policy", "family"):
        log[col] = f"{run.label}:" + log[col].astype(str)
    base = log["base_policy"].astype("string")
    named = base.notna() & (base != "")
    log["base_policy"] = base.where(~named, f"{run.label}:" + base)
    return log


def combined_log(runs: Sequence[Run]) -> pd.DataFrame:
    """All runs' relabelled logs; the same policy of every run side by side (policy order, then run order)."""
    order: dict[str, int] = {}
    for run in runs:
        for p in run.policies:
            order.setdefault(p, len(order))
    frames = []
    for i, run in enumerate(runs):
        f = _relabelled(run)
        frames.append(f.assign(_rank=run.log["policy"].map(order).to_numpy() * len(runs) + i))
    log = pd.concat(frames, ignore_index=True).sort_values("_rank", kind="mergesort")
    return log.drop(columns="_rank").reset_index(drop=True)


def paired_differences(
    runs: Sequence[Run], n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """The same policy in each run against the reference run, paired per subject.

    The reference of a policy is the first run that has it (the first run for every policy both
    have); every later run with the policy is compared with it. Each subject's SBP / DBP MAE is
    averaged over that run's seeds (:func:`bprl.evaluation.subject_rate_points`); the difference
    is run − reference per subject, on the subjects both runs have.

    Returns:
        One row per (policy, run): ``policy``, ``reference``, ``run`` (labels), ``n_subjects`` and for
        ``<bp>`` in sbp, dbp: ``<bp>_mae_reference_mmhg`` / ``<bp>_mae_run_mmhg`` (means over those
        subjects), ``<bp>_diff_mmhg`` (mean difference), ``<bp>_diff_ci_lo_mmhg`` /
        ``<bp>_diff_ci_hi_mmhg`` (percentile bootstrap over subjects, :func:`bprl.evaluation.aggregate_seeds`
        on the per-subject differences with ``seed``), ``<bp>_n_better`` / ``<bp>_n_worse`` (subjects
        whose MAE is lower / higher in the run by more than :data:`TIE_MMHG`). Policies in only one
        run have no row.
    """
    points = {r.label: ev.subject_rate_points(r.log).set_index(["policy", "subject_id"]) for r in runs}
    policies: list[str] = []
    for run in runs:
        policies += [p for p in run.policies if p not in policies]
    rows = []
    for policy in policies:
        having = [r.label for r in runs if policy in r.policies]
        ref = having[0]
        a = points[ref].loc[policy]
        for label in having[1:]:
            b = points[label].loc[policy]
            common = sorted(set(a.index) & set(b.index))
            row: dict[str, Any] = dict(policy=policy, reference=ref, run=label, n_subjects=len(common))
            for bp in _BPS:
                x = a.loc[common, f"{bp}_mae_mmhg"].to_numpy(float)
                y = b.loc[common, f"{bp}_mae_mmhg"].to_numpy(float)
                d = y - x
                boot = ev.aggregate_seeds(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
                row[f"{bp}_mae_reference_mmhg"] = float(np.nanmean(x)) if len(x) else np.nan
                row[f"{bp}_mae_run_mmhg"] = float(np.nanmean(y)) if len(y) else np.nan
                row[f"{bp}_diff_mmhg"] = boot["mean"]
                row[f"{bp}_diff_ci_lo_mmhg"] = boot["mean_ci_lo"]
                row[f"{bp}_diff_ci_hi_mmhg"] = boot["mean_ci_hi"]
                row[f"{bp}_n_better"] = int(np.sum(d < -TIE_MMHG))
                row[f"{bp}_n_worse"] = int(np.sum(d > TIE_MMHG))
            rows.append(row)
    cols = ["policy", "reference", "run", "n_subjects"] + [f"{bp}_{c}" for bp in _BPS for c in _STATS]
    return pd.DataFrame(rows, columns=cols)


def paired_table(paired: pd.DataFrame) -> Table:
    """The report table of :func:`paired_differences` (MAE and differences in mmHg, two decimals)."""
    head = ["Policy", "Run − reference", "Subjects"]
    for bp in ("SBP", "DBP"):
        head += [f"{bp} MAE ref → run", f"{bp} diff [95 % CI]", f"{bp} better / worse"]
    body = []
    for _, r in paired.iterrows():
        cells = [str(r["policy"]), f"{r['run']} − {r['reference']}", format_value(int(r["n_subjects"]))]
        for bp in _BPS:
            cells += [
                f"{format_value(float(r[f'{bp}_mae_reference_mmhg']), 2)} → "
                f"{format_value(float(r[f'{bp}_mae_run_mmhg']), 2)}",
                f"{format_value(float(r[f'{bp}_diff_mmhg']), 2)} "
                f"[{format_value(float(r[f'{bp}_diff_ci_lo_mmhg']), 2)}, "
                f"{format_value(float(r[f'{bp}_diff_ci_hi_mmhg']), 2)}]",
                f"{int(r[f'{bp}_n_better'])} / {int(r[f'{bp}_n_worse'])}",
            ]
        body.append(cells)
    return head, body


def _run_summary(run: Run) -> dict[str, Any]:
    """What ``compared.json`` and the report's provenance record of one run."""
    git = run.provenance.get("git") if isinstance(run.provenance.get("git"), dict) else {}
    packages = run.provenance.get("packages") if isinstance(run.provenance.get("packages"), dict) else {}
    return {
        "label": run.label,
        "folder": str(run.folder),
        "experiment": run.config.get("name"),
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "bprl": packages.get("bprl"),
        "seeds": sorted(int(s) for s in pd.unique(run.log["seed"])),
        "policies": run.policies,
        "n_test_subjects": len(run.subjects),
    }


def _check_out(out: Path, runs: Sequence[Run]) -> None:
    """Refuse an output folder that is an input folder or a non-empty folder of something else."""
    resolved = out.resolve()
    for run in runs:
        if run.folder.resolve() == resolved:
            raise EvaluationError(f"compare: output folder {out} is the input folder of run {run.label}")
    if resolved.is_file() or (
        resolved.is_dir() and any(resolved.iterdir()) and not (resolved / COMPARED_FILE).is_file()
    ):
        raise EvaluationError(
            f"compare: output folder {out} exists and is not an earlier comparison "
            f"(no {COMPARED_FILE}); choose another with --out"
        )


def compare_results(
    folders: Sequence[str | Path],
    out: str | Path | None = None,
    labels: Sequence[str] | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Comparison:
    """Compare the policies of two or more results folders in one report (see the module docstring).

    Args:
        folders: results folders of ``bprl run``; the first is the reference.
        out: output folder (default ``results/compare_<label>_<label>...``).
        labels: one label per folder (default :func:`default_labels`).
        seed: seed of every bootstrap and of the report's subsampling.
        n_resamples: bootstrap resamples.
        confidence: interval coverage in ``(0, 1)``.

    Returns:
        The :class:`Comparison`.

    Raises:
        EvaluationError: fewer than two folders, the same folder twice, bad or duplicate labels, a
            folder that is not a results folder, runs with different test subjects, or an output
            folder that would overwrite something else.
    """
    paths = [Path(f) for f in folders]
    if len(paths) < 2:
        raise EvaluationError(f"compare: need at least two results folders, got {len(paths)}")
    twice = sorted({str(p) for p in paths if sum(q.resolve() == p.resolve() for q in paths) > 1})
    if twice:
        raise EvaluationError(f"compare: the same results folder given twice: {twice}")
    names = _check_labels(labels if labels else default_labels([p.resolve() for p in paths]), len(paths))
    runs = [read_run(p, n) for p, n in zip(paths, names, strict=True)]
    check_same_subjects(runs)
    target = Path(out) if out is not None else Path("results") / ("compare_" + "_".join(names))
    _check_out(target, runs)

    paired = paired_differences(runs, n_resamples=n_resamples, confidence=confidence, seed=seed)
    log = combined_log(runs)
    metrics = ev.compare_policies(log, n_resamples=n_resamples, confidence=confidence, seed=seed)
    problems = [p for run in runs for p in run.problems]
    unpaired = [(r.label, p) for r in runs for p in r.policies if p not in set(paired["policy"])]
    problems += [f"policy {p} is only in run {label}: no paired difference" for label, p in unpaired]
    summaries = [_run_summary(r) for r in runs]
    compared = {
        "reference": names[0],
        "runs": summaries,
        "test_subjects": sorted(runs[0].subjects),
        "bootstrap": {"seed": seed, "n_resamples": n_resamples, "confidence": confidence},
    }
    write_json_atomic(compared, target / COMPARED_FILE)
    with atomic_output(target / "paired_differences.csv") as tmp:
        paired.to_csv(tmp, index=False)
    with atomic_output(target / "metrics.csv") as tmp:
        metrics.to_csv(tmp, index=False)
    caption = (
        f"The same policy in each run against the reference run ({names[0]}, or the first run that has "
        "the policy), paired per test subject: each subject's MAE (mmHg) averaged over the run's seeds, "
        f"difference run − reference; mean over the {len(runs[0].subjects)} subjects with a "
        f"{confidence:.0%} percentile bootstrap interval over subjects, and the subjects whose MAE is "
        "lower (better) / higher (worse) in the run. The interval resamples subjects only: between runs "
        "that differ only in their seeds, a difference is seed-to-seed variation."
    )
    html, _md = write_report(
        target,
        log,
        metrics,
        config={"compare": compared},
        provenance={"runs": {s["label"]: s for s in summaries}, "bprl (comparison)": __version__},
        problems=problems,
        title="Comparison of runs: " + ", ".join(names),
        seed=seed,
        n_resamples=n_resamples,
        extra_tables=[("Paired per-subject differences between runs", caption, paired_table(paired))],
        subjects=results_subjects(runs[0].folder),
    )
    return Comparison(out=target, report=html, labels=names, paired=paired)
