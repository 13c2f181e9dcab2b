"""What classical calibrators learn from training subjects: error dynamics and feature corrections.

A calibrator corrects the estimator's error ``e(t) = reference(t) - estimate(t)`` (the offset that
would make the estimate exact at gain 1). Its parameters are fit here, on the **training**
subjects only (:class:`TrainingSubjects`, built from the train split's replay arrays):

* :func:`fit_error_model` -- ``e(t) = beta + u(t) + w(t)``: a per-subject constant ``beta``
  (mean ``mu``, between-subject variance ``var_beta``), an Ornstein-Uhlenbeck deviation ``u``
  (stationary variance ``var_ou``, time constant ``tau_h``) and white noise ``w`` (``var_white``,
  the variogram's nugget). The within-subject variogram of such an error is
  ``gamma(lag) = var_white + var_ou * (1 - exp(-lag / tau_h))`` for lag > 0 (Ornstein & Uhlenbeck
  1930; the variogram fit of geostatistics, Cressie 1993 ch. 2): fit by least squares on the
  pooled empirical variogram, over a log grid of ``tau_h`` with non-negative variances.
* :func:`fit_gain_prior` -- the spread of per-subject gains: the slope of ``e`` on the centred
  estimate within each subject (a gain error of the population model), its mean and variance.
* :func:`fit_feature_change` -- a ridge regression of the change of the error since a reading on
  the changes of PAT, HR and the estimate since then (the "feature correction" between readings),
  and how much of the squared error change the squared PAT / HR changes explain (for a variance
  that grows when features move).

>>> rng = np.random.default_rng(0)
>>> t = np.arange(0, 6 * 3600, 30.0)
>>> m = simulate_error_model(rng, 40, t, mu=-3.0, var_beta=64.0, var_ou=100.0, tau_h=0.25, var_white=9.0)
>>> fit, _ = fit_error_model(m)
>>> round(fit.tau_h, 2), round(fit.var_ou / 10) * 10, round(fit.var_white)
(0.25, 100, 9)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bprl.errors import ConfigError

__all__ = [
    "ErrorModel",
    "FeatureChange",
    "TrainingSubjects",
    "fit_error_model",
    "fit_feature_change",
    "fit_gain_prior",
    "ou_variogram",
    "simulate_error_model",
    "training_subjects",
]

#: centre of the estimate in the gain terms, mmHg (SBP, DBP): the population's typical values
EST_CENTRE_MMHG = (120.0, 70.0)


@dataclass
class TrainingSubjects:
    """Per-subject series of the training subjects (what calibrators are fit on).

    Each list holds one array per subject, in the same order; BP in mmHg (NaN where absent),
    times in hours from the subject's start, PAT in ms, HR in bpm (carried forward).
    """

    subject_ids: list[str]
    t_h: list[np.ndarray]
    est: list[np.ndarray]  #: (T, 2) raw estimate SBP/DBP
    ref: list[np.ndarray]  #: (T, 2) reference SBP/DBP
    pat_ms: list[np.ndarray]
    hr_bpm: list[np.ndarray]

    def errors(self) -> list[np.ndarray]:
        """``reference - estimate`` per subject, (T, 2), NaN where either is absent."""
        return [r - e for r, e in zip(self.ref, self.est, strict=True)]


def training_subjects(data: object) -> TrainingSubjects:
    """The :class:`TrainingSubjects` of replay arrays (``env.unwrapped.data`` of a train-split env).

    Raises:
        ConfigError: no subject has both an estimate and a reference.
    """
    ids, t_h, est, ref, pat, hr = [], [], [], [], [], []
    for i, sid in enumerate(data.subject_ids):  # type: ignore[attr-defined]
        n = int(data.lengths[i])  # type: ignore[attr-defined]
        e, r = data.est[i, :n], data.ref[i, :n]  # type: ignore[attr-defined]
        if not (np.isfinite(e).all(axis=1) & np.isfinite(r).all(axis=1)).any():
            continue
        ids.append(str(sid))
        t_h.append(data.t_end_s[i, :n] / 3600.0)  # type: ignore[attr-defined]
        est.append(e.copy())
        ref.append(r.copy())
        pat.append(data.pat_carry[i, :n].copy())  # type: ignore[attr-defined]
        hr.append(data.hr_carry[i, :n].copy())  # type: ignore[attr-defined]
    if not ids:
        raise ConfigError("training subjects: none has both an estimate and a reference to fit on")
    return TrainingSubjects(ids, t_h, est, ref, pat, hr)


# ------------------------------------------------------------------- error dynamics
@dataclass(frozen=True)
class ErrorModel:
    """``e(t) = beta + u(t) + w(t)`` for one of SBP / DBP (see the module docstring); mmHg, hours."""

    mu: float  #: population mean of the error, mmHg
    var_beta: float  #: between-subject variance of the per-subject constant, mmHg^2
    var_ou: float  #: stationary variance of the OU deviation, mmHg^2
    tau_h: float  #: OU time constant, hours
    var_white: float  #: white-noise variance (nugget), mmHg^2

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain dict."""
        return {k: float(v) for k, v in asdict(self).items()}


