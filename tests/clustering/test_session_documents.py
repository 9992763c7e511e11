"""Session documents (clustering/matrix.py) read each session's and each returning client's first targets in
one scan of the requests (sql/first_targets.sql, issue C2): they must equal a plain reading of the requests."""

import numpy as np
import pytest

from waflens.clustering import matrix
from tests.data.helpers import generated_db


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    return generated_db(tmp_path_factory.mktemp("documents"), 6_000, seed=3).con


def _reference(con, session_ids: np.ndarray) -> tuple[list[str], list[str]]:
    """(documents, own parts) from the requests in Python: a session's first distinct targets, then its client's
    over the given sessions (a client with one of them repeats the session's own)."""
    wanted = set(session_ids.tolist())
    rows = con.execute("""SELECT session_id, client_key, path_decoded, query_decoded FROM requests
                          ORDER BY request_id""").fetchall()
    per_session: dict[int, list[str]] = {}
    per_client: dict[str, list[str]] = {}
    client_of: dict[int, str] = {}
    for session_id, client_key, path, query in rows:
        if session_id not in wanted:
            continue
        target = path + ("?" + query if query != "" else "")
        client_of[session_id] = client_key
        for seen in (per_session.setdefault(session_id, []), per_client.setdefault(client_key, [])):
            if target not in seen:
                seen.append(target)
    sessions_of = {c: sum(1 for s in client_of if client_of[s] == c) for c in per_client}
    out, own = [], []
    for s in session_ids.tolist():
        mine = "\x1f".join(per_session[s][: matrix.MAX_TARGETS_PER_SESSION])
        theirs = "\x1f".join(per_client[client_of[s]][: matrix.MAX_TARGETS_PER_SESSION])
        out.append(mine + " " + (theirs if sessions_of[client_of[s]] > 1 else mine))
        own.append(mine)
    return out, own


@pytest.mark.parametrize("chunk", [50_000, 7])   # 7: many chunks, each kept whole per client
def test_documents_equal_a_plain_reading_of_the_requests(traffic, chunk, monkeypatch):
    con = traffic
    monkeypatch.setattr(matrix, "DOCUMENT_CHUNK", chunk)
    every = np.array([r[0] for r in con.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()], dtype=np.int64)
    some = every[::3]                     # a client's other sessions left out: its targets come from these only
    for session_ids in (every, some):
        clients = matrix.session_clients(con, session_ids)
        assert (clients.sessions > 1).any() and (clients.sessions == 1).any()   # both kinds of client are read
        own: list[str] = []
        documents = matrix.session_documents(con, session_ids, clients, own)
        assert (documents, own) == _reference(con, session_ids)
