"""Experiment files, the resumable experiment runner, and its local / Ray backends.

An experiment file (YAML) names a cohort, how its subjects are split, the
feature and estimator settings, an environment spec, the policies to compare
and the seeds. :func:`load_experiment` validates it (:class:`ExperimentConfig`,
one pydantic model nesting the stages' own specs) and raises
:class:`bprl.errors.ConfigError` naming the bad field before any work starts.
:func:`run_experiment` then builds whatever is missing as a chain of *units*
and writes a results folder::

    results/<name>/
      .bprl-results             marks the folder as the runner's own (--no-resume clears only such folders)
      config.resolved.yaml      the validated experiment, paths resolved
      provenance.json           package versions, git commit, python, platform, stage timings
      failures.csv              units skipped after a BprlError (unit, error)
      logs/<policy>__seed<k>.parquet   episode logs on the test subjects
      metrics.csv, metrics.json        from bprl.evaluation.compare_policies
      figures/, report.html, report.md from bprl.report.write_report
      work/                     cohort/, features/ (replay-table cache), estimator/, replay_set/, agents/
      state/<stage>/<unit>.json completion markers (fingerprint, status, seconds)

Every unit (the cohort, one record's replay table, the estimator, the replay
set, one agent per (agent, seed), one rollout per (policy, seed)) writes its
output to a temporary path that is renamed into place, then a completion
marker holding a fingerprint of its inputs. A run started again skips every
unit whose marker and output exist with the same fingerprint, so a killed run
resumes where it stopped and ends with the same results as an uninterrupted
one. Units of a stage run in parallel on a backend: a local process pool
(``workers`` processes; 1 = in-process) or a Ray cluster.

The results folder is identified by its resolved path (``results/x``,
``$PWD/results/x`` and a symlink to it are one folder); a run removes the
temporary files and folders that killed units left behind (``.<name>.*.tmp*``,
``.cohort-view-*``) before it starts.

Modules:

* :mod:`~bprl.experiments.schema` -- :class:`ExperimentConfig` and its sections, :data:`LIMITS`;
* :mod:`~bprl.experiments.loading` -- :func:`load_experiment`, :class:`Experiment`, :func:`expand_path`;
* :mod:`~bprl.experiments.subject_splits` -- the experiment's split of subjects (:func:`assign_splits`);
* :mod:`~bprl.experiments.paths` -- the results folder: marker, leftovers, clearing;
* :mod:`~bprl.experiments.units` -- :class:`Unit`, :func:`execute_unit`, :func:`fingerprint`;
* :mod:`~bprl.experiments.backends` -- :class:`LocalBackend`, :class:`RayBackend`, :func:`make_backend`;
* :mod:`~bprl.experiments.tasks` -- the functions the units call (:class:`Stages`, :func:`default_stages`);
* :mod:`~bprl.experiments.state` -- :class:`RunContext`, :class:`RunState`, running a stage's units;
* :mod:`~bprl.experiments.stages` -- the stages, one class each, in :data:`PIPELINE` order;
* :mod:`~bprl.experiments.outputs` -- metrics, report, provenance and failures files;
* :mod:`~bprl.experiments.runner` -- :func:`run_experiment`, :func:`rebuild_report`, :func:`current_logs`.
"""

from __future__ import annotations

from bprl.estimator.config import MAX_EPOCHS
from bprl.experiments.backends import Backend, LocalBackend, RayBackend, make_backend
from bprl.experiments.loading import REPO_ROOT, Experiment, expand_path, load_experiment
from bprl.experiments.outputs import read_logs, write_metrics, write_results, write_run_info
from bprl.experiments.paths import (
    RESULTS_MARKER,
    clear_results,
    is_results_folder,
    prepare_results,
    remove_temp_leftovers,
    results_location,
)
from bprl.experiments.runner import current_logs, rebuild_report, run_experiment
from bprl.experiments.schema import (
    LIMITS,
    MAX_HOURS_PER_SUBJECT,
    MAX_RESAMPLES,
    MAX_SEED,
    MAX_SUBJECTS,
    MAX_TIMESTEPS,
    MAX_WORKERS,
    NAME_PATTERN,
    BackendSpec,
    BudgetSpec,
    CohortSourcesSpec,
    EnvSpec,
    EstimatorSpec,
    EvaluationSpec,
    ExperimentConfig,
    PlainName,
    PolicySpec,
    Seed,
    SplitSpec,
    VirtualCohortSpec,
)
from bprl.experiments.stages import PIPELINE, Stage, env_settings
from bprl.experiments.state import RunContext, RunState, run_units
from bprl.experiments.subject_splits import assign_splits
from bprl.experiments.tasks import (
    Stages,
    default_stages,
    stage_agent,
    stage_cohort,
    stage_estimator,
    stage_evaluate,
    stage_features,
    stage_list_real,
    stage_list_virtual,
    stage_replay_set,
    stage_report,
    stage_rollout,
)
from bprl.experiments.units import Unit, UnitResult, execute_unit, fingerprint, unit_is_complete
from bprl.policies import known_calibrators
from bprl.provenance import provenance
from bprl.splits import split_counts

#: the experiment's ``cohort`` section under its name before issue 12 (not :class:`bprl.cohort.CohortSpec`)
CohortSpec = CohortSourcesSpec

# names used before issue 12 (tests/test_install.py and tests/test_experiments.py call some)
_run_stage = run_units
_clear_results = clear_results
_prepare_results = prepare_results
_is_results_folder = is_results_folder

__all__ = [
    "LIMITS",
    "MAX_EPOCHS",
    "MAX_HOURS_PER_SUBJECT",
    "MAX_RESAMPLES",
    "MAX_SEED",
    "MAX_SUBJECTS",
    "MAX_TIMESTEPS",
    "MAX_WORKERS",
    "NAME_PATTERN",
    "PIPELINE",
    "REPO_ROOT",
    "RESULTS_MARKER",
    "Backend",
    "BackendSpec",
    "BudgetSpec",
    "CohortSourcesSpec",
    "EnvSpec",
    "EstimatorSpec",
    "EvaluationSpec",
    "Experiment",
    "ExperimentConfig",
    "LocalBackend",
    "PlainName",
    "PolicySpec",
    "RayBackend",
    "RunContext",
    "RunState",
    "Seed",
    "SplitSpec",
    "Stage",
    "Stages",
    "Unit",
    "UnitResult",
    "VirtualCohortSpec",
    "assign_splits",
    "clear_results",
    "current_logs",
    "default_stages",
    "env_settings",
    "execute_unit",
    "expand_path",
    "fingerprint",
    "known_calibrators",
    "load_experiment",
    "make_backend",
    "provenance",
    "read_logs",
    "rebuild_report",
    "remove_temp_leftovers",
    "results_location",
    "run_experiment",
    "run_units",
    "split_counts",
    "stage_agent",
    "stage_cohort",
    "stage_estimator",
    "stage_evaluate",
    "stage_features",
    "stage_list_real",
    "stage_list_virtual",
    "stage_replay_set",
    "stage_report",
    "stage_rollout",
    "unit_is_complete",
    "write_metrics",
    "write_results",
    "write_run_info",
]
