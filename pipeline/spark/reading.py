"""Finding the input files' formats on the driver, and reading their lines as a Spark DataFrame.

Files are opened through Spark's Hadoop filesystem layer, so a path may be local or ``s3a://``,
``hdfs://``, ``gs://``… (whatever connector the cluster has). Compression follows Hadoop's codec
rule: a file ending in ``.gz`` is gunzipped (DuckDB ingest looks at the magic bytes instead, so a gzip
file without the suffix must be renamed for Spark).

Only the first 64 KB of each file reach the driver (to sniff ``--format auto``, as DuckDB ingest
does); the lines themselves are read on the executors with ``lineSep`` ``\\n`` (Spark's default would
also split on a bare ``\\r`` and number records differently from DuckDB), as bytes (a cast of the text
column to binary keeps them exactly, valid UTF-8 or not). A raw HTTP dump, whose requests span lines,
is read whole (``wholetext``) as one row: such dumps are small next to access logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from waflens.data.errors import InputError
from waflens.pipeline.spark.parsing import FileTask

SNIFF_BYTES = 64 * 1024


class SparkInput(NamedTuple):
    file_id: int
    path: str       # as given on the command line: the ``file`` column of every output
    format: str
    log_format: str | None
    head: bytes     # the first bytes, decompressed: what the format was sniffed on

    def task(self) -> FileTask:
        return FileTask(self.file_id, self.format, self.log_format)


def resolve_inputs(spark, paths: list[str], options) -> list[SparkInput]:
    """Each file's id (its position) and format, from its first bytes; InputError for a missing file."""
    from waflens.data.ingest import resolve_format

    seen, inputs = set(), []
    for path in paths:
        if path in seen:
            raise InputError(f"{path} is given twice: pass each file once")
        seen.add(path)
        head = read_head(spark, path)
        if not head.strip():
            raise InputError(f"{path} is empty: nothing to ingest")
        fmt_name, _ = resolve_format(head, options, Path(path))
        inputs.append(SparkInput(len(inputs), path, fmt_name, options.log_format, head))
    return inputs


def read_head(spark, path: str, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a file, decompressed when its name says gzip, through Hadoop's filesystem."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    try:
        fs = hadoop_path.getFileSystem(conf)
        status = fs.getFileStatus(hadoop_path)
    except Exception as error:  # py4j wraps FileNotFoundException, unknown schemes, refused credentials
        raise InputError(f"{path}: cannot read ({_java_message(error)})") from None
    if status.isDirectory():
        raise InputError(f"{path} is a directory: pass the log files inside it (e.g. {path}/*.log)")
    stream = fs.open(hadoop_path)
    try:
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hadoop_path)
        reader = codec.createInputStream(stream) if codec is not None else stream
        try:
            return bytes(reader.readNBytes(size))
        except Exception as error:
            raise InputError(f"{path}: cannot read ({_java_message(error)}); a .gz name needs gzip content")
    finally:
        stream.close()


def _java_message(error: Exception) -> str:
    text = str(getattr(error, "java_exception", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_records(spark, inputs: list[SparkInput]):
    """One DataFrame (file_id int, block long, raw binary) of every record source, in scan order per split.

    Line formats give one row per line; ``block`` is the byte offset of the split it was read in. A raw
    HTTP dump gives one row (block 0) holding the whole file."""
    from pyspark.sql import functions as F

    frames = []
    for item in inputs:
        if item.format == "raw-http":
            text = spark.read.text(item.path, wholetext=True)
        else:
            text = spark.read.option("lineSep", "\n").text(item.path)
        frames.append(text.select(F.lit(item.file_id).cast("int").alias("file_id"),
                                  F.expr("input_file_block_start()").alias("block"),
                                  F.col("value").cast("binary").alias("raw")))
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame)
    return records
