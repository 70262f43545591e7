"""Progress bars with one rule everywhere: on by default only where someone watches a terminal and the work lasts.

``show_progress=None`` (the default of the public calls) shows a bar on stderr when stderr is a terminal, and only
once the work has run for :data:`DELAY_S` seconds, so quick calls and logs, pipes and servers stay silent;
``True`` always shows one, ``False`` never does.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

#: A bar under the automatic rule appears only after this many seconds of work.
DELAY_S = 2.0


def progress_bar(show_progress: bool | None, **options: Any) -> tqdm:
    """A tqdm bar (on stderr) following the module's rule; ``options`` go to tqdm (``total``, ``desc``, ``unit``)."""
    if show_progress is None:
        return tqdm(disable=None, delay=DELAY_S, **options)  # tqdm's ``disable=None``: off unless a terminal
    return tqdm(disable=not show_progress, **options)
