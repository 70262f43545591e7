"""LangChain integration for jina-embeddings-v3: task-routed embeddings and a late-chunking text splitter."""

from langchain_jinav3.embeddings import JinaV3Embeddings
from langchain_jinav3.text_splitter import JinaV3LateChunkingSplitter

__version__ = "0.1.0"

__all__ = ["JinaV3Embeddings", "JinaV3LateChunkingSplitter"]
