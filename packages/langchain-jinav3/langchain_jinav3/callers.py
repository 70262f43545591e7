"""Who is calling the embeddings: the LangChain machinery that would store or return a wrong vector.

LangChain gives embeddings no word about their caller, yet two of its production paths are only wrong for late
chunks: ``langchain_core.indexing.index()`` rebuilds every Document (the chunk text loses its vector) and
``CacheBackedEmbeddings`` keys vectors by text alone. The embeddings refuse those paths, so they need to see them
on the call stack: these helpers walk it (a few dozen frames, only from ``JinaV3Embeddings`` calls). Awaited
coroutines are on the stack too; code run in a worker thread is not.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

#: Frames looked at above the caller; LangChain's call chains are far shorter.
_DEPTH = 64


def _frames() -> Iterator[FrameType]:
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_DEPTH):
        if frame is None:
            return
        yield frame
        frame = frame.f_back


def called_from(module: str) -> bool:
    """Whether code of ``module`` (or one of its submodules) is on the call stack."""
    return any(_module_of(frame) == module or _module_of(frame).startswith(module + ".") for frame in _frames())


def calling_instance(class_name: str, module: str) -> Any | None:
    """The ``self`` of the nearest method on the call stack whose class (or a base) is ``module.class_name``."""
    for frame in _frames():
        candidate = frame.f_locals.get("self")
        if candidate is not None and any(
            base.__name__ == class_name and base.__module__.startswith(module) for base in type(candidate).__mro__
        ):
            return candidate
    return None


def _module_of(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))
