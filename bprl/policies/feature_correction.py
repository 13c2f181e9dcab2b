"""Feature correction: between readings, correct the calibrated estimate from the feature changes.

After a reading at ``t0`` the calibrated estimate is right (up to the reading's noise); later, the
estimator misses part of the BP change. :class:`FeatureCorrectionCalibrator` adds a linear model
of the error change since the last reading::

    correction(t) = base correction + b_pat * (PAT(t) - PAT(t0)) + b_hr * (HR(t) - HR(t0))
                                    + b_est * (est(t) - est(t0))

with ``b`` fit on training subjects by ridge regression of ``e(t) - e(t0)`` on those changes
(:func:`bprl.policies.fitting.fit_feature_change`; ``e`` = reference - estimate). The ``b_est``
term corrects the population model's gain on within-subject changes. It wraps any calibrator
(``base``: ``periodic`` by default, or ``kalman_ou``, ``rls_gain``, ``variance_trigger``, ...),
which decides when to read and gives the base correction. After a boundary (a later record
segment, a PPG timing offset: ``segment_start`` in the observation) the PAT term is left out
until the next reading: the PAT change then holds the offset, not BP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bprl.errors import ConfigError
from bprl.policies.base import Calibrator
from bprl.policies.fitting import TrainingSubjects, fit_error_model, fit_feature_change

__all__ = ["FeatureCorrectionCalibrator"]

# own state: estimate at the last reading (SBP, DBP), base offsets then (SBP, DBP), started, prev
# est (SBP, DBP), a boundary since the last reading
_EST0, _OFF0, _STARTED, _PREV, _BOUNDARY = 0, 2, 4, 5, 7
_OWN = 8


class FeatureCorrectionCalibrator(Calibrator):
    """A calibrator (``base``) plus a linear correction from PAT, HR and estimate changes since the last reading.

    See :mod:`bprl.policies.feature_correction`. ``base_params`` are the base calibrator's
    parameters; the coefficients are fit on training subjects by :meth:`fit` (or given as
    ``coef``: ``[[b_pat, b_hr, b_est] for SBP, [...] for DBP]``).
    """

    name = "feature_correction"
    fits = True

    def __init__(
        self,
        base: str = "periodic",
        base_params: dict[str, Any] | None = None,
        coef: list[list[float]] | None = None,
        **kw: Any,
    ) -> None:
        """Wrap the calibrator ``base`` (a registry name) made with ``base_params``."""
        from bprl.policies.registry import make_calibrator  # the registry imports this module

        super().__init__(**kw)
        if base == "feature_correction":
            raise ConfigError("feature_correction: base cannot be feature_correction itself")
        self.base = make_calibrator(base, action_type=self.action_type, **(base_params or {}))
        self.coef = None if coef is None else np.asarray(coef, float).reshape(2, 3)
        self.state_size = _OWN + self.base.state_size  # type: ignore[misc]

    @property
    def last_var(self) -> np.ndarray | None:
        """The base filter's last posterior variance (n, 2), or None when the base has none: the
        uncertainty a residual agent on this calibrator sees (:mod:`bprl.policies.residual`)."""
        return getattr(self.base, "last_var", None)

    def configure_for(self, env: Any) -> None:
        """Configure this calibrator and its base for ``env``."""
        super().configure_for(env)
        self.base.configure_for(env)

    def fit(self, train: TrainingSubjects) -> dict[str, Any]:
        """Fit the base (when it fits) and the feature-change coefficients on ``train``."""
        out: dict[str, Any] = {}
        if self.base.fits:
            out["base"] = self.base.fit(train)
        if self.coef is None:
            # the base's error models when it fitted them (the same fit on the same subjects)
            models = getattr(self.base, "models", None) or fit_error_model(train)
            fc = fit_feature_change(train, models)
            self.coef = np.array(fc.coef)
            out["r2"] = list(fc.r2)
        out["coef"] = self.coef.tolist()
        self.fitted = out
        return out

    def initial_state(self, n: int) -> np.ndarray:
        """Own state zeroed, then the base's initial state."""
        st = np.zeros((n, self.state_size))
        st[:, _OWN:] = self.base.initial_state(n)
        return st

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The base's decision, its correction plus the feature-change term."""
        if self.coef is None:
            raise ConfigError(
                "feature_correction: call fit(training_subjects) or give coef before predicting"
            )
        base_state = state[:, _OWN:]
        request, wanted = self.base.decide(s, base_state)
        est = np.stack([s["est_sbp"], s["est_dbp"]], 1)
        offsets = np.stack([s["offset_sbp"], s["offset_dbp"]], 1)
        new = s["new_reading"] > 0.5
        if new.any():
            state[new, _EST0 : _EST0 + 2] = state[new, _PREV : _PREV + 2]
            # the base correction at the reading: its own, or the offsets the env recalibrated to
            base_now = offsets if wanted is None else wanted
            state[new, _OFF0 : _OFF0 + 2] = base_now[new]
            state[new, _STARTED] = 1.0
            state[new, _BOUNDARY] = 0.0
        # a boundary (record segment, PPG timing offset) since the last reading: the PAT change
        # since then holds the offset, not BP, so its term is left out until the next reading
        state[:, _BOUNDARY] = np.maximum(state[:, _BOUNDARY], s["segment_start"] > 0.5)
        state[:, _PREV : _PREV + 2] = est
        started = state[:, _STARTED] > 0
        if not started.any():
            return request, wanted
        dpat = np.where(state[:, _BOUNDARY] > 0, 0.0, s["dpat_ms"])
        dx = np.stack([np.repeat(dpat[:, None], 2, 1), np.repeat(s["dhr_bpm"][:, None], 2, 1)], 2)
        dest = est - state[:, _EST0 : _EST0 + 2]
        x = np.concatenate([dx, dest[:, :, None]], axis=2)  # (n, 2, 3)
        delta = np.einsum("nbk,bk->nb", x, self.coef)
        base_corr = state[:, _OFF0 : _OFF0 + 2] if wanted is None else wanted
        out = np.where(started[:, None], base_corr + delta, offsets if wanted is None else wanted)
        return request, out
