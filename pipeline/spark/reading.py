"""Checking the input files on the driver, and reading all their lines in one Spark scan.

Files are opened through Spark's Hadoop filesystem layer, so a path may be local or ``s3a://``,
``hdfs://``, ``gs://``… (whatever connector the cluster has). Compression follows Hadoop's codec
rule: a file ending in ``.gz`` is gunzipped (DuckDB ingest looks at the magic bytes instead, so a gzip
file without the suffix must be renamed for Spark).

On the driver each file costs one status call (missing? a directory? empty?) and, with ``--format auto``
and no ``--log-format``, a read of its first 64 KB to sniff the format as DuckDB ingest does. With the
format given there is nothing to sniff (DuckDB ingest does not sniff then either), and the head is read
later only for the files of which nothing parsed (for the hint). A file that fails these checks is
reported and skipped (:class:`InputFailure`), as ``waflens ingest`` does.

The lines are read on the executors in ONE scan of every line-format file (and one ``wholetext`` scan of
every raw HTTP dump, whose requests span lines; such dumps are small next to access logs), not a scan per
file: the plan stays the same size for thousands of files. Each row is mapped back to its file through
``input_file_name()`` and a broadcast table of the files' Hadoop-qualified URIs, the very strings Spark
reports (``file:///dir/a%20b.log``: percent-encoded, whatever spelling was given). Paths are handed to
Spark with their glob characters escaped, so ``a[1].log`` is that file, not ``a1.log``. Lines are split
on ``\\n`` only (Spark's default would also split on a bare ``\\r`` and number records differently from
DuckDB) and kept as bytes (a cast of the text column to binary keeps them exactly, valid UTF-8 or not).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from waflens.data.errors import InputError, WaflensError
from waflens.pipeline.spark.parsing import FileTask

SNIFF_BYTES = 64 * 1024
_GLOB_CHARACTERS = "\\{}[]*?"
_PATTERN_CHARACTERS = "*?[{"   # what makes a path a pattern (Hadoop's glob syntax)


class SparkInput(NamedTuple):
    file_id: int
    path: str       # as given on the command line: the ``file`` column of every output
    format: str
    log_format: str | None
    head: bytes | None   # the first bytes, decompressed, when the format was sniffed on them (else read lazily)
    uri: str        # the Hadoop-qualified URI: what ``input_file_name()`` reports for the file's rows
    location: str   # the same path unencoded (``file:/dir/a b.log``): what Spark is given, and names in some errors

    def task(self) -> FileTask:
        return FileTask(self.file_id, self.format, self.log_format)


class InputFailure(NamedTuple):
    """A file skipped because it cannot be ingested: the others are, and the command exits with its code."""
    file_id: int    # its position on the command line, as SparkInput.file_id
    path: str
    error: WaflensError
    format: str | None = None   # when known (the file failed after its format was found)


def resolve_inputs(spark, paths: list[str], options) -> tuple[list[SparkInput], list[InputFailure]]:
    """Each file's id (its position) and format; the files that cannot be read are returned apart.

    A pattern stands for the files it matches (:func:`expand_patterns`); one that matches none fails like a
    missing file. The same file given twice, under one spelling or two (``logs/a.log`` and ``./logs/a.log``),
    is refused with InputError before anything is read: records would count twice."""
    from waflens.data.ingest import resolve_format

    paths, unmatched = expand_patterns(spark, paths)
    explicit = bool(options.log_format) or options.format != "auto"
    explicit_format = resolve_format(b"", options, Path("-"))[0] if explicit else None
    given: dict[str, str] = {}
    inputs, failures = [], []
    for file_id, path in enumerate(paths):
        if path in unmatched:
            failures.append(InputFailure(file_id, path, InputError(f"{path} matches no file")))
            continue
        try:
            fs, qualified = _qualified(spark, path)
        except InputError as error:
            failures.append(InputFailure(file_id, path, error))
            continue
        uri = qualified.toUri().toString()
        if uri in given:
            same = "is given twice" if given[uri] == path else f"and {given[uri]} are the same file"
            raise InputError(f"{path} {same}: pass each file once")
        given[uri] = path
        try:
            _check_status(fs, qualified, path)
            head = None if explicit else _read_head(spark, fs, qualified, path)
            if head is not None and not head.strip():
                raise InputError(f"{path} is empty: nothing to ingest")
            fmt_name = explicit_format or resolve_format(head, options, Path(path))[0]
        except InputError as error:
            failures.append(InputFailure(file_id, path, error))
            continue
        inputs.append(SparkInput(file_id, path, fmt_name, options.log_format, head, uri, qualified.toString()))
    return inputs, failures


def expand_patterns(spark, paths: list[str]) -> tuple[list[str], set[str]]:
    """``paths`` with every pattern (``*``, ``?``, ``[ab]``, ``{a,b}``: Hadoop's glob syntax) replaced by the files it
    matches, sorted by name, and the set of patterns that match none (kept in place, to be reported).

    This is what a shell does for local files, for the paths no shell expands: ``s3a://logs/2026-12-01/*.gz``.
    A path naming an existing file is that file even if its name holds such characters (``a[1].log``). Each
    match is named as Hadoop lists it (``s3a://bucket/key``), or by its local path when the pattern had no
    scheme; directories that match are left out (their files are matched by ``dir/*``)."""
    expanded: list[str] = []
    unmatched: set[str] = set()
    for path in paths:
        if not any(ch in path for ch in _PATTERN_CHARACTERS):
            expanded.append(path)
            continue
        try:
            fs, qualified = _qualified(spark, path)
            if fs.exists(qualified):
                expanded.append(path)
                continue
            statuses = fs.globStatus(qualified) or []
        except InputError:
            expanded.append(path)    # the checks that follow report it
            continue
        except Exception:            # py4j: a malformed pattern ({a,b without its brace)
            expanded.append(path)
            continue
        local = "://" not in path
        matches = sorted(status.getPath().toUri().getPath() if local else status.getPath().toString()
                         for status in statuses if status.isFile())
        if matches:
            expanded.extend(matches)
        else:
            expanded.append(path)
            unmatched.add(path)
    return expanded, unmatched


def _qualified(spark, path: str):
    """The file's Hadoop filesystem and fully qualified path (scheme, authority, absolute, normalised)."""
    jvm = spark._jvm
    try:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
        fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())
        qualified = fs.makeQualified(hadoop_path)
        if not hadoop_path.isAbsolute():
            # resolved against the working directory, whose local URI (file:/dir) lacks the empty authority of an
            # absolute path's (file:///dir), which is how Spark lists the file: qualify the absolute path again
            qualified = fs.makeQualified(jvm.org.apache.hadoop.fs.Path(qualified.toUri().getPath()))
        return fs, qualified
    except Exception as error:  # py4j wraps a malformed URI, an unknown scheme, refused credentials
        raise InputError(f"{path}: cannot read ({java_message(error)})") from None


def _check_status(fs, qualified, path: str) -> None:
    try:
        status = fs.getFileStatus(qualified)
    except Exception as error:  # FileNotFoundException, AccessDeniedException...
        if "FileNotFoundException" in str(error):
            raise InputError(f"{path}: no such file") from None
        raise InputError(f"{path}: cannot read ({java_message(error)})") from None
    if status.isDirectory():
        raise InputError(f"{path} is a directory: pass the log files inside it (e.g. {path}/*.log)")
    if status.getLen() == 0:
        raise InputError(f"{path} is empty: nothing to ingest")


def read_head(spark, path: str, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a file, decompressed when its name says gzip, through Hadoop's filesystem."""
    fs, qualified = _qualified(spark, path)
    _check_status(fs, qualified, path)
    return _read_head(spark, fs, qualified, path, size)


def _read_head(spark, fs, qualified, path: str, size: int = SNIFF_BYTES) -> bytes:
    try:
        stream = fs.open(qualified)
    except Exception as error:
        raise InputError(f"{path}: cannot read ({java_message(error)})") from None
    try:
        factory = spark._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(spark._jsc.hadoopConfiguration())
        codec = factory.getCodec(qualified)
        reader = codec.createInputStream(stream) if codec is not None else stream
        try:
            return bytes(reader.readNBytes(size))
        except Exception as error:
            raise InputError(f"{path}: cannot read ({java_message(error)}); a .gz name needs gzip content") from None
    finally:
        stream.close()


def java_message(error: Exception) -> str:
    """The first line of what Java said (py4j's own wrapper text left out)."""
    text = str(getattr(error, "java_exception", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def escape_glob(path: str) -> str:
    """``path`` with Hadoop's glob characters escaped: Spark globs every path it is given."""
    return "".join("\\" + ch if ch in _GLOB_CHARACTERS else ch for ch in path)


def read_records(spark, inputs: list[SparkInput]):
    """One DataFrame (file_id int, block long, raw binary) of every record source, in scan order per split.

    Line formats give one row per line; ``block`` is the byte offset of the split it was read in. A raw
    HTTP dump gives one row (block 0) holding the whole file. One scan per kind, whatever the number of files."""
    from pyspark.sql import functions as F

    files = F.broadcast(spark.createDataFrame([(item.uri, item.file_id) for item in inputs],
                                              "uri string, file_id int")) if len(inputs) > 1 else None
    frames = []
    for whole in (False, True):
        chosen = [item for item in inputs if (item.format == "raw-http") == whole]
        if not chosen:
            continue
        reader = spark.read if whole else spark.read.option("lineSep", "\n")
        text = reader.text([escape_glob(item.location) for item in chosen], wholetext=whole)
        _check_listing(text, chosen)
        block, raw = F.expr("input_file_block_start()").alias("block"), F.col("value").cast("binary").alias("raw")
        if len(chosen) == 1:   # nothing to look up
            frames.append(text.select(F.lit(chosen[0].file_id).cast("int").alias("file_id"), block, raw))
            continue
        scanned = text.select(F.input_file_name().alias("uri"), block, raw)
        # a left join: a row whose file Spark named otherwise keeps a NULL file_id, which the parser refuses
        frames.append(scanned.join(files, "uri", "left").select("file_id", "block", "raw"))
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame)
    return records


def _check_listing(text, chosen: list[SparkInput]) -> None:
    """Spark's file listing is the files given, under the URIs the rows will be mapped back with."""
    listed, wanted = set(text.inputFiles()), {item.uri for item in chosen}
    if listed != wanted:
        strays = sorted(listed ^ wanted)[:3]
        raise InputError(f"Spark lists the input files differently from the paths given ({', '.join(strays)}): "
                         "pass plain file paths, without glob patterns")
