"""Calibrators that track the estimator's error with a Kalman filter fit on training subjects.

The error ``e(t) = reference - estimate`` of each of SBP and DBP is modelled (see
:mod:`bprl.policies.fitting`) as ``e = beta + u(t) + g * (est(t) - c) + w``: a per-subject constant
``beta``, an Ornstein-Uhlenbeck deviation ``u`` (time constant ``tau``, variance ``var_ou``), an
optional gain error ``g`` (the reference moves ``1 + g`` mmHg per mmHg of estimate; ``c`` the
population centre, 120 / 70 mmHg) and white noise ``w``. The filter's state is ``x = [beta, u,
g]`` with mean ``m`` and covariance ``P``; between readings (Kalman 1960; the OU transition of
Gardiner, *Stochastic Methods*, 4.5.4)::

    a = exp(-dt / tau):   m_u <- a m_u,   P <- F P F^T + diag(0, var_ou (1 - a^2), 0),  F = diag(1, a, 1)

A successful reading gives ``z = reading - est = H x + noise``, ``H = [1, 1, est - c]``,
``R = var_white + cuff_sd^2``; then ``K = P H^T / (H P H^T + R)``, ``m += K (z - H m)``,
``P -= K H P``. The correction in force is ``E[e(t)] = H(t) m(t)`` (set as the offset at gain 1);
its variance ``H(t) P(t) H(t)^T`` is the filter's predicted error variance.

Three rules use it, each with a reading *trigger* set so that it meets its per-hour budget on the
training subjects (:func:`trigger_for_rate`: the schedule of a linear-Gaussian filter does not
depend on the readings' values, so it is simulated once from the features):

* ``kalman_ou`` (:class:`KalmanOUCalibrator`): offset only; the variance grows with time alone, so
  its readings come evenly spaced, each averaged with the filter's memory;
* ``rls_gain`` (:class:`RLSGainCalibrator`): offset and gain; a reading at an estimate far from the
  earlier readings' levels tells the gain, one at the same level does not, so the predicted
  variance (and the trigger) depends on where the estimate is;
* ``variance_trigger`` (:class:`VarianceTriggerCalibrator`): as ``kalman_ou``, plus variance that
  grows with the squared PAT and HR changes since the last reading (fit on training subjects):
  it reads when the features say the error has likely moved.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bprl.errors import ConfigError
from bprl.policies.base import Calibrator
from bprl.policies.fitting import (
    EST_CENTRE_MMHG,
    ErrorModel,
    TrainingSubjects,
    fit_error_model,
    fit_feature_change,
    fit_gain_prior,
)

__all__ = [
    "KalmanOUCalibrator",
    "RLSGainCalibrator",
    "VarianceTriggerCalibrator",
    "trigger_for_rate",
]

# per BP: m (3), P (3x3 = 9); then per environment: time of the last update (h), started flag,
# the previous step's estimate SBP/DBP (a reading observed now was taken there)
_M, _P = 0, 3
_PER_BP = 12
_T, _STARTED, _EST_PREV = 2 * _PER_BP, 2 * _PER_BP + 1, 2 * _PER_BP + 2
_STATE = 2 * _PER_BP + 4


class _FilterCalibrator(Calibrator):
    """Base of the Kalman-filter calibrators (see the module docstring)."""

    fits = True
    state_size = _STATE
    #: model a gain error (state g) / variance growing with feature changes
    uses_gain: ClassVar[bool] = False
    uses_features: ClassVar[bool] = False

    def __init__(
        self,
        cuffs_per_h: float | None = None,
        request_sd_mmhg: float | None = None,
        min_interval_min: float = 5.0,
        cuff_sd_mmhg: tuple[float, float] | None = None,
        read_at_boundary: bool = True,
        **kw: Any,
    ) -> None:
        """Reading trigger: ``request_sd_mmhg`` (predicted SBP error SD), or set by :meth:`fit` to
        meet ``cuffs_per_h`` (default: the env's ``cuff.budget_per_h``, else 1 per hour) on the
        training subjects; no reading sooner than ``min_interval_min`` after the last one.
        ``cuff_sd_mmhg``: the readings' error SDs (SBP, DBP; default: the env's cuff model).
        ``read_at_boundary``: a boundary (segment, PPG timing offset) makes the OU part and the
        gain as uncertain as at the start (PAT can jump there).
        """
        super().__init__(**kw)
        if cuffs_per_h is not None and cuffs_per_h <= 0:
            raise ConfigError(f"cuffs_per_h: must be > 0, got {cuffs_per_h!r}")
        if request_sd_mmhg is not None and request_sd_mmhg <= 0:
            raise ConfigError(f"request_sd_mmhg: must be > 0, got {request_sd_mmhg!r}")
        self.cuffs_per_h = cuffs_per_h
        self.request_var = None if request_sd_mmhg is None else float(request_sd_mmhg) ** 2
        self.min_interval_h = float(min_interval_min) / 60.0
        self._cuff_sd_given = cuff_sd_mmhg is not None
        sd = np.asarray((5.0, 4.0) if cuff_sd_mmhg is None else cuff_sd_mmhg, float).reshape(-1)
        if sd.shape != (2,) or (sd <= 0).any():
            raise ConfigError(f"cuff_sd_mmhg: expected two SDs > 0 (SBP, DBP), got {cuff_sd_mmhg!r}")
        self.cuff_var = sd**2
        self.read_at_boundary = bool(read_at_boundary)
        self.models: tuple[ErrorModel, ErrorModel] | None = None
        self.gain_mean = np.zeros(2)
        self.gain_var = np.zeros(2)
        self.var_per_ms2 = np.zeros(2)
        self.var_per_bpm2 = np.zeros(2)
        #: predicted error variance (n, 2) of the last decide, mmHg^2 (None before the first)
        self.last_var: np.ndarray | None = None

    def configure_for(self, env: Any) -> None:
        """Adopt the env's step sizes and budget, and its cuff noise unless ``cuff_sd_mmhg`` was given."""
        super().configure_for(env)
        if not self._cuff_sd_given:
            cuff = env.unwrapped.cuff
            self.cuff_var = np.array([max(cuff.sd_sbp_mmhg, 0.1), max(cuff.sd_dbp_mmhg, 0.1)]) ** 2

    # ------------------------------------------------------------------ fitting
    def target_rate(self) -> float:
        """Readings per hour the trigger is set for: ``cuffs_per_h``, the env's budget_per_h, or 1."""
        return float(self.cuffs_per_h or self.budget_per_h or 1.0)

    def fit(self, train: TrainingSubjects) -> dict[str, Any]:
        """Fit the error models (and gain prior / feature variance) and the trigger on ``train``."""
        self.models = fit_error_model(train)
        out: dict[str, Any] = {"sbp": self.models[0].as_dict(), "dbp": self.models[1].as_dict()}
        if self.uses_gain:
            prior = fit_gain_prior(train)
            self.gain_mean, self.gain_var = np.array(prior["mean"]), np.array(prior["var"])
            out["gain_prior"] = prior
        if self.uses_features:
            fc = fit_feature_change(train, self.models)
            self.var_per_ms2, self.var_per_bpm2 = np.array(fc.var_per_ms2), np.array(fc.var_per_bpm2)
            out["var_per_ms2"], out["var_per_bpm2"] = fc.var_per_ms2, fc.var_per_bpm2
        if self.request_var is None:
            rate = self.target_rate()
            self.request_var = trigger_for_rate(self, train, rate)
            out["target_cuffs_per_h"] = rate
        out["request_sd_mmhg"] = float(np.sqrt(self.request_var))
        self.fitted = out
        return out

    # ------------------------------------------------------------------ the filter
    def _params(self) -> tuple[np.ndarray, ...]:
        """(mu, var_beta, var_ou, tau_h, var_white) as (2,) arrays."""
        if self.models is None:
            raise ConfigError(f"calibrator {self.name!r}: call fit(training_subjects) before predicting")
        ms = self.models
        return tuple(
            np.array([getattr(m, k) for m in ms]) for k in ("mu", "var_beta", "var_ou", "tau_h", "var_white")
        )

    def initial_state(self, n: int) -> np.ndarray:
        """Prior: mean (mu, 0, gain mean), covariance diag(var_beta, var_ou, gain var); no reading."""
        st = np.zeros((n, self.state_size))
        if self.models is None:
            return st
        mu, vb, vo, _, _ = self._params()
        for j in (0, 1):
            o = j * _PER_BP
            st[:, o + _M] = mu[j]
            st[:, o + _M + 2] = self.gain_mean[j] if self.uses_gain else 0.0
            p = np.diag([vb[j], vo[j], self.gain_var[j] if self.uses_gain else 0.0])
            st[:, o + _P : o + _P + 9] = p.reshape(-1)
        return st

    def _predict(self, state: np.ndarray, now_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, 2, 3) and covariance (n, 2, 3, 3) propagated from the last update to ``now_h``."""
        _, _, vo, tau, _ = self._params()
        n = state.shape[0]
        m = np.stack([state[:, j * _PER_BP + _M : j * _PER_BP + _M + 3] for j in (0, 1)], 1)
        p = np.stack([state[:, j * _PER_BP + _P : j * _PER_BP + _P + 9].reshape(n, 3, 3) for j in (0, 1)], 1)
        dt = np.maximum(now_h - state[:, _T], 0.0)
        a = np.exp(-dt[:, None] / tau[None, :])  # (n, 2)
        m = m.copy()
        m[:, :, 1] *= a
        f = np.ones((n, 2, 3))
        f[:, :, 1] = a
        p = p * f[:, :, :, None] * f[:, :, None, :]
        p[:, :, 1, 1] += vo[None, :] * (1.0 - a * a)
        return m, p

    def _h(self, est: np.ndarray) -> np.ndarray:
        """Observation rows H (n, 2, 3) at estimates ``est`` (n, 2)."""
        h = np.ones((est.shape[0], 2, 3))
        h[:, :, 2] = (est - np.array(EST_CENTRE_MMHG)) if self.uses_gain else 0.0
        return h

    def _store(
        self, state: np.ndarray, rows: np.ndarray, m: np.ndarray, p: np.ndarray, now_h: np.ndarray
    ) -> None:
        """Write mean and covariance of ``rows`` into the state, updated at ``now_h``."""
        for j in (0, 1):
            o = j * _PER_BP
            state[rows, o + _M : o + _M + 3] = m[rows, j]
            state[rows, o + _P : o + _P + 9] = p[rows, j].reshape(-1, 9)
        state[rows, _T] = now_h[rows]

    def _boundary(self, p: np.ndarray, at: np.ndarray) -> None:
        """At a segment boundary the OU part and the gain are as uncertain as at the start."""
        _, _, vo, _, _ = self._params()
        for j in (0, 1):
            p[at, j, 1, :] = 0.0
            p[at, j, :, 1] = 0.0
            p[at, j, 1, 1] = vo[j]
            if self.uses_gain:
                p[at, j, 2, :] = 0.0
                p[at, j, :, 2] = 0.0
                p[at, j, 2, 2] = self.gain_var[j]

    def predicted_var(
        self, p: np.ndarray, h: np.ndarray, dpat_ms: np.ndarray, dhr_bpm: np.ndarray
    ) -> np.ndarray:
        """Predicted variance (n, 2) of the correction ``H m`` now, plus the feature-driven growth."""
        var = np.einsum("nbi,nbij,nbj->nb", h, p, h)
        if self.uses_features:
            var = var + self.var_per_ms2[None, :] * dpat_ms[:, None] ** 2
            var = var + self.var_per_bpm2[None, :] * dhr_bpm[:, None] ** 2
        return var

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Update on a new reading, predict now, request when the predicted SBP variance is too large."""
        _, _, _, _, vw = self._params()
        now = s["elapsed_h"]
        est = np.stack([s["est_sbp"], s["est_dbp"]], 1)
        m, p = self._predict(state, now)
        if self.read_at_boundary:
            at = s["segment_start"] > 0.5
            if at.any():
                self._boundary(p, at)
                self._store(state, np.flatnonzero(at), m, p, now)
        new = s["new_reading"] > 0.5
        if new.any():
            # the reading was taken at the previous step: z = reading - the estimate then
            h = self._h(state[:, _EST_PREV : _EST_PREV + 2])
            z = np.stack([s["cuff_minus_est_sbp"], s["cuff_minus_est_dbp"]], 1)
            r = vw[None, :] + self.cuff_var[None, :]
            hp = np.einsum("nbi,nbij->nbj", h, p)
            sv = np.einsum("nbj,nbj->nb", hp, h) + r
            k = hp / sv[:, :, None]
            innov = z - np.einsum("nbi,nbi->nb", h, m)
            m2 = m + k * innov[:, :, None]
            p2 = p - k[:, :, :, None] * hp[:, :, None, :]
            rows = np.flatnonzero(new)
            self._store(state, rows, m2, p2, now)
            state[rows, _STARTED] = 1.0
            m[new], p[new] = m2[new], p2[new]
        state[:, _EST_PREV : _EST_PREV + 2] = est
        h_now = self._h(est)
        var = self.predicted_var(p, h_now, s["dpat_ms"], s["dhr_bpm"])
        self.last_var = var  # (n, 2): what a residual agent sees as the filter's uncertainty
        since_h = s["since_cuff_h"]
        request = (s["has_cuff"] < 0.5) | ((var[:, 0] >= self.request_var) & (since_h >= self.min_interval_h))
        wanted = np.einsum("nbi,nbi->nb", h_now, m)
        wanted = np.where(
            state[:, _STARTED : _STARTED + 1] > 0, wanted, np.stack([s["offset_sbp"], s["offset_dbp"]], 1)
        )
        return request, wanted


