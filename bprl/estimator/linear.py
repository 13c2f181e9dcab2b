"""The PAT linear population estimator: SBP/DBP = a + b·ln(PAT_foot) + c·HR by least squares on replay tables.

A cheap default for tests and environments; it reads only the replay table's ``pat_foot_ms``
and ``hr_bpm`` (no waveforms) and is saved as JSON.

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

__all__ = ["LINEAR_FORMAT", "PatLinearEstimator"]

LINEAR_FORMAT = "bprl-pat-linear-1"


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
