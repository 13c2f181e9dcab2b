"""The Pareto front of policies compared on two costs (e.g. cuff readings per hour and MAE).

:func:`pareto_front` is a pure function of two cost vectors: no plotting, no tables;
:func:`deployable_front` applies it to a policy comparison, leaving out bound policies. The report draws the front
(:func:`bprl.report.figures.cuffs_vs_mae_figure`); anything else that ranks policies on two
costs can use it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pareto_front(cost_a: Sequence[float], cost_b: Sequence[float]) -> list[int]:
    """Indices of the points not dominated when both costs are minimised, ordered by ``cost_a``.

    A point is dominated when another is no worse in both costs and better in one.
    Points with a non-finite cost are never on the front.

    Args:
        cost_a: first cost of each point (any unit, e.g. cuff readings per hour).
        cost_b: second cost of each point, same length (e.g. MAE in mmHg).

    Returns:
        Indices into the inputs of the non-dominated points, sorted by ``(cost_a, cost_b, index)``;
        identical points are all kept (neither is strictly better).

    >>> pareto_front([1, 2, 3, 4, 4, float("nan")], [9, 5, 6, 2, 3, 0])
    [0, 1, 3]
    >>> pareto_front([1, 1], [2, 2])
    [0, 1]
    """
    a, b = np.asarray(cost_a, dtype=float), np.asarray(cost_b, dtype=float)
    ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    front = []
    for i in ok:
        dominated = np.any((a[ok] <= a[i]) & (b[ok] <= b[i]) & ((a[ok] < a[i]) | (b[ok] < b[i])))
        if not dominated:
            front.append(int(i))
    return sorted(front, key=lambda i: (a[i], b[i], i))


def deployable_front(metrics: pd.DataFrame, bp: str) -> list[str]:
    """The policies on the Pareto front of cuff readings per hour and ``bp`` MAE, among the
    deployable ones: bound policies (the oracle, :func:`bprl.evaluation.is_bound_policy`) read the
    reference and are left out, so they never hide the policies one can deploy.

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`): ``policy``,
            ``cuffs_per_hour`` and ``<bp>_mae_mmhg``.
        bp: ``"sbp"`` or ``"dbp"``.

    Returns:
        Policy names on the front, by increasing cuff rate.
    """
    from bprl.evaluation.cuff_rate import is_bound_policy

    deploy = metrics[~metrics["policy"].map(is_bound_policy).astype(bool)]
    front = pareto_front(deploy["cuffs_per_hour"].to_numpy(float), deploy[f"{bp}_mae_mmhg"].to_numpy(float))
    return [str(deploy["policy"].iloc[i]) for i in front]
