"""``waflens spark score DIR --model PATH``: score every request (or session) with an exported model.

The artifact, verified on the driver, travels to the executors with ``SparkContext.addArchive`` (a zip named
after its digest: :func:`ship_model`) and is loaded once per Python worker (:func:`_scorer`: the worker keeps it
between tasks, Spark reuses workers); each Arrow batch is scored by the numba runtime's ``score_batch``, the code
a WAF worker runs, on the same feature rows. Request models read ``DIR/requests`` (their rows hold profile and
code-likeness columns that the runtime computes from the raw request, as ``waflens score`` does); session models
read ``DIR/session_features`` (whole Parquet files, decoded by pyarrow in the workers: :func:`score_directory`).
Written to ``DIR/scores/level=request/`` (by day) or ``DIR/scores/level=session/``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from waflens.data.errors import InputError
from waflens.pipeline.spark import layout
from waflens.runtime.artifact import read_artifact

# Session features are read as whole files up to this size (a task holds its files in memory), else as rows
WHOLE_FILE_BYTES = 256 * 2**20
FILE_BATCH_ROWS = 10_000   # rows per scored batch of a whole file, as Spark's arrow.maxRecordsPerBatch default
# a top-level field in the text of a Parquet schema (see _parquet_columns)
TOP_LEVEL_FIELD = re.compile(r"^  (?:optional|required|repeated) \S+ ([^\s;(]+)", re.MULTILINE)
_LOADED: dict[tuple[str, str], object] = {}  # per Python worker: (artifact path, digest) -> loaded scorer
_VERIFIED: set[str] = set()                   # on the driver: digests of artifacts the runtime's checks passed
_SHIPPED: dict[str, str] = {}                 # on the driver: "<application id> <digest>" -> the name shipped


class ScoreSummary(NamedTuple):
    level: str
    scored: int
    by_class: dict
    output: str


class Model(NamedTuple):
    path: str
    level: str
    digest: str          # the manifest's sha256: a worker reloads when it changes
    names: list          # the feature columns, in the model's order
    has_bot_score: bool


def checked_model(path: str | os.PathLike) -> Model:
    """What the driver needs of an artifact, verified on the driver by the runtime's own checks (the scorer is
    built, without compiling or warming up): an artifact the executors would refuse fails before any job."""
    arrays, manifest = read_artifact(path)
    level = manifest.get("level")
    if level not in ("request", "session"):
        raise InputError(f"{path} is a {level!r}-level model: waflens spark score takes request or session models")
    digest = str(manifest.get("manifest_sha256", ""))
    if digest not in _VERIFIED:   # the digest covers the manifest and every file's sha256: same digest, same checks
        _scorer_class(level).load(path, warm_up=False)
        if digest:
            _VERIFIED.add(digest)
    return Model(str(path), level, digest, list(manifest["feature_spec"]["names"]), "bot_quantiles" in arrays)


def _scorer_class(level: str):
    from waflens.runtime.scorer import Scorer, SessionScorer

    return Scorer if level == "request" else SessionScorer


def _texts(column) -> list:
    """Values of a string column with None for every missing one (pandas may hand NaN)."""
    return [value if isinstance(value, str) else None for value in column]


def _scorer(path: str, digest: str, level: str):
    """The scorer of the artifact, loaded (verified, compiled, warmed up) at the first batch of this worker; refused
    when its digest is not the one the driver checked."""
    key = (path, digest)
    if key not in _LOADED:
        from waflens.runtime.artifact import ArtifactError

        scorer = _scorer_class(level).load(path)
        loaded = str(scorer.manifest.get("manifest_sha256", ""))
        if loaded != digest:
            raise ArtifactError(f"the artifact at {path} has digest {loaded[:16]}, the driver checked {digest[:16]}: "
                                "it changed while the job ran; run the command again")
        _LOADED[key] = scorer
    return _LOADED[key]


def _shipped(name: str, fallback: str) -> str:
    """Where the artifact shipped by :func:`ship_model` is unpacked on this worker (the original path when not
    shipped)."""
    from pyspark import SparkFiles

    try:
        shipped = SparkFiles.get(name)
    except Exception:  # no SparkContext files on this worker
        return fallback
    return shipped if os.path.isdir(shipped) else fallback


def request_scores(batches, path: str, digest: str, name: str):
    """mapInPandas: file, record, request_id, day, score, score_class of each request of each batch."""
    import pandas as pd

    scorer = _scorer(_shipped(name, path), digest, "request")
    for batch in batches:
        rows = np.empty((len(batch), len(scorer.feature_names)))
        for i, (method, path_, query, body, agent, referer) in enumerate(zip(*(_texts(batch[c]) for c in (
                "method", "path", "query", "body", "user_agent", "referer")))):
            target = (path_ or "") + ("?" + query if query else "")
            rows[i] = scorer.request_features(method, target, {"User-Agent": agent, "Referer": referer}, body or "")
        scores = scorer.score_batch(rows) if len(batch) else np.zeros(0)
        yield pd.DataFrame({"file": batch["file"], "record": batch["record"], "request_id": batch["request_id"],
                            "day": batch["day"], "score": scores,
                            "score_class": [scorer.score_class(s) for s in scores]})


def session_scores(batches, path: str, digest: str, name: str, schema):
    """mapInArrow: session_id, score, score_class (and bot_score when the model has one) of each session, in the
    Arrow ``schema`` (:func:`session_score_schema`)."""
    import pyarrow as pa

    scorer = session_scorer(path, digest, name)
    for batch in batches:
        yield pa.RecordBatch.from_arrays([batch.column("session_id"), *session_score_arrays(scorer, batch)],
                                         schema=schema)


def session_scores_of_files(batches, path: str, digest: str, name: str, schema, names):
    """mapInArrow over Spark's ``binaryFile`` rows of ``DIR/session_features``: each Parquet file's bytes (read by
    Spark, through Hadoop's filesystem and credentials) are decoded here by pyarrow, and their batches scored by
    :func:`session_scores`. The 35 feature columns then never become the JVM's rows and Arrow again, which cost
    Spark more than the scoring itself (see :func:`score_directory`)."""
    yield from session_scores(_decoded_files(batches, ["session_id", *names]), path, digest, name, schema)


def _decoded_files(batches, columns: list[str]):
    """The Arrow batches of ``columns`` of every Parquet file whose bytes are in the ``content`` column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for files in batches:
        for content in files.column("content"):
            yield from pq.ParquetFile(pa.BufferReader(content.as_buffer())).iter_batches(batch_size=FILE_BATCH_ROWS,
                                                                                         columns=columns)


def feature_rows(batch, names) -> np.ndarray:
    """The (n, len(names)) float64 matrix of an Arrow batch's feature columns (nulls as NaN)."""
    if not batch.num_rows:
        return np.zeros((0, len(names)))
    return np.column_stack([batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in names])


def session_score_arrays(scorer, batch) -> list:
    """The :func:`score_fields` columns (score, score_class, bot_score when the model has one) of an Arrow batch of
    session features: what ``spark score`` and ``spark sessionize --model`` write."""
    import pyarrow as pa

    rows = feature_rows(batch, scorer.feature_names)
    scores = scorer.score_batch(rows) if len(rows) else np.zeros(0)
    columns = {"score": scores, "score_class": [scorer.score_class(s) for s in scores]}
    if scorer.has_bot_score:
        columns["bot_score"] = scorer.bot_scores(rows) if len(rows) else np.zeros(0, np.int32)
    return [pa.array(columns[field.name], type=field.type) for field in score_fields(scorer.has_bot_score)]


def session_scorer(path: str, digest: str, name: str):
    """The session scorer of an artifact shipped with :func:`ship_model` (loaded once per Python worker)."""
    return _scorer(_shipped(name, path), digest, "session")


def ship_model(spark, model: Model) -> str:
    """Send the artifact to every executor; the name the workers find it under (:func:`_shipped`).

    It goes as a zip (``SparkContext.addArchive``, unpacked on each executor): ``addFile`` takes a local directory
    in local mode only, so a directory would be refused on any cluster. Spark ships a name once per application
    and never overwrites it, so a model retrained into the same directory would leave the workers scoring with the
    old one: each digest is shipped under a name of its own (``<directory>-<digest>.zip``), once per application."""
    context = spark.sparkContext
    shipped = f"{context.applicationId} {model.digest or os.urandom(8).hex()}"   # a schema-1 artifact has no digest
    if shipped not in _SHIPPED:
        staging = Path(tempfile.mkdtemp(prefix="waflens-model-"))
        atexit.register(shutil.rmtree, staging, True)   # executors fetch it as long as the application runs
        name = f"{Path(model.path.rstrip('/')).name}-{(model.digest or shipped[-16:])[:16]}"
        archive = shutil.make_archive(str(staging / name), "zip", root_dir=model.path)
        context.addArchive(archive)
        _SHIPPED[shipped] = Path(archive).name
    return _SHIPPED[shipped]


def _parquet_files(spark, directory: str) -> list:
    """(Hadoop path, size) of each ``*.parquet`` file directly in ``directory``: Hadoop's listing, no job; none when
    the directory is missing."""
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(directory)
    filesystem = path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not filesystem.exists(path):
        return []
    return [(status.getPath(), status.getLen()) for status in filesystem.listStatus(path)
            if status.getPath().getName().endswith(".parquet")]


def _parquet_columns(spark, path) -> list[str]:
    """The top-level column names in the footer of the Parquet file at Hadoop ``path``, read by the driver: Spark's
    schema inference would run a job for what one footer says (a tenth of a small rescoring's time). The schema
    comes as its text, one Py4J call (``message spark_schema {`` then a field a line, two spaces deep at the top
    level, e.g. ``  optional binary client_key (STRING);``): walking the Java field list cost a call a field and
    a Java exception at its end, 30 ms."""
    jvm = spark._jvm
    parquet = jvm.org.apache.parquet.hadoop
    reader = parquet.ParquetFileReader.open(
        parquet.util.HadoopInputFile.fromPath(path, spark._jsc.hadoopConfiguration()))
    try:
        schema = reader.getFooter().getFileMetaData().getSchema().toString()
    finally:
        reader.close()
    return TOP_LEVEL_FIELD.findall(schema)


def scores_path(out: str, level: str) -> str:
    return layout.path_of(layout.path_of(out, layout.SCORES), f"level={level}")


def score_fields(has_bot_score: bool) -> list:
    """The Arrow fields of a session's scores: score, score_class, and bot_score when the model has one."""
    import pyarrow as pa

    return [pa.field("score", pa.float64()), pa.field("score_class", pa.string()),
            *([pa.field("bot_score", pa.int32())] if has_bot_score else [])]


def session_score_schema(model: Model):
    """The Arrow schema of ``DIR/scores/level=session``: session_id and :func:`score_fields`."""
    import pyarrow as pa

    return pa.schema([pa.field("session_id", pa.int64()), *score_fields(model.has_bot_score)])


def missing_session_features(model: Model, columns) -> None:
    """Refuse a session model that wants features a Spark output directory does not have."""
    missing = sorted(set(model.names) - set(columns))
    if missing:
        raise InputError(f"{model.path} wants session features {missing} that this waflens version does not compute: "
                         "rerun `waflens spark sessionize` with the waflens version that trained it")


def class_counts(column: str = "score_class") -> list:
    """Spark aggregate expressions: how many rows of each score class (the names the runtime gives, and error)."""
    from pyspark.sql import functions as F

    from waflens.runtime.scorer import score_class_names

    # SQL text: one Py4J call an expression instead of five (the names are waflens's own)
    return [F.expr(f"sum(cast({column} = '{name}' as bigint))").alias(name)
            for name in (*score_class_names(), "error")]


def score_directory(spark, out: str, model: str | os.PathLike | Model, *,
                    whole_file_bytes: int = WHOLE_FILE_BYTES) -> ScoreSummary:
    """Score ``DIR`` with the artifact at ``model`` (or the :class:`Model` of one already checked); write
    ``DIR/scores/level=<level>/``.

    Session features are read as whole Parquet files (Spark's ``binaryFile``: one binary value per file, through
    Hadoop's filesystem) and decoded by pyarrow in the Python workers, when no file is larger than
    ``whole_file_bytes``: a task holds its files in memory. Otherwise they come as Spark's rows; the scores are the
    same. Handing 35 columns of rows to Python was most of the time: 300,000 sessions took 1.0 s that way and
    0.6 s as whole files, 30,000 sessions 0.59 s and 0.36 s (``local[2]``, median of 7)."""
    from pyspark.sql import Observation

    checked = model if isinstance(model, Model) else checked_model(model)
    model, level, digest = checked.path, checked.level, checked.digest
    # the count of each class rides along with the write (an Observation) instead of a job reading it back
    counts = Observation("score classes")
    name = ship_model(spark, checked)
    target = scores_path(out, level)
    if level == "request":
        requests = layout.read_table(spark, out, layout.REQUESTS)
        schema = ("file string, record long, request_id long, day string, score double, score_class string")
        scored = requests.select("file", "record", "request_id", requests["day"].cast("string").alias("day"),
                                 "method", "path", "query", "body", "user_agent", "referer") \
            .mapInPandas(lambda b: request_scores(b, model, digest, name), schema)
        scored.observe(counts, *class_counts()).write.mode("overwrite").partitionBy("day").parquet(target)
    else:
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = session_score_schema(checked)
        names = checked.names
        directory = layout.path_of(out, layout.SESSION_FEATURES)
        files = _parquet_files(spark, directory)
        if files and max(size for _, size in files) <= whole_file_bytes:   # the files whole, decoded by pyarrow
            missing_session_features(checked, _parquet_columns(spark, files[0][0]))   # sessionize wrote them all
            scored = spark.read.format("binaryFile").option("pathGlobFilter", "*.parquet").load(directory) \
                .select("content") \
                .mapInArrow(lambda b: session_scores_of_files(b, model, digest, name, schema, names),
                            from_arrow_schema(schema))
        else:                                                              # Spark's rows, as Arrow batches
            features = layout.read_table(spark, out, layout.SESSION_FEATURES)   # or its error when missing
            missing_session_features(checked, features.columns)
            scored = features.select("session_id", *names) \
                .mapInArrow(lambda b: session_scores(b, model, digest, name, schema), from_arrow_schema(schema))
        scored.observe(counts, *class_counts()).write.mode("overwrite").parquet(target)
    by_class = {name: int(n) for name, n in counts.get.items() if n}
    return ScoreSummary(level, sum(by_class.values()), by_class, target)
