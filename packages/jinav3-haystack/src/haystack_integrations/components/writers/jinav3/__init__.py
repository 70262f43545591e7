"""Haystack writers for jina-embeddings-v3: keep a store in sync with late-chunked sources."""

from haystack_integrations.components.writers.jinav3.document_writer import JinaV3DocumentWriter

__all__ = ["JinaV3DocumentWriter"]
