"""The Pareto front of policies compared on two costs (e.g. cuff readings per hour and MAE).

A pure function of two cost vectors: no plotting, no tables. The report draws the front
(:func:`bprl.report.figures.cuffs_vs_mae_figure`); anything else that ranks policies on two
costs can use it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
