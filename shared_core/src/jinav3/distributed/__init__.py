"""Scale-out: late-chunk and embed a large corpus on a Ray cluster with Ray Data (extra: ``jinav3[ray]``).

```python
import ray
from jinav3.distributed import IndexOptions, index_corpus

ray.init()                                   # or ray.init("auto") on a cluster
summary = index_corpus("docs.jsonl", "chunks/", IndexOptions(model="jinaai/jina-embeddings-v3",
                       actors=4, gpus_per_actor=1, dimensions=256))
assert summary.balanced                      # documents_in == indexed + failed
```

``chunk_dataset`` gives the lazy Dataset instead, to compose with your own Ray Data steps. Names are imported
lazily so that ``jinav3`` (and its CLI) work without Ray or pyarrow installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "IndexOptions": "options",
    "IndexSummary": "pipeline",
    "chunk_dataset": "pipeline",
    "index_corpus": "pipeline",
    "read_documents": "reading",
    "summarize": "pipeline",
    "EmbedActor": "stages",
    "prepare_batch": "stages",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'jinav3.distributed' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"jinav3.distributed.{_HOMES[name]}")
    except ImportError as exc:
        raise ImportError(f"jinav3.distributed needs Ray Data and pyarrow: pip install -e 'shared_core[ray]' (in a "
                          f"clone of the jinav3 repository; {exc})") from exc
    return getattr(module, name)
