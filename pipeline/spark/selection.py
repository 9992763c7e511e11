"""Which sessions ``waflens spark cluster`` clusters: the suspicious ones, chosen on the executors as
``waflens cluster`` chooses them (:func:`waflens.clustering.select.suspicious_mask` on the session features,
non-finite values as 0).

A module of its own so that the Python workers running the filter import numpy and the selection rule only,
not scikit-learn and HDBSCAN (two seconds per worker that only the placement needs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from waflens.clustering.select import suspicious_mask
from waflens.data.feature_spec import feature_names


def feature_matrix(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The columns ``names`` of ``frame`` as float64, non-finite values as 0 (as ``waflens cluster`` reads them)."""
    values = np.column_stack([frame[n].to_numpy(dtype=np.float64) for n in names]) if len(frame) else \
        np.empty((0, len(names)))
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def suspicious_batches(batches):
    """The ``mapInPandas`` function: session rows (with every session feature) -> the suspicious ones."""
    names = feature_names("session")
    for batch in batches:
        yield batch[suspicious_mask(feature_matrix(batch, names))]
