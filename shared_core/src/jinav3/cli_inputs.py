"""What the ``jinav3`` command reads and writes, checked before any model is loaded.

A file that is missing, a folder, binary, or not in the given encoding is one line naming the file, never a
traceback twenty seconds later; an output path that cannot be written fails before the work, not after it.
"""

from __future__ import annotations

import codecs
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jinav3.errors import InvalidInputError

STDIN = "standard input"


class UsageError(InvalidInputError):
    """A command-line argument the command cannot use; reported as one line, exit status 2."""


def check_encoding(name: str) -> str:
    """``name`` if Python knows that text encoding (for argparse ``type=``), else an argparse error."""
    import argparse

    try:
        info = codecs.lookup(name)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {name!r} (e.g. utf-8, latin-1, cp1252, utf-16)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise argparse.ArgumentTypeError(f"{name!r} is not a text encoding")
    return name


def check_language_argument(value: str) -> str:
    """``value`` as the sentence chunker's language (``auto`` or an ISO 639 code; for argparse ``type=``)."""
    import argparse

    from jinav3.late_chunking.languages import check_language

    try:
        return check_language(value)
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_TEXT_CONTROLS = set(b"\t\n\r\f\v\x1b")


def _binary(data: bytes, source: str, encoding: str) -> UsageError:
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return UsageError(f"{source} is not {encoding} text but UTF-16 (it starts with a UTF-16 byte-order mark); "
                          "pass --encoding utf-16")
    return UsageError(f"{source} looks like a binary file, not {encoding} text; pass a text file (or --encoding "
                      "utf-16 if it is UTF-16 text)")


def _control_heavy(data: bytes) -> bool:
    """Whether more than a tenth of the first 8 KB are control bytes that no text encoding writes for text."""
    sample = data[:8192]
    controls = sum(1 for byte in sample if (byte < 0x20 and byte not in _TEXT_CONTROLS) or byte == 0x7F)
    return controls * 10 > len(sample)


def decode(data: bytes, encoding: str, source: str) -> str:
    """``data`` as text, or a :class:`UsageError` naming ``source``: binary data (NUL bytes, or undecodable and
    full of control bytes) is called binary at once, before any hint at another encoding."""
    codec = codecs.lookup(encoding).name
    wide = codec.startswith(("utf-16", "utf-32"))  # their text has NUL bytes
    if not wide and b"\x00" in data:
        raise _binary(data, source, encoding)
    try:
        text = data.decode("utf-8-sig" if codec == "utf-8" else encoding)  # a UTF-8 byte-order mark is not text
    except UnicodeDecodeError as exc:
        if _control_heavy(data):
            raise _binary(data, source, encoding) from None
        raise UsageError(
            f"{source} is not {encoding} text (the byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be "
            f"decoded); if it is text in another encoding, pass it, e.g. --encoding latin-1 (or cp1252, utf-16)"
        ) from None
    if "\x00" in text:
        raise _binary(data, source, encoding)
    return text


def read_text_file(path: str, encoding: str) -> str:
    """The whole text of ``path``; one-line errors for a missing file, a folder, binary or mis-encoded bytes."""
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{path}: no such file")
    if file.is_dir():
        raise UsageError(f"{path} is a folder; pass text files")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror or exc})") from None
    return decode(data, encoding, path)


def read_stdin(encoding: str, stream: BinaryIO | None = None) -> str:
    stream = stream if stream is not None else sys.stdin.buffer
    return decode(stream.read(), encoding, STDIN)


def check_argument_text(text: str, index: int) -> str:
    """Texts given as arguments reach Python as surrogate escapes when they are not valid in the locale's encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"text argument {index + 1} is not valid text in this terminal's encoding") from None
    if "\x00" in text:
        raise UsageError(f"text argument {index + 1} contains a NUL character")
    return text


def check_output_path(path: str | None) -> None:
    """Fail now if ``path`` cannot be created: a folder, or inside a folder that does not exist."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--output {path} is a folder; name a file")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--output {path}: the folder {parent} does not exist")


@dataclass(frozen=True)
class Text:
    """One text to embed and where it came from (for warnings that point at the right line)."""

    text: str
    source: str


def line_texts(content: str, source: str) -> list[Text]:
    """Every non-blank line of ``content`` as one text, labelled ``source:line``."""
    return [Text(line, f"{source}:{number}") for number, line in enumerate(content.splitlines(), 1) if line.strip()]
