"""``waflens spark run``: the daily job (ingest with request features, sessionize, score, cluster) in one Spark
application, for a cron line that starts one ``spark-submit`` instead of one per step (each pays a JVM start and
an application).

The steps are the per-step commands' own functions, in their order, in one SparkSession: ingest with request
features (``spark features``), sessions and, with a session model, their scores in the same pass (``spark sessionize
--model``), request scores with a request model (``spark score``), then clustering (``spark cluster``). They write
the directories those commands write, so any one step can be rerun with its own command.

Everything that can be refused without Spark is refused before it starts (:func:`checked_plan`): the models (each
given under the option of its level), the gap. A step that fails stops the run, and its error says which step it was
(:class:`StepFailed`, with the exit code of the error it wraps). A file that cannot be ingested does not stop the
run: as ``spark features`` does, it is skipped, and the command exits with its code after the other steps ran.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, NamedTuple

from waflens.data.errors import InputError, WaflensError
from waflens.data.sessionize import checked_gap_minutes

if TYPE_CHECKING:   # the step modules import pyspark, numba, scikit-learn: loaded when the run starts
    from waflens.pipeline.spark.cluster import ClusterSummary, SparkClusterOptions
    from waflens.pipeline.spark.ingest import IngestResult
    from waflens.pipeline.spark.score import Model, ScoreSummary
    from waflens.pipeline.spark.sessions import SessionsSummary


class StepFailed(WaflensError):
    """A step of ``spark run`` failed: its name, then the step's own one-line error, with that error's exit code."""

    def __init__(self, step: str, error: WaflensError):
        self.step = step
        self.exit_code = error.exit_code
        super().__init__(f"{step}: {error}")


class RunPlan(NamedTuple):
    """What the steps take besides the files, checked before Spark starts (:func:`checked_plan`)."""
    session_model: Model | None   # checked: a session model
    request_model: Model | None   # checked: a request model
    gap_minutes: float
    clustering: SparkClusterOptions


class RunSummary(NamedTuple):
    ingest: IngestResult          # its cached rows released
    sessionize: SessionsSummary
    score: ScoreSummary | None    # with a request model
    cluster: ClusterSummary


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Name the step in what fails inside the block: a waflens error becomes :class:`StepFailed`; any other
    exception (a bug, a Spark failure) keeps its traceback, with a note naming the step."""
    try:
        yield
    except WaflensError as error:
        raise StepFailed(name, error) from error
    except Exception as error:
        error.add_note(f"(in the {name} step of `waflens spark run`)")
        raise


def checked_plan(session_model: str | None, request_model: str | None, gap_minutes: float,
                 clustering: SparkClusterOptions) -> RunPlan:
    """The plan of a run, refused unless each model is of the level its option takes and the gap is positive."""
    from waflens.data.feature_spec import SESSION_FEATURES
    from waflens.pipeline.spark import score

    session = request = None
    if session_model is not None:
        session = score.checked_model(session_model)
        if session.level != "session":
            raise InputError(f"{session_model} is a {session.level}-level model: `spark run --model` takes a session "
                             f"model (scored while sessionizing); give a request model as --request-model")
        score.missing_session_features(session, [f.name for f in SESSION_FEATURES])
    if request_model is not None:
        request = score.checked_model(request_model)
        if request.level != "request":
            raise InputError(f"{request_model} is a {request.level}-level model: `spark run --request-model` takes a "
                             f"request model; give a session model as --model")
    return RunPlan(session, request, checked_gap_minutes(gap_minutes), clustering)


def run_pipeline(spark, files: list[str], out: str, options, key: bytes | None, plan: RunPlan) -> RunSummary:
    """Every step of the daily job on ``files`` into ``out``, in ``spark``: see the module docstring. ``options``
    are the ingest's (:class:`waflens.data.ingest.IngestOptions`), ``key`` the pseudonym key (None: raw IPs)."""
    from waflens.pipeline.spark.cluster import cluster_directory
    from waflens.pipeline.spark.ingest import ingest
    from waflens.pipeline.spark.score import score_directory
    from waflens.pipeline.spark.sessions import sessionize_directory

    with step("ingest"):
        ingested = ingest(spark, list(files), out, options, key, with_features=True)
        ingested.release()
    with step("sessionize"):
        sessions = sessionize_directory(spark, out, plan.gap_minutes, plan.session_model)
    scores = None
    if plan.request_model is not None:
        with step("score"):
            scores = score_directory(spark, out, plan.request_model)
    with step("cluster"):
        clusters = cluster_directory(spark, out, plan.clustering)
    return RunSummary(ingested, sessions, scores, clusters)