def ou_variogram(lag_h: np.ndarray, var_ou: float, tau_h: float, var_white: float) -> np.ndarray:
    """``var_white + var_ou * (1 - exp(-lag / tau_h))``: the variogram of OU plus white noise, lag > 0."""
    return var_white + var_ou * (1.0 - np.exp(-np.asarray(lag_h, float) / tau_h))


def _empirical_variogram(
    errors: list[np.ndarray], t_h: list[np.ndarray], lags: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled semivariance of one column at lags given in steps: (lag hours, gamma, pair counts)."""
    lag_h, gam, cnt = [], [], []
    for k in lags:
        acc, n, hours = 0.0, 0, 0.0
        for e, t in zip(errors, t_h, strict=True):
            if len(e) <= k:
                continue
            d = e[k:] - e[:-k]
            ok = np.isfinite(d)
            if ok.any():
                acc += float(np.sum(d[ok] ** 2))
                n += int(ok.sum())
                hours += float(np.sum((t[k:] - t[:-k])[ok]))
        if n >= 10:
            lag_h.append(hours / n)
            gam.append(0.5 * acc / n)
            cnt.append(n)
    return np.array(lag_h), np.array(gam), np.array(cnt, float)


def _lag_steps(t_h: list[np.ndarray], max_lag_h: float) -> np.ndarray:
    """Lags in steps, log-spaced from 1 to ``max_lag_h`` (at the median step length)."""
    steps = [np.median(np.diff(t)) for t in t_h if len(t) > 1]
    if not steps:
        raise ConfigError("training subjects: every record is a single step; nothing to fit")
    dt = float(np.median(steps))
    kmax = max(2, int(max_lag_h / dt))
    return np.unique(np.round(np.geomspace(1, kmax, 40)).astype(int))


def _fit_column(errors: list[np.ndarray], t_h: list[np.ndarray], max_lag_h: float) -> ErrorModel:
    """Fit :class:`ErrorModel` to one column (SBP or DBP) of the errors."""
    lag_h, gam, cnt = _empirical_variogram(errors, t_h, _lag_steps(t_h, max_lag_h))
    if len(gam) < 3:
        raise ConfigError("training subjects: too few error pairs to fit the error variogram")
    w = np.sqrt(cnt)
    best: tuple[float, float, float, float] | None = None
    for tau in np.geomspace(1.0 / 60.0, 24.0, 400):
        x = np.stack([np.ones_like(lag_h), 1.0 - np.exp(-lag_h / tau)], axis=1)
        coef = _nnls2(x * w[:, None], gam * w)
        sse = float(np.sum((w * (x @ coef - gam)) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(tau), float(coef[0]), float(coef[1]))
    assert best is not None
    _, tau, var_white, var_ou = best
    means = np.array([np.nanmean(e) for e in errors if np.isfinite(e).any()])
    dur_h = np.array([t[-1] - t[0] for t, e in zip(t_h, errors, strict=True) if np.isfinite(e).any()])
    mu = float(np.mean(means))
    # the variance of a subject's mean error holds beta's and (for a record of T hours) about
    # var_ou * 2 tau / T of the OU part: remove that share
    ou_share = var_ou * np.mean(np.minimum(1.0, 2.0 * tau / np.maximum(dur_h, 1e-9)))
    var_beta = max(float(np.var(means, ddof=1)) - float(ou_share), 0.0) if len(means) > 1 else 0.0
    return ErrorModel(mu=mu, var_beta=var_beta, var_ou=var_ou, tau_h=tau, var_white=var_white)


def _nnls2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares with two unknowns (exhaustive over the active sets)."""
    best, best_sse = np.zeros(2), float(np.sum(b**2))
    cands = [np.linalg.lstsq(a, b, rcond=None)[0]]
    for j in (0, 1):
        c = np.zeros(2)
        denom = float(a[:, j] @ a[:, j])
        if denom > 0:
            c[j] = float(a[:, j] @ b) / denom
        cands.append(c)
    for c in cands:
        if (c >= 0).all():
            sse = float(np.sum((a @ c - b) ** 2))
            if sse < best_sse:
                best, best_sse = c, sse
    return best


def fit_error_model(train: TrainingSubjects, max_lag_h: float = 4.0) -> tuple[ErrorModel, ErrorModel]:
    """Fit the SBP and DBP :class:`ErrorModel` of the estimator on training subjects.

    Args:
        train: the training subjects.
        max_lag_h: longest lag of the empirical variogram, hours.

    Returns:
        ``(sbp_model, dbp_model)``.

    Raises:
        ConfigError: too few error pairs.
    """
    errs = train.errors()
    return tuple(  # type: ignore[return-value]
        _fit_column([e[:, j] for e in errs], train.t_h, max_lag_h) for j in (0, 1)
    )


def simulate_error_model(
    rng: np.random.Generator,
    n_subjects: int,
    t_s: np.ndarray,
    mu: float,
    var_beta: float,
    var_ou: float,
    tau_h: float,
    var_white: float,
) -> TrainingSubjects:
    """Training subjects whose SBP and DBP errors follow a known :class:`ErrorModel` (for tests).

    The estimate is 120/70 mmHg plus noise-free PAT/HR placeholders; the reference is the estimate
    plus the simulated error (an exact OU recursion on the step grid ``t_s``).
    """
    t_h = np.asarray(t_s, float) / 3600.0
    subs = TrainingSubjects([], [], [], [], [], [])
    a = np.exp(-np.diff(t_h) / tau_h)
    for i in range(n_subjects):
        err = np.zeros((len(t_h), 2))
        for j in (0, 1):
            u = np.zeros(len(t_h))
            u[0] = rng.normal(0.0, math.sqrt(var_ou))
            innov = rng.standard_normal(len(t_h) - 1) * np.sqrt(var_ou * (1.0 - a**2))
            for k in range(1, len(t_h)):
                u[k] = a[k - 1] * u[k - 1] + innov[k - 1]
            beta = mu + rng.normal(0.0, math.sqrt(var_beta))
            err[:, j] = beta + u + rng.normal(0.0, math.sqrt(var_white), len(t_h))
        est = np.tile([120.0, 70.0], (len(t_h), 1))
        subs.subject_ids.append(f"sim{i:03d}")
        subs.t_h.append(t_h.copy())
        subs.est.append(est)
        subs.ref.append(est + err)
        subs.pat_ms.append(np.full(len(t_h), 250.0))
        subs.hr_bpm.append(np.full(len(t_h), 70.0))
    return subs


# ------------------------------------------------------------------------- gains
def fit_gain_prior(train: TrainingSubjects, min_sd_mmhg: float = 3.0) -> dict[str, list[float]]:
    """Mean and variance of the per-subject gain error, SBP and DBP.

    Within each subject with an estimate SD of at least ``min_sd_mmhg``, the least-squares slope of
    the error on the centred estimate (``e = a + g * (est - centre)``): a slope ``g`` means the
    reference moves ``1 + g`` mmHg per mmHg of estimate. Returns ``{"mean": [sbp, dbp], "var":
    [sbp, dbp]}`` (mean 0, variance 0.04 where fewer than 3 subjects qualify).
    """
    slopes: list[list[float]] = [[], []]
    for est, err in zip(train.est, train.errors(), strict=True):
        for j in (0, 1):
            x, y = est[:, j], err[:, j]
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 20 or np.std(x[ok]) < min_sd_mmhg:
                continue
            xc = x[ok] - x[ok].mean()
            slopes[j].append(float(xc @ (y[ok] - y[ok].mean()) / (xc @ xc)))
    mean, var = [], []
    for j in (0, 1):
        g = np.array(slopes[j])
        if len(g) >= 3:
            mean.append(float(np.mean(g)))
            var.append(float(np.var(g, ddof=1)))
        else:
            mean.append(0.0)
            var.append(0.04)
    return {"mean": mean, "var": var}


# ------------------------------------------------------------- feature changes
@dataclass(frozen=True)
class FeatureChange:
    """Linear model of the error change since a reading, for SBP and DBP (rows).

    ``coef[j] @ [dPAT_ms, dHR_bpm, dEst_mmhg]`` predicts ``e(t) - e(t0)`` of BP ``j``;
    ``var_per_ms2`` and ``var_per_bpm2`` are how much the squared error change grows per squared
    ms of PAT change and squared bpm of HR change beyond what time alone explains.
    """

    coef: tuple[tuple[float, float, float], tuple[float, float, float]]
    var_per_ms2: tuple[float, float]
    var_per_bpm2: tuple[float, float]
    r2: tuple[float, float]  #: share of the error-change variance the linear model explains (training)

    def as_dict(self) -> dict[str, object]:
        """The parameters as a plain dict."""
        return {k: v for k, v in asdict(self).items()}


def _pairs(
    train: TrainingSubjects, rng: np.random.Generator, max_gap_h: float, per_subject: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (reading, later step) pairs per subject: feature changes X (n, 3, 2), error change (n, 2), gap h."""
    xs, ys, gaps = [], [], []
    for t, est, err, pat, hr in zip(
        train.t_h, train.est, train.errors(), train.pat_ms, train.hr_bpm, strict=True
    ):
        n = len(t)
        if n < 3:
            continue
        i0 = rng.integers(0, n - 1, per_subject)
        gap_steps = np.maximum(
            1, (rng.uniform(0, 1, per_subject) * max_gap_h / max(np.median(np.diff(t)), 1e-9))
        )
        i1 = np.minimum(i0 + gap_steps.astype(int), n - 1)
        dpat, dhr = pat[i1] - pat[i0], hr[i1] - hr[i0]
        dest = est[i1] - est[i0]
        de = err[i1] - err[i0]
        x = np.stack([np.repeat(dpat[:, None], 2, 1), np.repeat(dhr[:, None], 2, 1), dest], axis=1)
        xs.append(x)
        ys.append(de)
        gaps.append(t[i1] - t[i0])
    if not xs:
        raise ConfigError("training subjects: too short to fit the feature correction")
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gaps)


def fit_feature_change(
    train: TrainingSubjects,
    models: tuple[ErrorModel, ErrorModel],
    seed: int = 0,
    max_gap_h: float = 2.0,
    pairs_per_subject: int = 400,
    ridge: float = 1.0,
) -> FeatureChange:
    """Fit :class:`FeatureChange` on random (reading, later) step pairs of the training subjects.

    Args:
        train: the training subjects.
        models: the fitted SBP / DBP error models (their variogram is the time-only part of the
            squared error change).
        seed: seed of the pair sampling (the fit is deterministic for a seed).
        max_gap_h: longest gap between the pair's steps, hours.
        pairs_per_subject: pairs drawn per subject.
        ridge: ridge penalty on the standardised coefficients.

    Raises:
        ConfigError: too few valid pairs.
    """
    rng = np.random.default_rng(seed)
    x, y, gap = _pairs(train, rng, max_gap_h, pairs_per_subject)
    coef, vpat, vhr, r2 = [], [], [], []
    for j in (0, 1):
        xj, yj = x[:, :, j], y[:, j]
        ok = np.isfinite(xj).all(axis=1) & np.isfinite(yj) & np.isfinite(gap)
        if ok.sum() < 30:
            raise ConfigError("training subjects: too few valid step pairs to fit the feature correction")
        xj, yj, gj = xj[ok], yj[ok], gap[ok]
        sd = np.where(xj.std(axis=0) > 0, xj.std(axis=0), 1.0)
        z = xj / sd
        beta = np.linalg.solve(z.T @ z + ridge * np.eye(3), z.T @ yj) / sd
        resid = yj - xj @ beta
        r2.append(float(1.0 - resid.var() / yj.var()) if yj.var() > 0 else 0.0)
        coef.append(tuple(float(b) for b in beta))
        # squared change beyond the time-only variogram (2 gamma), explained by squared PAT / HR changes
        m = models[j]
        excess = yj**2 - 2.0 * ou_variogram(gj, m.var_ou, m.tau_h, m.var_white)
        a = np.stack([xj[:, 0] ** 2, xj[:, 1] ** 2], axis=1)
        c = _nnls2(a, excess)
        vpat.append(float(c[0]) / 2.0)
        vhr.append(float(c[1]) / 2.0)
    return FeatureChange(
        coef=(coef[0], coef[1]),  # type: ignore[arg-type]
        var_per_ms2=(vpat[0], vpat[1]),
        var_per_bpm2=(vhr[0], vhr[1]),
        r2=(r2[0], r2[1]),
    )
