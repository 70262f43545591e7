"""jinav3-haystack on the light install: an indexing and a query pipeline that go through YAML and back, run sync
and async, over HTTP."""

from __future__ import annotations

import asyncio
import os

from _smoke import DIMENSIONS, DOCUMENT, QUERY, TEXTS, check_light_install, report, server
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.embedders.jinav3 import JinaV3DocumentEmbedder, JinaV3TextEmbedder
from haystack_integrations.components.preprocessors.jinav3 import JinaV3LateChunkingSplitter

check_light_install()
settings = server()
os.environ["JINA_API_KEY"] = settings.pop("api_key")
api = {"backend": "api", "backend_options": settings, "dimensions": DIMENSIONS}
store = InMemoryDocumentStore()

indexing = Pipeline()
indexing.add_component("splitter", JinaV3LateChunkingSplitter(**api, progress_bar=False))
indexing.add_component("writer", DocumentWriter(document_store=store))
indexing.connect("splitter.documents", "writer.documents")
indexing.run({"splitter": {"documents": [Document(content=DOCUMENT)]}})
chunks = sorted(store.filter_documents(), key=lambda d: d.meta["split_idx_start"])

query = Pipeline()
query.add_component("embedder", JinaV3TextEmbedder(**api))
query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=1))
query.connect("embedder.embedding", "retriever.query_embedding")
for pipeline in (indexing, query):
    assert Pipeline.loads(pipeline.dumps()).to_dict()["components"].keys() == pipeline.to_dict()["components"].keys()
found = query.run({"embedder": {"text": QUERY}}, include_outputs_from={"embedder"})
assert found["retriever"]["documents"][0].content in DOCUMENT

documents = JinaV3DocumentEmbedder(**api, progress_bar=False)
embedded = asyncio.run(documents.run_async(documents=[Document(content=t) for t in TEXTS]))["documents"]
assert [d.embedding for d in embedded] == [d.embedding for d in documents.run([Document(content=t) for t in TEXTS])[
    "documents"]]
report("haystack-ai", found["embedder"]["embedding"], [d.embedding for d in embedded], [d.embedding for d in chunks],
       [(d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)) for d in chunks])
