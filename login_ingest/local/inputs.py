"""Read message bodies from a file: a JSON array or JSON Lines, either optionally gzipped."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def read_bodies(path: Path) -> list[str]:
    """One SQS message body per array element or per non-blank line.

    Array elements are re-serialised as JSON. Lines are sent exactly as written, so a line
    that is not JSON reaches the queue as the malformed message it is.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    if text.lstrip().startswith("["):
        try:
            document = json.loads(text)
        except ValueError:
            pass  # a JSON Lines file whose first line is an array
        else:
            if isinstance(document, list):
                return [json.dumps(item) for item in document]
    return [line for line in text.splitlines() if line.strip()]
