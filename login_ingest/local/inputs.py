"""Read message bodies from a file: a JSON array or JSON Lines, either optionally gzipped."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

_decoder = json.JSONDecoder()


class InputError(ValueError):
    """The file is neither a JSON array nor JSON Lines."""

_WHITESPACE = " \t\n\r"


def read_bodies(path: Path) -> list[str]:
    """One SQS message body per array element or per non-blank line, exactly as written.

    Elements are cut out of the array's text rather than re-serialised, so a duplicate key
    or a number's spelling reaches the queue as the producer wrote it. A line that is not
    JSON reaches the queue as the malformed message it is.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    # Only \n ends a line: JSON strings may hold U+2028 and friends, which splitlines() cuts.
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip(_WHITESPACE)]
    if lines and lines[0].lstrip(_WHITESPACE).startswith("["):
        elements = _array_elements(text)
        if elements is not None:
            return elements
        if not _is_json(lines[0]):
            # Neither an array nor JSON Lines that open with one: sending its lines would
            # turn brackets and half objects into messages.
            raise InputError(f"{path}: starts like a JSON array but is not valid JSON")
    return lines


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _array_elements(text: str) -> list[str] | None:
    """The source text of each element of the JSON array `text`, or None if it is not one."""
    elements: list[str] = []
    position = _skip(text, text.index("[") + 1)
    if text.startswith("]", position):
        return elements if not text[position + 1:].strip(_WHITESPACE) else None
    while True:
        try:
            _, end = _decoder.raw_decode(text, position)
        except ValueError:
            return None
        elements.append(text[position:end])
        position = _skip(text, end)
        if text.startswith(",", position):
            position = _skip(text, position + 1)
        elif text.startswith("]", position):
            return elements if not text[position + 1:].strip(_WHITESPACE) else None
        else:
            return None


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position
