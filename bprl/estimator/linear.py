"""Linear estimators on replay-table features, saved as JSON.

- :class:`PatLinearEstimator`: the population model SBP/DBP = a + b·ln(PAT_foot) + c·HR by least
  squares over all training steps; a cheap default for tests and environments.
- :class:`DeltaLinearEstimator`: slopes fit *within* training subjects (each subject's features
  and references centred on their own means), the baseline a tracking estimator must beat after
  a one-point calibration.

>>> import numpy as np, pandas as pd
>>> pat = np.array([200.0, 250.0, 300.0, 220.0])
>>> hr = np.array([60.0, 70.0, 80.0, 90.0])
>>> table = pd.DataFrame({"pat_foot_ms": pat, "hr_bpm": hr,
...                       "ref_sbp_mmhg": 400 - 50 * np.log(pat) + 0.2 * hr,
...                       "ref_dbp_mmhg": 200 - 25 * np.log(pat) + 0.1 * hr})
>>> est = PatLinearEstimator().fit(table)
>>> est.coef_sbp.round(2).tolist()
[400.0, -50.0, 0.2]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.errors import EstimatorError
from bprl.estimator.config import FEATURE_COLUMNS
from bprl.io import write_text_atomic
from bprl.sources import Record

__all__ = ["DELTA_LINEAR_FORMAT", "LINEAR_FORMAT", "DeltaLinearEstimator", "PatLinearEstimator"]

LINEAR_FORMAT = "bprl-pat-linear-1"
DELTA_LINEAR_FORMAT = "bprl-delta-linear-1"


class PatLinearEstimator:
    """Population least squares SBP/DBP = a + b·ln(pat_foot_ms) + c·hr_bpm, fitted on replay tables.

    Attributes:
        coef_sbp: (a, b, c) for SBP.
        coef_dbp: (a, b, c) for DBP.
        train_mean_mmhg: mean SBP, DBP of the fitting steps (the mean predictor).
        info: provenance (subjects, steps, residual SD).
    """

    kind = "pat-linear"

    def __init__(
        self,
        coef_sbp: Sequence[float] = (math.nan,) * 3,
        coef_dbp: Sequence[float] = (math.nan,) * 3,
        train_mean_mmhg: Sequence[float] = (math.nan, math.nan),
        info: dict[str, Any] | None = None,
    ) -> None:
        self.coef_sbp = np.asarray(coef_sbp, dtype=np.float64)
        self.coef_dbp = np.asarray(coef_dbp, dtype=np.float64)
        self.train_mean_mmhg = tuple(float(v) for v in train_mean_mmhg)
        self.info = info or {}

    @staticmethod
    def design(table: pd.DataFrame) -> np.ndarray:
        """(n, 3) design matrix [1, ln(pat_foot_ms), hr_bpm]; rows with missing or non-positive PAT are NaN.

        Raises:
            EstimatorError: the table lacks ``pat_foot_ms`` or ``hr_bpm``.
        """
        for col in FEATURE_COLUMNS:
            if col not in table.columns:
                raise EstimatorError(f"replay table lacks column {col!r} needed by the PAT linear estimator")
        pat = pd.to_numeric(table["pat_foot_ms"], errors="coerce").to_numpy(dtype=np.float64)
        hr = pd.to_numeric(table["hr_bpm"], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            lnpat = np.where(pat > 0, np.log(pat), np.nan)
        return np.column_stack([np.ones(len(pat)), lnpat, hr])

    def fit(self, tables: pd.DataFrame | Iterable[pd.DataFrame]) -> PatLinearEstimator:
        """Least squares on all steps with finite PAT, HR and reference BP; returns ``self``.

        Raises:
            EstimatorError: a column is missing, or fewer than 3 steps are usable.
        """
        table = tables if isinstance(tables, pd.DataFrame) else pd.concat(list(tables), ignore_index=True)
        X = self.design(table)
        for col in ("ref_sbp_mmhg", "ref_dbp_mmhg"):
            if col not in table.columns:
                raise EstimatorError(
                    f"replay table lacks column {col!r} needed to fit the PAT linear estimator"
                )
        Y = table[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(dtype=np.float64)
        m = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
        if m.sum() < 3:
            raise EstimatorError(f"PAT linear estimator: only {int(m.sum())} usable steps (need at least 3)")
        coef, *_ = np.linalg.lstsq(X[m], Y[m], rcond=None)
        self.coef_sbp, self.coef_dbp = coef[:, 0], coef[:, 1]
        self.train_mean_mmhg = (float(Y[m, 0].mean()), float(Y[m, 1].mean()))
        resid = Y[m] - X[m] @ coef
        sids = sorted(table["subject_id"].astype(str).unique().tolist()) if "subject_id" in table else []
        self.info = {
            "n_steps": int(m.sum()),
            "subjects": sids,
            "residual_sd_mmhg": [float(v) for v in resid.std(axis=0, ddof=3)],
        }
        return self

    def predict_table(
        self, table: pd.DataFrame, record: Record | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SBP and DBP per row; NaN where PAT or HR is missing (``record`` is not used)."""
        X = self.design(table)
        return X @ self.coef_sbp, X @ self.coef_dbp

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (what :meth:`save` writes)."""
        return {
            "format": LINEAR_FORMAT,
            "features": ["1", "ln(pat_foot_ms)", "hr_bpm"],
            "coef_sbp": self.coef_sbp.tolist(),
            "coef_dbp": self.coef_dbp.tolist(),
            "train_mean_mmhg": list(self.train_mean_mmhg),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the coefficients as JSON, atomically."""
        return write_text_atomic(json.dumps(self.to_dict(), indent=2), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PatLinearEstimator:
        """Read :meth:`save` output; EstimatorError naming the file when malformed."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EstimatorError(f"{path}: cannot read PAT linear estimator: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != LINEAR_FORMAT:
            raise EstimatorError(f"{path}: not a PAT linear estimator (format != {LINEAR_FORMAT!r})")
        try:
            est = cls(
                d["coef_sbp"], d["coef_dbp"], d.get("train_mean_mmhg", (math.nan, math.nan)), d.get("info")
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EstimatorError(f"{path}: malformed coefficients: {exc}") from exc
        if est.coef_sbp.shape != (3,) or est.coef_dbp.shape != (3,):
            raise EstimatorError(f"{path}: coef_sbp and coef_dbp must have 3 values each")
        return est

    def fingerprint(self) -> str:
        """sha256 of the coefficients."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


class DeltaLinearEstimator:
    """SBP/DBP linear in replay-table features with slopes fit within training subjects (fixed effects).

    Each training subject's features and references are centred on the subject's means, so the
    slopes describe how BP moves with the features *within* a subject, not how subjects differ;
    the intercept puts the pooled mean features at the pooled mean BP. After a one-point
    calibration only the slopes matter: the baseline of the tracking metrics
    (:mod:`bprl.tracking`).

    Args:
        features: the replay-table columns (default PAT at the foot and HR; the stiffness index is
            left out by default: it is missing wherever no diastolic peak is found, ~60 % of
            virtual steps).

    >>> import numpy as np, pandas as pd
    >>> pat = np.array([200.0, 220.0, 240.0, 300.0, 320.0, 340.0])
    >>> table = pd.DataFrame({"subject_id": ["a"] * 3 + ["b"] * 3, "pat_foot_ms": pat,
    ...                       "hr_bpm": [60.0, 70.0, 65.0, 80.0, 75.0, 70.0],
    ...                       "ref_sbp_mmhg": [140.0, 130.0, 120.0, 150.0, 140.0, 130.0],
    ...                       "ref_dbp_mmhg": [80.0, 75.0, 70.0, 90.0, 85.0, 80.0]})
    >>> est = DeltaLinearEstimator().fit(table)
    >>> est.coef_sbp.round(3).tolist()  # -0.5 mmHg per ms of PAT within each subject; HR plays no part
    [-0.5, 0.0]
    """

    kind = "delta-linear"

    def __init__(self, features: Sequence[str] = FEATURE_COLUMNS) -> None:
        self.features = tuple(features)
        self.coef_sbp = np.full(len(self.features), np.nan)
        self.coef_dbp = np.full(len(self.features), np.nan)
        self.intercept_mmhg = (math.nan, math.nan)
        self.train_mean_mmhg = (math.nan, math.nan)
        self.info: dict[str, Any] = {}

    def design(self, table: pd.DataFrame) -> np.ndarray:
        """(n, k) feature matrix; NaN where a feature is missing or not numeric.

        Raises:
            EstimatorError: the table lacks a feature column.
        """
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            raise EstimatorError(f"replay table lacks columns {missing} needed by the delta-linear estimator")
        return np.column_stack(
            [pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64) for c in self.features]
        )

    def fit(self, tables: pd.DataFrame | Iterable[pd.DataFrame]) -> DeltaLinearEstimator:
        """Within-subject least squares on the steps with finite features and references; returns ``self``.

        Raises:
            EstimatorError: a column is missing, or fewer than k + 2 usable steps.
        """
        table = tables if isinstance(tables, pd.DataFrame) else pd.concat(list(tables), ignore_index=True)
        for col in ("subject_id", "ref_sbp_mmhg", "ref_dbp_mmhg"):
            if col not in table.columns:
                raise EstimatorError(
                    f"replay table lacks column {col!r} needed to fit the delta-linear estimator"
                )
        X = self.design(table)
        Y = table[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(dtype=np.float64)
        ok = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
        if ok.sum() < X.shape[1] + 2:
            raise EstimatorError(f"delta-linear estimator: only {int(ok.sum())} usable steps")
        sid = table["subject_id"].astype(str).to_numpy()[ok]
        X, Y = X[ok], Y[ok]
        Xc = X - pd.DataFrame(X).groupby(sid).transform("mean").to_numpy()
        Yc = Y - pd.DataFrame(Y).groupby(sid).transform("mean").to_numpy()
        coef, *_ = np.linalg.lstsq(Xc, Yc, rcond=None)
        self.coef_sbp, self.coef_dbp = coef[:, 0], coef[:, 1]
        intercept = Y.mean(axis=0) - X.mean(axis=0) @ coef
        self.intercept_mmhg = (float(intercept[0]), float(intercept[1]))
        self.train_mean_mmhg = (float(Y[:, 0].mean()), float(Y[:, 1].mean()))
        resid = Yc - Xc @ coef
        self.info = {
            "n_steps": int(ok.sum()),
            "subjects": sorted(set(sid.tolist())),
            "within_residual_sd_mmhg": [float(v) for v in resid.std(axis=0)],
        }
        return self

    def predict_table(
        self, table: pd.DataFrame, record: Record | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SBP and DBP per row; NaN where a feature is missing (``record`` is not used)."""
        X = self.design(table)
        return X @ self.coef_sbp + self.intercept_mmhg[0], X @ self.coef_dbp + self.intercept_mmhg[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (what :meth:`save` writes)."""
        return {
            "format": DELTA_LINEAR_FORMAT,
            "features": list(self.features),
            "coef_sbp": self.coef_sbp.tolist(),
            "coef_dbp": self.coef_dbp.tolist(),
            "intercept_mmhg": list(self.intercept_mmhg),
            "train_mean_mmhg": list(self.train_mean_mmhg),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON, atomically."""
        return write_text_atomic(json.dumps(self.to_dict(), indent=2), path)

    @classmethod
    def from_dict(cls, d: Any, where: str = "delta-linear model") -> DeltaLinearEstimator:
        """Build from :meth:`to_dict` output; EstimatorError naming ``where`` when malformed."""
        if not isinstance(d, dict) or d.get("format") != DELTA_LINEAR_FORMAT:
            raise EstimatorError(f"{where}: not a delta-linear estimator (format != {DELTA_LINEAR_FORMAT!r})")
        try:
            est = cls(d["features"])
            est.coef_sbp = np.asarray(d["coef_sbp"], dtype=np.float64)
            est.coef_dbp = np.asarray(d["coef_dbp"], dtype=np.float64)
            est.intercept_mmhg = tuple(float(v) for v in d["intercept_mmhg"])
            est.train_mean_mmhg = tuple(float(v) for v in d.get("train_mean_mmhg", (math.nan, math.nan)))
            est.info = dict(d.get("info") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise EstimatorError(f"{where}: malformed delta-linear model: {exc}") from exc
        k = len(est.features)
        if est.coef_sbp.shape != (k,) or est.coef_dbp.shape != (k,) or len(est.intercept_mmhg) != 2:
            raise EstimatorError(f"{where}: {k} features need {k} coefficients per target and 2 intercepts")
        return est

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeltaLinearEstimator:
        """Read :meth:`save` output; EstimatorError naming the file when unreadable or malformed."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EstimatorError(f"{path}: cannot read delta-linear estimator: {exc}") from exc
        return cls.from_dict(d, str(path))

    def fingerprint(self) -> str:
        """sha256 of the model."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
