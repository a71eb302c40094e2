"""Pass 8, emit: the route table as deterministic bytes (sorted keys, no timestamps)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def digest(files: list[str]) -> str:
    """A digest of the inputs: each file's name and bytes, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(Path(name).as_posix().encode())
        h.update(b"\0")
        h.update(Path(name).read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def emit(table: dict) -> str:
    """The table as stable JSON text, byte-identical for the same input on any machine."""
    return json.dumps(table, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
