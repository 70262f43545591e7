"""Haystack preprocessors for jina-embeddings-v3: a splitter whose chunks carry late-chunked embeddings."""

from haystack_integrations.components.preprocessors.jinav3.late_chunking_splitter import JinaV3LateChunkingSplitter

__all__ = ["JinaV3LateChunkingSplitter"]
