"""Haystack embedders for jina-embeddings-v3 (task adapters, Matryoshka dimensions, late chunking) over jinav3."""

from haystack_integrations.components.embedders.jinav3.document_embedder import JinaV3DocumentEmbedder
from haystack_integrations.components.embedders.jinav3.text_embedder import JinaV3TextEmbedder

__all__ = ["JinaV3DocumentEmbedder", "JinaV3TextEmbedder"]
