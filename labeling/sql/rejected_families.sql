-- Families analysts rejected for member sessions of a cluster (from any run) and have not confirmed or edited
-- for those sessions since: the summarizer must not propose them for this cluster again.
SELECT d.family, count(DISTINCT d.session_id) AS sessions, arg_max(d.analyst, d.label_event_id) AS analyst,
       max(d.created_at) AS rejected_at, arg_max(d.cluster_run_id, d.label_event_id) AS cluster_run_id,
       arg_max(d.cluster_id, d.label_event_id) AS cluster_id
FROM session_clusters c JOIN session_decisions d ON d.session_id = c.session_id
WHERE c.cluster_run_id = $run AND c.cluster_id = $cluster AND c.probability >= 0.5
  AND d.source = 'rejected'
  AND NOT EXISTS (SELECT 1 FROM session_decisions later
                  WHERE later.session_id = d.session_id AND later.family = d.family AND later.source <> 'rejected'
                    AND later.label_event_id > d.label_event_id)
GROUP BY d.family
ORDER BY d.family
