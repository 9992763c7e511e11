"""HDBSCAN's core distances are computed in-process (issue C2): above 16,384 rows hdbscan otherwise
starts joblib worker processes and sends each a copy of the kd-tree, which at 30k sessions doubled
the step's wall and CPU time for the same labels."""

import os
from pathlib import Path

import numpy as np
from joblib.externals.loky import get_reusable_executor

from waflens.clustering.run import ClusterOptions, _hdbscan


def _children() -> set[int]:
    """Pids of this process's live children, from /proc (Linux, as CI)."""
    me = str(os.getpid())
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile
                continue
            if fields[1] == me and fields[0] != "Z":
                out.add(int(entry.name))
    return out


def test_core_distances_start_no_worker_processes():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    X = np.vstack([c + rng.normal(scale=0.5, size=(6_000, 3)) for c in centres])  # 18k rows: hdbscan's parallel path
    get_reusable_executor().shutdown(wait=True)   # workers an earlier test left would hide new ones
    before = _children()
    labels, probabilities, outliers = _hdbscan(X, ClusterOptions(min_cluster_size=25))
    assert _children() - before == set()
    assert len(np.unique(labels[labels >= 0])) == 3
    assert (labels[:6_000] == labels[0]).mean() > 0.99
