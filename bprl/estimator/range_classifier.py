"""A BP-range classifier on replay-table features: seed 002's range head for feature estimators.

:class:`RangeClassifier` assigns each replay step one of :data:`~bprl.estimator.ranges.BP_RANGES`
(hypotension, normal, stage 1, stage 2 by ACC/AHA 2017, :func:`~bprl.estimator.ranges.bp_range`)
from feature columns alone (no calibration): a multinomial logistic regression
(``sklearn.linear_model.LogisticRegression``) on the features standardised with the training
steps' mean and SD, missing values set to the training median. With ``oversample`` the training
steps are weighted so that every range present carries the same total weight (range-stratified
oversampling, as :func:`~bprl.estimator.dataset.oversampling_weights` does for the CNN-GRU), which
trades accuracy on the common range for recall on the rare ones.

The CNN-GRU has its own range head (``model.range_head``); this classifier is the counterpart for
the feature estimators, such as the camera experiment's (``estimator.range_classifier``,
:mod:`bprl.experiments.camera`). Saved as JSON (coefficients, scaling, classes): no pickle.

>>> import numpy as np, pandas as pd
>>> sbp = np.repeat([85.0, 115.0, 135.0, 155.0], 6) + np.tile(np.arange(6) - 2.5, 4)
>>> table = pd.DataFrame({"x": sbp / 10, "ref_sbp_mmhg": sbp, "ref_dbp_mmhg": sbp * 0.55})
>>> clf = RangeClassifier(["x"], c=100.0).fit([table])
>>> clf.predict_table(table.iloc[[0, 6, 12, 18]]).tolist()  # 0 hypotension, 1 normal, 2 stage 1, 3 stage 2
[0, 1, 2, 3]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.errors import EstimatorError
from bprl.estimator.ranges import BP_RANGES, bp_range
from bprl.io import write_text_atomic

__all__ = ["RangeClassifier"]

#: file format of a saved classifier
RANGE_CLASSIFIER_FORMAT = "bprl-range-classifier-1"
#: fewest usable training steps
MIN_TRAIN_STEPS = 20


class RangeClassifier:
    """BP range (:data:`~bprl.estimator.ranges.BP_RANGES`) of a replay step from its feature columns.

    Args:
        features: the replay-table columns it reads.
        oversample: weight the training steps so that each range present weighs the same.
        c: inverse L2 regularisation strength of the logistic regression.
        seed: the solver's seed (results are deterministic for a given seed).
    """

    kind = "range-classifier"

    def __init__(
        self, features: Sequence[str], oversample: bool = False, c: float = 1.0, seed: int = 0
    ) -> None:
        if not features:
            raise EstimatorError("RangeClassifier needs at least one feature column")
        self.features = tuple(features)
        self.oversample = bool(oversample)
        self.c = float(c)
        self.seed = int(seed)
        self.classes: list[int] = []
        self.mean = np.zeros(len(self.features))
        self.sd = np.ones(len(self.features))
        self.median = np.zeros(len(self.features))
        self.coef = np.zeros((0, len(self.features)))
        self.intercept = np.zeros(0)
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit / predict
    def _x(self, table: pd.DataFrame, path: str = "table") -> np.ndarray:
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            raise EstimatorError(f"{path}: no column(s) {missing} for the range classifier")
        return table[list(self.features)].to_numpy(dtype=np.float64)

    def fit(self, tables: Sequence[pd.DataFrame]) -> RangeClassifier:
        """Fit on the steps of ``tables`` that have a reference BP (``ref_sbp_mmhg``, ``ref_dbp_mmhg``).

        Raises:
            EstimatorError: missing columns, fewer than :data:`MIN_TRAIN_STEPS` usable steps, or a
                single range among them (nothing to classify).
        """
        from sklearn.linear_model import LogisticRegression

        data = pd.concat(list(tables), ignore_index=True) if len(tables) else pd.DataFrame()
        for col in ("ref_sbp_mmhg", "ref_dbp_mmhg"):
            if col not in data.columns:
                raise EstimatorError(f"range classifier: the training tables have no {col!r} column")
        x = self._x(data, "range classifier training tables")
        y = bp_range(data["ref_sbp_mmhg"].to_numpy(float), data["ref_dbp_mmhg"].to_numpy(float))
        use = y >= 0
        if int(use.sum()) < MIN_TRAIN_STEPS:
            raise EstimatorError(
                f"range classifier: {int(use.sum())} training steps with a reference, need >= {MIN_TRAIN_STEPS}"
            )
        x, y = x[use], y[use]
        self.median = np.array([np.nanmedian(c) if np.isfinite(c).any() else 0.0 for c in x.T])
        x = np.where(np.isfinite(x), x, self.median)
        self.mean = x.mean(axis=0)
        self.sd = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise EstimatorError(
                f"range classifier: every training step is in one range ({BP_RANGES[int(classes[0])]})"
            )
        weight = None
        if self.oversample:
            per_class = dict(zip(classes.tolist(), (len(y) / (len(classes) * counts)).tolist(), strict=True))
            weight = np.array([per_class[int(k)] for k in y])
        model = LogisticRegression(C=self.c, max_iter=2000, random_state=self.seed)
        model.fit((x - self.mean) / self.sd, y, sample_weight=weight)
        self.classes = [int(k) for k in model.classes_]
        coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
        if len(self.classes) == 2:  # sklearn's binary form: one row for the second class
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        self.coef, self.intercept = coef, intercept
        self.info = {
            "n_steps": len(y),
            "train_steps_per_range": {
                BP_RANGES[int(k)]: int(n) for k, n in zip(classes, counts, strict=True)
            },
        }
        return self

    def _check_fitted(self) -> None:
        if not self.classes:
            raise EstimatorError("range classifier: fit it (or load a fitted one) before predicting")

    def predict_proba_table(self, table: pd.DataFrame) -> np.ndarray:
        """(n, len(classes)) class probabilities of every step of ``table`` (columns: :attr:`classes`)."""
        self._check_fitted()
        x = self._x(table)
        x = (np.where(np.isfinite(x), x, self.median) - self.mean) / self.sd
        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_table(self, table: pd.DataFrame) -> np.ndarray:
        """Range code (index into :data:`~bprl.estimator.ranges.BP_RANGES`) of every step of ``table``."""
        return np.asarray(self.classes, dtype=np.int64)[np.argmax(self.predict_proba_table(table), axis=1)]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (everything :meth:`from_dict` needs)."""
        self._check_fitted()
        return {
            "format": RANGE_CLASSIFIER_FORMAT,
            "kind": self.kind,
            "features": list(self.features),
            "oversample": self.oversample,
            "c": self.c,
            "seed": self.seed,
            "classes": self.classes,
            "mean": self.mean.tolist(),
            "sd": self.sd.tolist(),
            "median": self.median.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "range classifier") -> RangeClassifier:
        """The classifier described by :meth:`to_dict` output.

        Raises:
            EstimatorError: another format or inconsistent shapes.
        """
        if d.get("format") != RANGE_CLASSIFIER_FORMAT:
            raise EstimatorError(
                f"{source}: not a {RANGE_CLASSIFIER_FORMAT} file (format {d.get('format')!r})"
            )
        try:
            out = cls(d["features"], bool(d["oversample"]), float(d["c"]), int(d["seed"]))
            out.classes = [int(k) for k in d["classes"]]
            out.mean, out.sd, out.median = (np.asarray(d[k], float) for k in ("mean", "sd", "median"))
            out.coef, out.intercept = np.asarray(d["coef"], float), np.asarray(d["intercept"], float)
            out.info = dict(d.get("info", {}))
        except (KeyError, TypeError, ValueError) as err:
            raise EstimatorError(f"{source}: malformed range classifier ({err})") from err
        nf, nc = len(out.features), len(out.classes)
        if out.coef.shape != (nc, nf) or out.intercept.shape != (nc,) or out.mean.shape != (nf,):
            raise EstimatorError(f"{source}: coefficient shapes do not match {nf} features and {nc} classes")
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the classifier as JSON (atomically) and return the path."""
        return write_text_atomic(json.dumps(self.to_dict(), indent=1), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RangeClassifier:
        """Read a classifier written by :meth:`save`.

        Raises:
            EstimatorError: unreadable file or not a range classifier.
        """
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EstimatorError(f"{path}: cannot read the range classifier ({err})") from err
        if not isinstance(d, dict):
            raise EstimatorError(f"{path}: not a range classifier (a JSON object expected)")
        return cls.from_dict(d, str(path))
