"""llama-index-embeddings-jinav3 alone on the light install: the embedding model (and its JSON form), retrieval
over a vector index, sync and async, over HTTP."""

from __future__ import annotations

import asyncio

from _smoke import DIMENSIONS, DOCUMENT, QUERY, TEXTS, check_light_install, report, server
from llama_index.core import Document, VectorStoreIndex

from llama_index.embeddings.jinav3 import JinaV3Embedding

check_light_install()
embedding = JinaV3Embedding(backend="api", dimensions=DIMENSIONS, max_retries=0, **server())
assert JinaV3Embedding.from_json(embedding.to_json()).to_dict() == embedding.to_dict()
index = VectorStoreIndex.from_documents([Document(text=DOCUMENT)], embed_model=embedding)
assert index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0].node.get_content() in DOCUMENT
documents = embedding.get_text_embedding_batch(TEXTS)
assert asyncio.run(embedding.aget_text_embedding_batch(TEXTS)) == documents
report("llama-index-core", asyncio.run(embedding.aget_query_embedding(QUERY)), documents, [], [])
