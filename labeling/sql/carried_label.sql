-- The analysts' label most of a cluster's decided member sessions carry (confirmed or edited, on any run), leaving
-- out families rejected for it ($rejected): what a new run proposes for sessions it has not seen decided.
SELECT d.family, d.verdict, count(*) AS sessions, arg_max(d.analyst, d.label_event_id) AS analyst,
       arg_max(d.note, d.label_event_id) AS note, arg_max(d.cluster_run_id, d.label_event_id) AS cluster_run_id,
       arg_max(d.cluster_id, d.label_event_id) AS cluster_id, max(d.label_event_id) AS label_event_id
FROM session_clusters c JOIN session_latest_decisions d ON d.session_id = c.session_id
WHERE c.cluster_run_id = $run AND c.cluster_id = $cluster AND c.probability >= 0.5
  AND d.source IN ('confirmed', 'edited') AND NOT list_contains($rejected, d.family)
GROUP BY d.family, d.verdict
ORDER BY sessions DESC, label_event_id DESC
LIMIT 1
