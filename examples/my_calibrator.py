"""A calibration rule written outside bprl: a cuff reading when PAT moved more than k SDs of its noise.

Use it without installing anything (from the repository root, or with this folder's parent on
``PYTHONPATH``)::

    from bprl.policies import make_calibrator, rollout

    policy = make_calibrator("examples.my_calibrator:PatSigmaCalibrator", k_sd=3.0)
    policy = make_calibrator("examples/my_calibrator.py:PatSigmaCalibrator", k_sd=3.0)  # by path

or in an experiment file: ``policies: [{calibrator: "examples.my_calibrator:PatSigmaCalibrator",
params: {k_sd: 3.0}, name: pat_sigma}]``. See docs/how-to/add-calibrator.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bprl.errors import ConfigError
from bprl.policies import Calibrator


class PatSigmaCalibrator(Calibrator):
    """Cuff reading when |PAT change since the last reading| exceeds ``k_sd`` times PAT's noise SD.

    PAT falls when BP rises, so a PAT change since the last reading that is large *for this
    subject* signals that the calibration may be out of date. What counts as large is learned
    on line: the rule keeps a running (Welford) SD of PAT's step-to-step changes, which for
    white measurement noise has the same scale as the change since a reading. Readings:

    * at the start (until one succeeds);
    * when ``|dPAT| > max(k_sd * SD, min_threshold_ms)``, once ``min_samples`` changes were seen,
      but not sooner than ``min_interval_min`` after the last reading;
    * at the latest ``max_interval_min`` after the last reading (None: never forced).

    Recurrent state per environment: ``[prev_dpat_ms, has_prev, n, mean_ms, m2_ms2]`` (the
    previous step's dPAT and the Welford sums of the step-to-step changes).
    """

    name = "pat_sigma"
    state_size = 5

    def __init__(
        self,
        k_sd: float = 3.0,
        min_threshold_ms: float = 2.0,
        min_samples: int = 10,
        min_interval_min: float = 5.0,
        max_interval_min: float | None = 120.0,
        **kw: Any,
    ) -> None:
        """Threshold in noise SDs, its floor (ms), warm-up changes, min / max interval (minutes)."""
        super().__init__(**kw)
        if k_sd <= 0 or min_threshold_ms < 0 or int(min_samples) < 2 or min_interval_min < 0:
            raise ConfigError(
                "pat_sigma: k_sd must be > 0, min_threshold_ms >= 0, min_samples >= 2, min_interval_min >= 0"
            )
        if max_interval_min is not None and max_interval_min <= min_interval_min:
            raise ConfigError("pat_sigma: max_interval_min must exceed min_interval_min")
        self.k_sd = float(k_sd)
        self.min_threshold_ms = float(min_threshold_ms)
        self.min_samples = int(min_samples)
        self.min_interval_min = float(min_interval_min)
        self.max_interval_min = None if max_interval_min is None else float(max_interval_min)

    def _update_noise(self, s: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
        """Add this step's PAT change to the running statistics; return PAT's noise SD (ms)."""
        dpat = s["dpat_ms"]
        # a change is only meaningful between two steps measured against the same reading
        use = (state[:, 1] > 0) & (s["new_reading"] < 0.5) & (s["has_cuff"] > 0.5)
        step = dpat - state[:, 0]
        n = state[:, 2] + use
        delta = np.where(use, step - state[:, 3], 0.0)
        mean = state[:, 3] + delta / np.maximum(n, 1.0)
        state[:, 4] += np.where(use, delta * (step - mean), 0.0)
        state[:, 2], state[:, 3] = n, mean
        state[:, 0] = dpat
        state[:, 1] = s["has_cuff"] > 0.5
        return np.sqrt(state[:, 4] / np.maximum(n - 1.0, 1.0))

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Request at the start, on a PAT change beyond the noise threshold, or when overdue."""
        sd_ms = self._update_noise(s, state)
        since_min = s["since_cuff_h"] * 60.0
        threshold_ms = np.maximum(self.k_sd * sd_ms, self.min_threshold_ms)
        moved = (
            (state[:, 2] >= self.min_samples)
            & (np.abs(s["dpat_ms"]) > threshold_ms)
            & (since_min >= self.min_interval_min)
        )
        if self.max_interval_min is not None:
            moved |= since_min >= self.max_interval_min - 1.0 / 60.0
        # None: keep the offsets; the env recalibrates them on each successful reading
        return (s["has_cuff"] < 0.5) | moved, None
