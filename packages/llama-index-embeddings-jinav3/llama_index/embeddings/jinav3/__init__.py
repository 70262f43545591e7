"""jina-embeddings-v3 for LlamaIndex: task-routed embeddings (and, in ``llama_index.node_parser.jinav3``, a
late-chunking node parser) on top of the shared ``jinav3`` core."""

from llama_index.embeddings.jinav3.base import JinaV3Embedding
from llama_index.embeddings.jinav3.sealed import check_sealed_node
from llama_index.embeddings.jinav3.settings import LATE_CHUNKED_KEY, JinaV3CoreSettings

__all__ = ["LATE_CHUNKED_KEY", "JinaV3CoreSettings", "JinaV3Embedding", "check_sealed_node"]
