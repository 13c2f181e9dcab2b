"""Standards metrics of calibration policies, computed from saved episode logs.

Everything here works on episode logs (:data:`bprl.tables.EPISODE_LOG_COLUMNS`),
never on a live environment. A *pair* is a step with a finite reference and a
finite corrected estimate (separately for SBP and DBP); the *error* is
``corrected - reference`` in mmHg. Exact operational definitions of each standard
are in :mod:`bprl.evaluation.standards` and ``docs/guide/evaluation.md``.

Modules:

* :mod:`~bprl.evaluation.logs`: episode-log checks and reading, cuff readings per
  hour, the state of the last cuff calibration at each step.
* :mod:`~bprl.evaluation.standards`: ISO 81060-2 / AAMI, BHS, IEEE 1708-2014 and
  ISO 81060-3 with their thresholds.
* :mod:`~bprl.evaluation.hypertension`: ACC/AHA 2017 categories, sensitivity,
  specificity and Cohen's kappa.
* :mod:`~bprl.evaluation.statistics`: bootstrap intervals over subjects, mean and
  interquartile mean (IQM) over seeds.
* :mod:`~bprl.evaluation.pareto`: the Pareto front of policies on two costs.
* :mod:`~bprl.evaluation.agent_comparison`: learned policies against the best classical rule at
  the same cuff rate, paired per subject.
* :mod:`~bprl.evaluation.population`: the test subjects and ISO 81060-2's sample requirements.
* :mod:`~bprl.evaluation.evaluate`: the tables (:func:`evaluate_log`,
  :func:`compare_policies`, :func:`evaluate_subjects`, :func:`evaluate_change_bins`).

Every name of the former single module ``bprl/evaluation.py`` is re-exported here.
"""

from __future__ import annotations

from bprl.errors import EvaluationError
from bprl.evaluation.agent_comparison import AGENT_COMPARISON_COLUMNS, agents_against_best_rule
from bprl.evaluation.cuff_rate import (
    BOUND_POLICIES,
    COMPARE_RATES_PER_H,
    compare_rates,
    cuff_rate_curves,
    is_bound_policy,
    paired_at_rate,
    subject_rate_points,
)
from bprl.evaluation.evaluate import (
    compare_policies,
    evaluate_change_bins,
    evaluate_log,
    evaluate_rhythm,
    evaluate_subjects,
)
from bprl.evaluation.hypertension import BP_CATEGORIES, bp_category, cohen_kappa, hypertension_detection
from bprl.evaluation.logs import (
    BP_KINDS,
    EPISODE_KEYS,
    annotate_calibration,
    check_episode_log,
    cuffs_per_hour,
    episode_durations_h,
    read_episode_logs,
    results_logs,
    rollout_status,
)
from bprl.evaluation.pareto import deployable_front, pareto_front
from bprl.evaluation.population import (
    ISO81060_2_BP_REQUIREMENTS,
    iso81060_2_sample_requirements,
    test_population,
)
from bprl.evaluation.safety import base_safety
from bprl.evaluation.standards import (
    AAMI_C2_ERROR_MMHG,
    AAMI_C2_PROBABILITY,
    AAMI_MEAN_LIMIT_MMHG,
    AAMI_MIN_SUBJECTS,
    AAMI_SD_LIMIT_MMHG,
    BHS_GRADES,
    BHS_LIMITS_MMHG,
    CHANGE_BIN_EDGES_MMHG,
    IEEE_GRADES,
    ISO3_APE_MEDIAN_LIMIT_PCT,
    ISO3_APE_P85_LIMIT_PCT,
    ISO3_MEAN_LIMIT_MMHG,
    ISO3_MIN_CHANGE_MMHG,
    ISO3_SD_LIMIT_MMHG,
    aami_criteria,
    aami_sd_limit,
    bhs_grade,
    change_bin_labels,
    change_bins,
    error_stats,
    ieee1708,
    ieee1708_grade,
    iso81060_3,
    verdict,
)
from bprl.evaluation.statistics import (
    aggregate_seeds,
    as_float_array,
    bootstrap_subjects,
    iqm,
    percentile_interval,
)

# private helpers of the former single module, kept importable under their old names
_as_float = as_float_array
_percentile_interval = percentile_interval

__all__ = [
    "AAMI_C2_ERROR_MMHG",
    "AAMI_C2_PROBABILITY",
    "AAMI_MEAN_LIMIT_MMHG",
    "AAMI_MIN_SUBJECTS",
    "AAMI_SD_LIMIT_MMHG",
    "AGENT_COMPARISON_COLUMNS",
    "BHS_GRADES",
    "BHS_LIMITS_MMHG",
    "BOUND_POLICIES",
    "BP_CATEGORIES",
    "BP_KINDS",
    "CHANGE_BIN_EDGES_MMHG",
    "COMPARE_RATES_PER_H",
    "EPISODE_KEYS",
    "IEEE_GRADES",
    "ISO3_APE_MEDIAN_LIMIT_PCT",
    "ISO3_APE_P85_LIMIT_PCT",
    "ISO3_MEAN_LIMIT_MMHG",
    "ISO3_MIN_CHANGE_MMHG",
    "ISO3_SD_LIMIT_MMHG",
    "ISO81060_2_BP_REQUIREMENTS",
    "EvaluationError",
    "aami_criteria",
    "aami_sd_limit",
    "agents_against_best_rule",
    "aggregate_seeds",
    "annotate_calibration",
    "as_float_array",
    "base_safety",
    "bhs_grade",
    "bootstrap_subjects",
    "bp_category",
    "change_bin_labels",
    "change_bins",
    "check_episode_log",
    "cohen_kappa",
    "compare_policies",
    "compare_rates",
    "cuff_rate_curves",
    "cuffs_per_hour",
    "deployable_front",
    "episode_durations_h",
    "error_stats",
    "evaluate_change_bins",
    "evaluate_log",
    "evaluate_rhythm",
    "evaluate_subjects",
    "hypertension_detection",
    "ieee1708",
    "ieee1708_grade",
    "iqm",
    "is_bound_policy",
    "iso81060_2_sample_requirements",
    "iso81060_3",
    "paired_at_rate",
    "pareto_front",
    "percentile_interval",
    "read_episode_logs",
    "results_logs",
    "rollout_status",
    "subject_rate_points",
    "test_population",
    "verdict",
]
