"""Progress with one rule everywhere: a bar where someone watches a terminal, lines where stderr goes to a log.

``show_progress=None`` (the default of the public calls) shows a bar on stderr when stderr is a terminal, once the
work has run for :data:`DELAY_S` seconds, so quick calls stay silent. When stderr is not a terminal (a log file, a
pipe, a service manager), a bar drawn in place would be one unreadable line, and showing nothing left a 20 MB
document silent for minutes; there the work writes whole progress lines instead, the first after
:func:`log_interval` seconds (``JINAV3_PROGRESS_INTERVAL``, default :data:`LOG_INTERVAL_S`) and then one per
interval, plus a last one when it ends, so calls shorter than the interval still print nothing. ``True`` always
shows progress (from the start; lines when stderr is not a terminal), ``False`` never does.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

#: A bar under the automatic rule appears only after this many seconds of work.
DELAY_S = 2.0
#: Seconds between progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 10.0
INTERVAL_VARIABLE = "JINAV3_PROGRESS_INTERVAL"


def log_interval() -> float:
    """Seconds between progress lines in logs: ``JINAV3_PROGRESS_INTERVAL`` when it is a positive number."""
    try:
        seconds = float(os.environ.get(INTERVAL_VARIABLE, LOG_INTERVAL_S))
    except ValueError:
        return LOG_INTERVAL_S
    return seconds if seconds > 0 else LOG_INTERVAL_S


class LogLines:
    """A stream for tqdm that turns its in-place redraws (carriage returns) into whole lines, one per redraw."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(show_progress: bool | None, **options: Any) -> tqdm:
    """A tqdm bar (on stderr) following the module's rule; ``options`` go to tqdm (``total``, ``desc``, ``unit``)."""
    if show_progress is False:
        return tqdm(disable=True, **options)
    stderr = sys.stderr
    if stderr is not None and stderr.isatty():
        return tqdm(disable=False, delay=DELAY_S if show_progress is None else 0.0, file=stderr, **options)
    if stderr is None:  # pythonw and some services: nowhere to write
        return tqdm(disable=True, **options)
    interval = log_interval()
    return plain_tqdm(disable=False, file=LogLines(stderr), ascii=True, mininterval=interval, maxinterval=interval,
                      delay=interval if show_progress is None else 0.0, **options)
