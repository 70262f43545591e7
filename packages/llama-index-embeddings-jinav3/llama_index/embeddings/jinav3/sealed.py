"""Where a late-chunked node meets the embed model again: its seal is checked, or a plain vector is refused.

The late-chunking node parser seals every node it embeds (``metadata[SEAL_KEY]``: chunk text, offsets, document,
vector, vector space; see :mod:`jinav3.late_chunking.seal`). LlamaIndex persists metadata with the node, so the seal
survives docstores, vector stores and worker processes, and the embed model can tell, for any node it is handed,
whether the vector it carries is still the late-chunked vector of that node's text in its document.
"""

from __future__ import annotations

from llama_index.core.schema import BaseNode, MetadataMode

from jinav3 import SEAL_KEY, BrokenSealError, LateChunkingRequiredError, check_seal
from jinav3.late_chunking.seal import claims_late_chunk

#: What works instead of a composition that breaks a seal.
_FIX = (
    "Late-chunked nodes must reach the store as JinaV3LateChunkingNodeParser made them: put node parsers and text "
    "cleaners BEFORE it (it late-chunks their pieces within the whole document) or pass the splitter as "
    "text_splitter=; re-run the parser on the current document instead of editing or re-embedding its nodes."
)


def is_sealed(node: BaseNode) -> bool:
    """Whether ``node`` says it carries a late-chunked vector (a seal, or the marker of older versions)."""
    return claims_late_chunk(node.metadata)


def check_sealed_node(node: BaseNode, space: str) -> None:
    """Raise unless ``node``'s vector is the late-chunked vector its seal describes, in vector ``space``."""
    what = f"node {node.node_id!r} ({node.get_content(metadata_mode=MetadataMode.NONE)[:40]!r})"
    if SEAL_KEY not in node.metadata:
        raise BrokenSealError(f"{what} was late-chunked by an older version without a seal; re-run "
                              "JinaV3LateChunkingNodeParser on its document")
    if node.embedding is None:
        raise BrokenSealError(
            f"{what} is a late-chunked node without its vector: it was restored from JSON (a docstore, a cache, a "
            "store that drops vectors), and a late-chunked vector cannot be rebuilt from the chunk alone. " + _FIX
        )
    check_seal(node.metadata[SEAL_KEY], what=what, fix=_FIX, text=node.get_content(metadata_mode=MetadataMode.NONE),
               vector=node.embedding, space=space, start=getattr(node, "start_char_idx", None),
               end=getattr(node, "end_char_idx", None))


def refuse_plain_passages(count: int, example: str) -> LateChunkingRequiredError:
    """The error of a strict embed model asked for plain passage vectors."""
    return LateChunkingRequiredError(
        f"this JinaV3Embedding is set up for a late-chunking index (strict_late_chunking=True) and was asked for "
        f"plain passage vectors of {count} texts (e.g. {example[:40]!r}), which would sit beside late-chunked ones "
        "without their document's context. In LlamaIndex that happens when text reaches the embed model without "
        "passing JinaV3LateChunkingNodeParser: a reopened index (LlamaIndex does not persist transformations: pass "
        "transformations=[parser] to load_index_from_storage / VectorStoreIndex.from_vector_store), "
        "Settings.transformations' default splitter, or a node parser after ours. Queries are not affected; build "
        "the embed model with strict_late_chunking=False for a plain index."
    )
