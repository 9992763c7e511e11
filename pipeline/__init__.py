"""The stages run in turn: what ``waflens`` (app) calls to run more than one package.

app -> pipeline -> scoring -> labeling -> clustering -> data -> runtime: each layer imports only those
below it (tests/test_import_graph.py). Here: :mod:`~waflens.pipeline.retrain` (the cron job: ingest,
sessionize, cluster, summarize, train, gates, promote), its Prometheus output
(:mod:`~waflens.pipeline.prometheus`), clustering with the analysts' allowlist
(:mod:`~waflens.pipeline.cluster`) and the creation of every package's tables (:mod:`~waflens.pipeline.schema`).
"""
