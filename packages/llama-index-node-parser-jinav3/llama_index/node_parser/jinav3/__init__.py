"""Late-chunking node parser for LlamaIndex on top of the shared ``jinav3`` core."""

from llama_index.node_parser.jinav3.base import JinaV3LateChunkingNodeParser

__all__ = ["JinaV3LateChunkingNodeParser"]