class KalmanOUCalibrator(_FilterCalibrator):
    """Offset tracked by an Ornstein-Uhlenbeck Kalman filter fit to the training subjects' error variogram.

    See :mod:`bprl.policies.filters`. Readings come when the predicted SBP error SD, growing with
    time alone, reaches the trigger that meets the per-hour budget on the training subjects.
    """

    name = "kalman_ou"


class RLSGainCalibrator(_FilterCalibrator):
    """Offset and gain tracked by a Kalman filter (recursive least squares with forgetting).

    See :mod:`bprl.policies.filters`: the gain prior (mean and spread of per-subject gain errors) is
    fit on training subjects; the predicted variance, and so the trigger, grows when the estimate
    moves away from the levels of earlier readings.
    """

    name = "rls_gain"
    uses_gain = True


class VarianceTriggerCalibrator(_FilterCalibrator):
    """OU Kalman offset with a variance that grows with PAT and HR changes: reads when features move.

    See :mod:`bprl.policies.filters`: the growth per squared ms of PAT change and per squared bpm
    of HR change is fit on training subjects; the trigger is set to meet the per-hour budget there.
    """

    name = "variance_trigger"
    uses_features = True


def trigger_for_rate(cal: _FilterCalibrator, train: TrainingSubjects, rate_per_h: float) -> float:
    """Predicted-variance trigger (SBP, mmHg^2) at which ``cal`` reads ``rate_per_h`` times an hour.

    The reading times of a linear-Gaussian filter do not depend on the readings' values, only on
    time, the estimate's level (gain) and the features, so the schedule is simulated on the training
    subjects' series (no budget) and the trigger found by bisection on its logarithm (30 steps).

    Raises:
        ConfigError: ``rate_per_h`` is not positive.
    """
    if rate_per_h <= 0:
        raise ConfigError(f"cuffs_per_h: must be > 0, got {rate_per_h!r}")
    series = _padded_series(train)
    lo, hi = np.log(1e-2), np.log(1e5)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if _simulated_rate(cal, series, float(np.exp(mid))) > rate_per_h:
            lo = mid  # too many readings: raise the trigger
        else:
            hi = mid
    return float(np.exp(hi))


