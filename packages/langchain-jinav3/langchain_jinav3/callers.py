"""Who is calling the embeddings: the LangChain machinery that would store or return a wrong vector.

LangChain gives embeddings no word about their caller, yet two of its production paths are only wrong for late
chunks: ``langchain_core.indexing.index()``/``aindex()`` rebuild every Document (the chunk text loses its vector)
and ``CacheBackedEmbeddings`` keys vectors by text alone. The embeddings refuse those paths, so they need to see
them on the call stack: these helpers walk it (a few dozen frames, only from ``JinaV3Embeddings`` calls).

Awaited coroutines are on the stack too. Code that an async caller runs in an executor's worker thread is not —
the usual way a store without native async support implements ``aadd_documents`` (``run_in_executor(add_texts)``)
— so from such a thread the walk goes on in the coroutines of the asyncio task that awaits the thread's work
item: the work item's future is chained to an asyncio future, whose done-callback is that task's wake-up.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future as ThreadFuture
from concurrent.futures.thread import _WorkItem
from types import FrameType
from typing import Any

#: Frames looked at above the caller; LangChain's call chains are far shorter.
_DEPTH = 64
#: How long a worker thread waits for its caller's task to start awaiting it (that happens at once, but the
#: thread may have started first).
_AWAIT_GRACE_S = 1.0


def called_from(module: str) -> bool:
    """Whether code of ``module`` (or one of its submodules) is on the call stack, or on the stack of the asyncio
    task awaiting this executor thread's work."""
    return any(_within(frame, module) for frame in _frames(across_threads=True))


def calling_instance(class_name: str, module: str) -> Any | None:
    """The ``self`` of the nearest method on the call stack whose class (or a base) is ``module.class_name``."""
    for frame in _frames(across_threads=False):
        candidate = frame.f_locals.get("self")
        if candidate is not None and any(
            base.__name__ == class_name and base.__module__.startswith(module) for base in type(candidate).__mro__
        ):
            return candidate
    return None


def _frames(*, across_threads: bool) -> Iterator[FrameType]:
    frame: FrameType | None = sys._getframe(2)
    work: _WorkItem[Any] | None = None
    for _ in range(_DEPTH):
        if frame is None:
            break
        yield frame
        if frame.f_code is _WorkItem.run.__code__:
            work = frame.f_locals.get("self")
        frame = frame.f_back
    if across_threads and work is not None:
        task = _awaiting_task(work.future)
        if task is not None:
            yield from _coroutine_frames(task.get_coro())


def _awaiting_task(work: ThreadFuture[Any]) -> asyncio.Task[Any] | None:
    """The asyncio task awaiting ``work``, if any: ``loop.run_in_executor`` chains the work item's future to an
    asyncio future that the task then awaits. Both links are made just after the work item is submitted, so a
    thread that started first waits for them (up to a second; only a thread submitted without asyncio waits that
    long, and only on the path that is about to warn)."""
    deadline = time.monotonic() + _AWAIT_GRACE_S
    while True:
        for future in _closure_values(list(work._done_callbacks)):
            if isinstance(future, asyncio.Future):
                for callback, _context in list(future._callbacks or ()):
                    task = getattr(callback, "__self__", None)
                    if isinstance(task, asyncio.Task):
                        return task
        if work.done() or time.monotonic() > deadline:
            return None
        time.sleep(0.001)


def _closure_values(callbacks: list[Any]) -> Iterator[Any]:
    for callback in callbacks:
        for cell in getattr(callback, "__closure__", None) or ():
            try:
                yield cell.cell_contents
            except ValueError:  # an empty cell
                continue


def _coroutine_frames(coroutine: Coroutine[Any, Any, Any] | None) -> Iterator[FrameType]:
    """The frames of a suspended coroutine and of those it awaits, outermost first."""
    for _ in range(_DEPTH):
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is None:
            return
        yield frame
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)


def _within(frame: FrameType, module: str) -> bool:
    name = str(frame.f_globals.get("__name__", ""))
    return name == module or name.startswith(module + ".")
