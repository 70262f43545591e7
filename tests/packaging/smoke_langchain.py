"""langchain-jinav3 on the light install: embeddings and the late-chunking splitter feeding a vector store, sync and
async, over HTTP."""

from __future__ import annotations

import asyncio

from _smoke import DIMENSIONS, DOCUMENT, QUERY, TEXTS, check_light_install, report, server
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_jinav3 import JinaV3Embeddings, JinaV3LateChunkingSplitter

check_light_install()
embeddings = JinaV3Embeddings(backend="api", dimensions=DIMENSIONS, max_retries=0, **server())
splitter = JinaV3LateChunkingSplitter(embeddings=embeddings, add_start_index=True)
store = InMemoryVectorStore(embedding=embeddings)
store.add_documents(splitter.split_documents([Document(page_content=DOCUMENT)]))  # late-chunked vectors handed off
assert store.similarity_search(QUERY, k=1)[0].page_content in DOCUMENT
chunks, vectors = asyncio.run(splitter.asplit_documents_with_embeddings([Document(page_content=DOCUMENT)]))
documents = embeddings.embed_documents(TEXTS)
assert asyncio.run(embeddings.aembed_documents(TEXTS)) == documents
report("langchain-core", asyncio.run(embeddings.aembed_query(QUERY)), documents, vectors,
       [(c.metadata["start_index"], c.metadata["start_index"] + len(c.page_content)) for c in chunks])
