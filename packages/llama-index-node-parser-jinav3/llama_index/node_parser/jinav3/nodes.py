"""``LateChunkNode``: a ``TextNode`` whose late-chunked vector cannot be separated from its text and place.

LlamaIndex builds every child node with ``embedding=parent.embedding`` and the parent's metadata, so a node parser
placed after the late-chunking parser would store each piece with its parent's vector. A late-chunked node therefore
refuses the two things that would make its vector wrong while it is alive: being split into new nodes (LlamaIndex
takes ``as_related_node_info()`` of the node it splits), and having its text, offsets or vector changed in place
(``validate_assignment`` routes every change through ``__setattr__``). Removing the vector (``embedding = None``, as
``VectorStoreIndex`` does for its docstore copy) is allowed: a node without a vector is refused where it is used.

It serialises as a plain ``TextNode`` (same class name and fields), so every store and docstore keeps it; its seal
(``metadata[SEAL_KEY]``) travels with it and is checked wherever our code meets the node again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from llama_index.core.schema import RelatedNodeInfo, TextNode

from jinav3 import SEAL_KEY, BrokenSealError

#: Fields whose change would make the sealed vector wrong.
_BOUND = ("text", "start_char_idx", "end_char_idx", "embedding")
#: Set while the late-chunking parser itself finishes its nodes (LlamaIndex's post-processing re-places them and
#: links neighbours); a context variable, so it holds per thread and task and never leaks into other code.
_FINISHING: ContextVar[bool] = ContextVar("jinav3_finishing_nodes", default=False)


@contextmanager
def finishing_nodes() -> Iterator[None]:
    """Let LlamaIndex's own post-processing of the parser's output touch the nodes it is finishing."""
    token = _FINISHING.set(True)
    try:
        yield
    finally:
        _FINISHING.reset(token)


class LateChunkNode(TextNode):
    """A late-chunked node (see the module doc). Made by ``JinaV3LateChunkingNodeParser`` only."""

    @classmethod
    def class_name(cls) -> str:
        return "TextNode"  # stores and docstores persist and restore it as the TextNode it is

    def _describe(self) -> str:
        return f"late-chunked node {self.node_id!r} ({self.text[:40]!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _BOUND and not _FINISHING.get() and SEAL_KEY in self.__dict__.get("metadata", {}):
            removing = name == "embedding" and value is None
            if not removing and value != getattr(self, name):
                raise BrokenSealError(
                    f"cannot change {name} of {self._describe()}: its vector was late-chunked for exactly this "
                    "text at this place in its document. Clean or edit the document before "
                    "JinaV3LateChunkingNodeParser and parse it again."
                )
        super().__setattr__(name, value)

    def as_related_node_info(self) -> RelatedNodeInfo:
        if not _FINISHING.get():
            raise BrokenSealError(
                f"a node parser tried to split {self._describe()} into new nodes; LlamaIndex would copy its "
                "late-chunked vector onto every piece. Put that parser BEFORE JinaV3LateChunkingNodeParser (it then "
                "late-chunks each piece within its whole document) or pass it as text_splitter=."
            )
        return super().as_related_node_info()
