"""LangChain integration for jina-embeddings-v3: task-routed embeddings, a late-chunking text splitter, a store sync
(``index``/``aindex``), cache keys (``cache_keys``) and a hand-over of stored vectors to LangChain's embedding
filters (``StoredVectors``) that keep late-chunked vectors exact."""

from langchain_jinav3.caching import cache_keys
from langchain_jinav3.embeddings import JinaV3Embeddings
from langchain_jinav3.indexing import aindex, index
from langchain_jinav3.stored_vectors import StoredVectors
from langchain_jinav3.text_splitter import JinaV3LateChunkingSplitter

__version__ = "0.1.0"

__all__ = ["JinaV3Embeddings", "JinaV3LateChunkingSplitter", "StoredVectors", "aindex", "cache_keys", "index"]
