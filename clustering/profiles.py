"""What a cluster is, in terms an analyst reads: volumes, what it asked for, how it differs.

Per cluster: sessions, clients, requests, time span; top path templates (digits as
{n}), parameter names, user agents and status codes; the session features that set
it apart from the background (Cohen's d against the window's other sessions);
exemplar sessions (most typical = highest membership, boundary = lowest) and
their first requests. Log content in profiles is data for display, never markup.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np

from waflens.data.feature_spec import feature_names

TOP = 10


def build_profiles(con: duckdb.DuckDBPyConnection, run_id: int, labels: np.ndarray, session_ids: np.ndarray,
                   selected: np.ndarray, background: np.ndarray, probabilities: np.ndarray) -> list[dict]:
    names = feature_names("session")
    clusters = sorted(int(c) for c in np.unique(labels) if c >= 0)
    tops = _top_values(con, run_id)
    volumes = {r[0]: r[1:] for r in con.execute(
        """SELECT c.cluster_id, count(*), count(DISTINCT s.client_key), sum(s.n_requests), min(s.start_ts), max(s.end_ts)
           FROM session_clusters c JOIN sessions s USING (session_id)
           WHERE c.cluster_run_id = $run AND c.cluster_id >= 0 GROUP BY 1""", {"run": run_id}).fetchall()}
    mean_bg = background.mean(axis=0)
    std_bg = background.std(axis=0)
    profiles = []
    for cluster in clusters:
        members = labels == cluster
        values = selected[members]
        pooled = np.sqrt((values.var(axis=0) + std_bg ** 2) / 2)
        effect = np.divide(values.mean(axis=0) - mean_bg, pooled, out=np.zeros(len(names)), where=pooled > 0)
        order = np.argsort(-np.abs(effect))[:6]
        member_ids = session_ids[members]
        by_probability = np.argsort(-probabilities[members], kind="stable")
        typical = [int(s) for s in member_ids[by_probability[:3]]]
        boundary = [int(s) for s in member_ids[by_probability[::-1][:2]]]
        n_sessions, n_clients, n_requests, first_ts, last_ts = volumes[cluster]
        profiles.append({
            "cluster_id": cluster, "n_sessions": int(n_sessions), "n_clients": int(n_clients),
            "n_requests": int(n_requests), "first_ts": first_ts, "last_ts": last_ts,
            "top_paths": tops["paths"].get(cluster, []), "top_params": tops["params"].get(cluster, []),
            "top_user_agents": tops["agents"].get(cluster, []), "statuses": tops["statuses"].get(cluster, []),
            "distinguishing_features": [
                {"feature": names[j], "cluster_mean": float(values[:, j].mean()), "background_mean": float(mean_bg[j]),
                 "effect_size": float(effect[j])} for j in order],
            "typical_sessions": typical, "boundary_sessions": boundary,
            "exemplar_requests": _exemplar_requests(con, typical + boundary),
        })
    return profiles


def _top_values(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, dict[int, list]]:
    """Top path templates, parameter names, user agents and statuses per cluster, in one pass each."""
    queries = {
        "paths": "regexp_replace(r.path_decoded, '[0-9]+', '{n}', 'g')",
        "agents": "coalesce(r.user_agent, '-')",
        "statuses": "coalesce(CAST(r.status AS VARCHAR), '-')",
        "params": None,
    }
    out: dict[str, dict[int, list]] = {}
    for key, expression in queries.items():
        value = expression or "unnest(list_transform(list_filter(string_split(r.query, '&'), lambda x: x <> ''), lambda x: split_part(x, '=', 1)))"
        rows = con.execute(
            f"""WITH member AS (
                    SELECT c.cluster_id, {value} AS value
                    FROM session_clusters c JOIN requests r USING (session_id)
                    WHERE c.cluster_run_id = $run AND c.cluster_id >= 0
                )
                SELECT cluster_id, value, count(*) AS n FROM member GROUP BY 1, 2
                QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY count(*) DESC, value) <= {TOP}
                ORDER BY cluster_id, n DESC, value""", {"run": run_id}).fetchall()
        grouped: dict[int, list] = {}
        for cluster, value, n in rows:
            grouped.setdefault(cluster, []).append([value, int(n)])
        out[key] = grouped
    return out


def _exemplar_requests(con: duckdb.DuckDBPyConnection, session_ids: list[int], per_session: int = 3) -> list[dict]:
    if not session_ids:
        return []
    rows = con.execute(
        """SELECT session_id, request_id, ts, method, path, query, status, user_agent FROM (
               SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY ts NULLS LAST, request_id) AS k
               FROM requests WHERE list_contains($ids, session_id)) WHERE k <= $n ORDER BY session_id, k""",
        {"ids": session_ids, "n": per_session}).fetchall()
    return [{"session_id": r[0], "request_id": r[1], "ts": r[2], "method": r[3], "path": r[4], "query": r[5],
             "status": r[6], "user_agent": r[7]} for r in rows]


def profile_json(profile: dict) -> str:
    return json.dumps(profile, default=str, ensure_ascii=False)
