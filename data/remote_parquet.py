"""Reading Parquet in object storage (``s3://``, ``gs://``, ``az://``…) from DuckDB: the traffic views of a
database made by ``waflens spark attach s3a://bucket/prefix``.

DuckDB reads such paths with its httpfs (or azure) extension, which is not in the duckdb wheel: ``INSTALL``
downloads it, so an offline machine may not have it. Where it cannot load, DuckDB's Python client can read the
paths through an fsspec filesystem registered on the connection (s3fs for s3, gcsfs for gs, adlfs for az), slower
but installable from PyPI (``pip install 'waflens[s3]'``). The extension stays preferred when it loads.

A registered filesystem belongs to one connection, and a view keeps only the path: every connection to such a
database needs the reader again, so :func:`waflens.data.db.connect` calls :func:`open_remote_reader` with the
location the database records (:func:`attached_location`). The fsspec filesystems take their credentials,
region and endpoint from the standard environment and config files (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``~/.aws/config``, ``AWS_ENDPOINT_URL`` for an S3-compatible store other than AWS: botocore's own settings).
"""

from __future__ import annotations

import importlib.util
import re

import duckdb

from waflens.data.errors import ConfigError, InputError

# schema_info key: the Parquet directory whose files the traffic views read (written by `waflens spark attach`)
ATTACHED_LOCATION_KEY = "spark_output"
# The DuckDB extension that reads a remote location, by scheme (after s3a:// became s3://).
REMOTE_EXTENSIONS = {"s3": "httpfs", "r2": "httpfs", "gs": "httpfs", "gcs": "httpfs", "http": "httpfs",
                     "https": "httpfs", "hf": "httpfs", "az": "azure", "azure": "azure", "abfss": "azure"}
# The fsspec filesystem (protocol, the package that implements it) that reads a scheme when the extension cannot.
FSSPEC_FILESYSTEMS = {"s3": ("s3", "s3fs"), "gs": ("gs", "gcsfs"), "gcs": ("gs", "gcsfs"),
                      "az": ("az", "adlfs"), "azure": ("az", "adlfs"), "abfss": ("abfs", "adlfs")}
# The pip command that installs a package, for the error message (only s3fs has an extra of ours).
_INSTALL = {"s3fs": "pip install 'waflens[s3]'", "gcsfs": "pip install gcsfs", "adlfs": "pip install adlfs"}
# How a failure inside a Python filesystem reaches us: DuckDB quotes its traceback, ending in "Error: message".
_PYTHON_ERROR = re.compile(r"^(?:\w+\.)*(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)


def scheme_of(location: str) -> str | None:
    return location.split("://", 1)[0].lower() if "://" in location else None


def open_remote_reader(con: duckdb.DuckDBPyConnection, location: str) -> str | None:
    """Make ``con`` able to read ``location``: load DuckDB's extension for its scheme, else register the fsspec
    filesystem for it. Returns what reads it (``"httpfs"``, ``"fsspec:s3fs"``; None for a local path); raises a
    :class:`ConfigError` naming both ways to get one when neither is there."""
    scheme = scheme_of(location)
    extension = REMOTE_EXTENSIONS.get(scheme or "")
    if extension is None:
        return None
    try:
        con.execute(f"LOAD {extension}")
        return extension
    except duckdb.Error as error:
        missing = str(error).splitlines()[0]
    fsspec_reader = FSSPEC_FILESYSTEMS.get(scheme or "")
    if fsspec_reader is not None and importlib.util.find_spec(fsspec_reader[1]) is not None:
        protocol, package = fsspec_reader
        _register(con, protocol)
        return f"fsspec:{package}"
    raise ConfigError(_neither_message(location, extension, missing, fsspec_reader))


def _register(con: duckdb.DuckDBPyConnection, protocol: str) -> None:
    import fsspec

    # A filesystem of its own per connection: fsspec's shared instance would keep the credentials of the first
    # connection, and its listings for the life of the process, hiding the files Spark adds later. Per connection
    # (one per CLI command, one per workbench query) the listing cache is safe, and it matters: `waflens cluster`
    # 22 s -> 8 s, `summarize` 56 s -> 9 s on the test logs in moto (each query would list the bucket again).
    filesystem = fsspec.filesystem(protocol, skip_instance_cache=True)
    con.register_filesystem(filesystem)


def _neither_message(location: str, extension: str, missing: str, fsspec_reader: tuple[str, str] | None) -> str:
    python_way = ""
    if fsspec_reader is not None:
        package = fsspec_reader[1]
        python_way = (f"; or install the Python filesystem {package} (`{_INSTALL[package]}`), which needs no "
                      "download at run time and takes the standard credentials and endpoint (AWS_ENDPOINT_URL …)")
    return (f"reading {location} needs DuckDB's {extension} extension, which cannot be loaded here ({missing}): run "
            f"`INSTALL {extension}` once while this machine reaches the internet (`python -c \"import duckdb; "
            f"duckdb.sql('INSTALL {extension}')\"`; offline, copy the file from a machine with the same DuckDB "
            f"version to that path){python_way}; or copy the Parquet to a local directory and attach that. "
            "Credentials: docs/scaling.md, \"The analyst loop on Parquet\"")


def attached_location(con: duckdb.DuckDBPyConnection) -> str | None:
    """The Parquet directory whose files the database's traffic views read (None for an ordinary database)."""
    try:
        found = con.execute("SELECT value FROM schema_info WHERE key = $k", {"k": ATTACHED_LOCATION_KEY}).fetchall()
    except duckdb.Error:   # a new database: no schema_info yet
        return None
    return found[0][0] if found else None


def remote_failure(error: duckdb.Error) -> str | None:
    """The one line that says why a Python filesystem failed ("PermissionError: The AWS Access Key Id you
    provided does not exist"), or None when ``error`` did not come from one. DuckDB gives such failures as a bare
    ``duckdb.Error`` whose text is the Python traceback."""
    text = str(error)
    if not text.startswith("Traceback"):
        return None
    found = _PYTHON_ERROR.findall(text)
    return ": ".join(found[-1]) if found else text.splitlines()[-1]


def remote_read_fault(error: BaseException) -> InputError | None:
    """The object-storage failure behind an error of a query on an attached database's views (the credentials
    expired or were refused, the bucket or its files are gone), as a one-line :class:`InputError`; None when the
    error is something else. Without it, such a failure would look like a bug of waflens (an internal error)."""
    if not isinstance(error, duckdb.Error):
        return None
    reason = remote_failure(error)
    if reason is None and isinstance(error, duckdb.HTTPException):   # httpfs's: "HTTP GET error on ... (HTTP 403)"
        reason = str(error).splitlines()[0]
    if reason is None:
        return None
    return InputError(f"reading the attached Parquet in object storage failed: {reason} (check the credentials: the "
                      "standard AWS environment with s3fs, a DuckDB secret with httpfs; and that the files are still "
                      "there: `waflens spark attach` again after the Spark steps; docs/scaling.md)")
