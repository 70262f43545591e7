"""Where ``jinav3 serve`` takes its API keys from, and why not the command line.

A process's command line is readable by every local user (``ps``, ``/proc/<pid>/cmdline``), so a key given with
``--api-key`` leaks to them. The documented ways are ``--api-key-file`` (one key per line; blank lines and ``#``
comments ignored) and the ``JINAV3_SERVE_API_KEY`` environment variable (comma-separated keys), which only the
process's owner can read. ``--api-key`` still works, with a warning.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from jinav3.errors import InvalidInputError

ENV_VARIABLE = "JINAV3_SERVE_API_KEY"
COMMAND_LINE_WARNING = (f"warning: --api-key puts the key on the command line, where any local user can read it "
                        f"(ps, /proc); use --api-key-file PATH or the {ENV_VARIABLE} environment variable instead")


def read_key_file(path: str | Path) -> tuple[list[str], list[str]]:
    """The keys in ``path`` and warnings (a file other users can read)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the API key file {str(file)!r}: {exc.strerror or exc}") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise InvalidInputError(f"the API key file {str(file)!r} holds no key (one per line)")
    warnings = []
    if os.name == "posix" and file.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(f"warning: the API key file {str(file)!r} is readable by other users; chmod 600 it")
    return keys, warnings


def resolve_keys(command_line: Sequence[str], files: Sequence[str | Path],
                 environ: Mapping[str, str]) -> tuple[tuple[str, ...], list[str]]:
    """The server's keys and the warnings to print: ``--api-key`` and ``--api-key-file`` keys together, else
    those of the environment variable (no key at all: no authentication)."""
    keys = [key.strip() for key in command_line if key.strip()]
    warnings = [COMMAND_LINE_WARNING] if command_line else []
    for path in files:
        found, said = read_key_file(path)
        keys += found
        warnings += said
    if not keys and not files:
        keys = [k.strip() for k in environ.get(ENV_VARIABLE, "").split(",") if k.strip()]
    return tuple(dict.fromkeys(keys)), warnings
