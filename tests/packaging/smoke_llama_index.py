"""llama-index-embeddings-jinav3 on the light install: the embedding model (and its JSON form), the node parser as
an index transformation, retrieval, sync and async, over HTTP."""

from __future__ import annotations

import asyncio

from _smoke import DIMENSIONS, DOCUMENT, QUERY, TEXTS, check_light_install, report, server
from llama_index.core import Document, VectorStoreIndex

from llama_index.embeddings.jinav3 import JinaV3Embedding
from llama_index.node_parser.jinav3 import JinaV3LateChunkingNodeParser

check_light_install()
embedding = JinaV3Embedding(backend="api", dimensions=DIMENSIONS, max_retries=0, **server())
assert JinaV3Embedding.from_json(embedding.to_json()).to_dict() == embedding.to_dict()
parser = JinaV3LateChunkingNodeParser(embed_model=embedding, chunker="sentences")
index = VectorStoreIndex.from_documents([Document(text=DOCUMENT)], embed_model=embedding, transformations=[parser])
assert index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0].node.get_content() in DOCUMENT
nodes = parser.get_nodes_from_documents([Document(text=DOCUMENT)])
documents = embedding.get_text_embedding_batch(TEXTS)
assert asyncio.run(embedding.aget_text_embedding_batch(TEXTS)) == documents
report("llama-index-core", asyncio.run(embedding.aget_query_embedding(QUERY)), documents,
       [n.embedding for n in nodes], [(n.start_char_idx, n.end_char_idx) for n in nodes])
