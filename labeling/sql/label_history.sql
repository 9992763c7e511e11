-- The label events of a cluster, and the analysts' decisions made on other clusters (of any run) that reached
-- its member sessions: how many of them each reached, and for how many it is still the latest decision.
WITH members AS (
    SELECT session_id FROM session_clusters
    WHERE cluster_run_id = $run AND cluster_id = $cluster AND probability >= 0.5
), reached AS (
    SELECT d.label_event_id, count(*) AS sessions FROM session_decisions d JOIN members m USING (session_id)
    GROUP BY d.label_event_id
), latest AS (
    SELECT d.label_event_id, count(*) AS sessions FROM session_latest_decisions d JOIN members m USING (session_id)
    GROUP BY d.label_event_id
)
SELECT e.label_event_id, e.created_at, e.cluster_run_id, e.cluster_id, e.source, e.verdict, e.family, e.analyst,
       e.note, e.cluster_run_id = $run AND e.cluster_id = $cluster AS own,
       coalesce(r.sessions, 0) AS sessions_reached, coalesce(l.sessions, 0) AS sessions_current
FROM label_events e LEFT JOIN reached r USING (label_event_id) LEFT JOIN latest l USING (label_event_id)
WHERE (e.cluster_run_id = $run AND e.cluster_id = $cluster) OR r.sessions IS NOT NULL
ORDER BY e.label_event_id
