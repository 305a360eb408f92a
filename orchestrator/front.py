"""Pareto dominance, defined once: the confirmation stage of a multi-objective sweep and the report's
front both call :func:`pareto_mask`, so the configurations a sweep re-runs are the ones its report marks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pareto_mask"]


def pareto_mask(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """``points [n, k]``: True for each row no other row dominates (≥ as good in every objective under
    its mode, ``max`` or ``min``, and strictly better in one). Equal rows do not dominate each other."""
    signs = np.array([1.0 if m == "max" else -1.0 for m in modes])
    scores = np.asarray(points, dtype=np.float64).reshape(-1, len(signs)) * signs  # larger is better
    at_least = (scores[:, None, :] >= scores[None, :, :]).all(axis=2)  # [i, j]: i ≥ j everywhere
    better = (scores[:, None, :] > scores[None, :, :]).any(axis=2)
    dominated = (at_least & better).any(axis=0)
    return ~dominated
