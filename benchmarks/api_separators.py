"""API late chunking vs the local backend on documents whose chunks are separated by something other than one space
(docs/api.md, "Separators"): the API joins a request's inputs with one space, so the client carries each separator
into the next chunk's text (less the space the join adds); this compares that with sending the bare chunk texts.

The server is the real ``jinav3 serve`` app (in-process, 127.0.0.1) on the tiny random jina-v3 checkpoint, fp32,
one request per document; chunks are sentences.

    python benchmarks/api_separators.py
"""

from __future__ import annotations

import random
import tempfile

import numpy as np

import jinav3.backends.api as api_module
from jinav3 import Embedder
from jinav3.backends.api_late import sent_texts
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from jinav3.testing import CORPUS, build_checkpoint

LATIN = [s for s in CORPUS if s.isascii()]
JAPANESE = ["東京は日本の首都です。", "大阪は二番目に大きい都市です。", "京都には古い寺がたくさんあります。",
            "富士山は日本で一番高い山です。"]


def bare(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """The earlier rule: each chunk's own text, so the join's one space replaces the separator."""
    return [text[s:e] for s, e in spans]


def main() -> None:
    local = Embedder.local(str(build_checkpoint(tempfile.mkdtemp())), device="cpu", dtype="float32")
    rng = random.Random(1)
    documents = {sep: [sep.join(rng.sample(LATIN, min(8, len(LATIN)))) for _ in range(10)]
                 for sep in (" ", "\n", "\n\n", " \n", "  ")}
    documents[""] = ["".join(rng.choices(JAPANESE, k=8)) for _ in range(10)]
    print(f"{'separator':<12}{'bare: mean':>12}{'min':>10}{'carried: mean':>15}{'min':>10}")
    with BackgroundServer(create_app(local, ServerConfig())) as server, Embedder.api(
        base_url=server.base_url, full_dimensions=local.dimensions, tokenizer=None,
    ) as api:
        for separator, docs in documents.items():
            row = f"{separator!r:<12}"
            for rule in (bare, sent_texts):
                api_module.sent_texts = rule  # type: ignore[assignment]
                cos: list[float] = []
                for text in docs:
                    a = np.stack([c.embedding for c in api.late_chunk(text, "sentences", normalized=False)])
                    b = np.stack([c.embedding for c in local.late_chunk(text, "sentences", normalized=False)])
                    cos += list((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
                row += f"{np.mean(cos):>12.6f}{np.min(cos):>10.6f}" + (" " * 3 if rule is bare else "")
            print(row)
    api_module.sent_texts = sent_texts


if __name__ == "__main__":
    main()
