"""Where a log uploaded in the workbench is kept until (and after) it is ingested.

Uploads hold client addresses and cookies, so they live beside the database (whose
folder the operator chose for personal data), in ``uploads/`` readable by the owner
only, never in whatever folder the workbench was started from. Each upload gets its
own sub-folder, so the file keeps its name (the default source name) and two uploads
of one name never overwrite each other.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

PRIVATE = 0o700


def safe_file_name(name: str) -> str:
    """The upload's base name with anything but letters, digits, ``.``, ``_`` and ``-`` replaced."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name).replace("\\", "/")).name).strip("._")
    return safe[:100] or "upload.log"


def store_upload(folder: Path, name: str, content: bytes) -> Path:
    """Write ``content`` to ``folder/<UTC time>/<safe name>`` (folders 0700, file 0600); return its path."""
    folder = Path(folder)
    folder.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    os.chmod(folder, PRIVATE)   # mkdir's mode is masked by the umask, and the folder may predate this
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    for attempt in range(100):
        own = folder / (stamp if not attempt else f"{stamp}-{attempt}")
        try:
            own.mkdir(mode=PRIVATE)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free upload folder under {folder}")
    os.chmod(own, PRIVATE)
    target = own / safe_file_name(name)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    return target
