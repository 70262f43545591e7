"""Scale-out: late-chunk and embed a large corpus on a Ray cluster with Ray Data (extra: ``jinav3[ray]``).

```python
import ray
from jinav3.distributed import IndexOptions, index_corpus

ray.init()                                   # or ray.init("auto") on a cluster
summary = index_corpus("docs.jsonl", "chunks/", IndexOptions(model="jinaai/jina-embeddings-v3",
                       actors=4, gpus_per_actor=1, dimensions=256))
assert summary.balanced                      # documents_in == indexed + failed
```

``chunk_dataset`` gives the lazy Dataset instead, to compose with your own Ray Data steps.
"""

from jinav3.distributed.options import IndexOptions
from jinav3.distributed.pipeline import IndexSummary, chunk_dataset, index_corpus, read_documents, summarize
from jinav3.distributed.stages import EmbedActor, prepare_batch

__all__ = [
    "EmbedActor",
    "IndexOptions",
    "IndexSummary",
    "chunk_dataset",
    "index_corpus",
    "prepare_batch",
    "read_documents",
    "summarize",
]
