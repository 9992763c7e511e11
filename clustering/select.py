"""Which sessions are suspicious enough to cluster.

Without a production session model (issue E's registry), documented heuristics: a
session is suspicious when any of these holds —

* some request carries attack tokens (``attack_ratio > 0``);
* it asks for sensitive files (``sensitive_ratio > 0``) or uses rare methods;
* its user agent is a known tool or empty (``ua_class`` 1 or 3);
* at least 20% of its answers were errors, with at least 3 requests;
* it is fast and long: more than 30 requests at more than 20 per minute;
* it POSTs repeatedly (at least 3 requests, at least half of them POST) — stuffing, spam;
* it never fetches assets or sends a referer over at least 20 requests — a bot.

``all`` clusters every session in the window.
"""

from __future__ import annotations

import numpy as np

from waflens.data.feature_spec import UA_EMPTY, UA_TOOL, feature_names


def suspicious_mask(numeric: np.ndarray) -> np.ndarray:
    f = {name: numeric[:, j] for j, name in enumerate(feature_names("session"))}
    return (
        (f["attack_ratio"] > 0)
        | (f["sensitive_ratio"] > 0)
        | (f["rare_method_ratio"] > 0)
        | np.isin(f["ua_class"], (UA_TOOL, UA_EMPTY))
        | ((f["error_ratio"] >= 0.2) & (f["n_requests"] >= 3))
        | ((f["n_requests"] > 30) & (f["request_rate"] > 20))
        | ((f["n_requests"] >= 3) & (f["post_ratio"] >= 0.5))
        | ((f["n_requests"] >= 20) & (f["static_ratio"] == 0) & (f["referer_ratio"] == 0))
        | ((f["error_ratio"] > 0) & (f["static_ratio"] == 0) & (f["referer_ratio"] == 0))
    )