def _padded_series(train: TrainingSubjects) -> dict[str, np.ndarray]:
    """The training series padded to (steps, subjects), with a live mask and total hours."""
    n, tmax = len(train.t_h), max(len(t) for t in train.t_h)
    out = {k: np.zeros((tmax, n)) for k in ("t", "pat", "hr", "est_sbp", "est_dbp")}
    live = np.zeros((tmax, n), bool)
    hours = 0.0
    for i, t in enumerate(train.t_h):
        k = len(t)
        live[:k, i] = True
        out["t"][:, i] = np.concatenate([t - t[0], np.full(tmax - k, t[-1] - t[0])])
        for key, arr in (("pat", train.pat_ms[i]), ("hr", train.hr_bpm[i])):
            out[key][:k, i] = arr
            out[key][k:, i] = arr[-1]
        for j, key in enumerate(("est_sbp", "est_dbp")):
            e = train.est[i][:, j]
            e = np.where(np.isfinite(e), e, EST_CENTRE_MMHG[j])
            out[key][:k, i] = e
            out[key][k:, i] = e[-1]
        hours += float(t[-1] - t[0]) + (float(np.median(np.diff(t))) if k > 1 else 0.0)
    out["live"] = live
    out["hours"] = np.array(hours)
    return out


def _simulated_rate(cal: _FilterCalibrator, series: dict[str, np.ndarray], request_var: float) -> float:
    """Readings per hour of ``cal`` with trigger ``request_var`` on padded training series (no budget)."""
    saved = cal.request_var
    cal.request_var = request_var
    try:
        live = series["live"]
        n = live.shape[1]
        state = cal.initial_state(n)
        zeros = np.zeros(n)
        last, pat_at, hr_at, has, new = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
        reads = 0
        for k in range(live.shape[0]):
            t, pat, hr = series["t"][k], series["pat"][k], series["hr"][k]
            s = {
                "elapsed_h": t,
                "est_sbp": series["est_sbp"][k],
                "est_dbp": series["est_dbp"][k],
                "new_reading": new,
                "cuff_minus_est_sbp": zeros,
                "cuff_minus_est_dbp": zeros,
                "dpat_ms": np.where(has > 0, np.nan_to_num(pat - pat_at), 0.0),
                "dhr_bpm": np.where(has > 0, np.nan_to_num(hr - hr_at), 0.0),
                "since_cuff_h": t - last,
                "has_cuff": has,
                "offset_sbp": zeros,
                "offset_dbp": zeros,
                "segment_start": zeros,
            }
            req, _ = cal.decide(s, state)
            req &= live[k]
            reads += int(req.sum())
            new = req.astype(float)
            has = np.maximum(has, new)
            last = np.where(req, t, last)
            pat_at = np.where(req, pat, pat_at)
            hr_at = np.where(req, hr, hr_at)
        return reads / max(float(series["hours"]), 1e-9)
    finally:
        cal.request_var = saved
