"""API late chunking vs the local backend on documents longer than one request: how far chunks at request hand-overs
land from the local vector, against interior chunks (docs/api.md, "Late chunking").

The server is the real ``jinav3 serve`` app (in-process, on 127.0.0.1) on the same checkpoint as the local backend,
both fp32. By default every document fits one local window (the local vector sees the whole document) and spans
several API requests of ``--window`` tokens, so the figures isolate what the request cuts cost; ``--any-length``
takes longer documents, which the local backend cuts into macro windows too (with the default window the client
then learns the server's window from its refusal). ``--model tiny`` is the random tiny jina-v3 checkpoint of the
tests; ``--model minilm`` the offline all-MiniLM-L6-v2 (256 tokens). Chunks are sentences; "boundary" chunks are
those kept next to (or, cut by it, across) a hand-over, "beside_boundary" their neighbours, "interior" all others
("interior_later": those after the first request, whose positions are rounded to a chunk boundary, which matters
for a model with absolute positions such as MiniLM). "packed" replays the greedy packing rule on the same chunks.
"tokens sent" is what the server counted.

    python benchmarks/api_late_context.py --model tiny --window 256 --sentences 40
    python benchmarks/api_late_context.py --model minilm --window 192 --sentences 11     # also --window 128
    python benchmarks/api_late_context.py --model minilm --sentences 40 --any-length --packed-budget 228 \
        --packed-overlap 57    # default settings; packed as the client planned before (learnt 228 sharing 57)

``--words N`` measures instead one window of N one-word chunks (tiny model; N > 2,048 is more chunks than one
request takes): cosine and largest difference of each API chunk vector to the local one. It uses the public API
only, so it also runs against an older client (``PYTHONPATH`` pointing at another checkout's sources).

    python benchmarks/api_late_context.py --words 2300
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile

import numpy as np

from jinav3 import Embedder
from jinav3.backends.api import ApiBackend
from jinav3.backends.api_late import Request, _packed, document_order, plan_requests, sent_texts
from jinav3.late_chunking.chunking import SentenceChunker
from jinav3.model.choice import fallback_model_dir
from jinav3.server import ServerConfig, create_app
from jinav3.server.run import BackgroundServer
from jinav3.testing import CORPUS, build_checkpoint
from jinav3.usage import TokenUsage


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def classify(plans: list[Request], cosine: np.ndarray, out: dict[str, list[float]], prefix: str) -> None:
    """Add each chunk's cosine to its group: boundary (kept next to a hand-over), interior, and interior of the
    requests after the first."""
    edges = {p.keep_end - 1 for p in plans[:-1]} | {p.keep_start for p in plans[1:]}
    beside = {i + d for i in edges for d in (-1, 1)} - edges
    for i, value in enumerate(cosine):
        out[prefix + ("boundary" if i in edges else "interior")].append(float(value))
        if i >= plans[0].keep_end and i not in edges:
            out[prefix + "interior_later"].append(float(value))
        if i in beside:
            out[prefix + "beside_boundary"].append(float(value))


async def replay(backend: ApiBackend, spans: list[tuple[int, int]], chunks: list[str], counts: list[int],
                 task: str | None, plans: list[Request], budget: int, shared: int, usage: TokenUsage) -> np.ndarray:
    """The vectors ``plans`` keep, sent one request at a time."""
    from jinav3.backends.api import _LateDocument  # here, so --words also runs against an older client

    doc = _LateDocument(0, asyncio.Semaphore(1), chunks, counts, task, usage, None, spans, list(range(len(spans))),
                        False)
    return np.concatenate([await backend._late_request(doc, p, budget, shared) for p in plans])


def measure(api: Embedder, local: Embedder, documents: list[str], window: int | None, overlap: int | None,
            task: str | None, packed_limits: tuple[int, int] | None) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Cosines to the local vector of boundary and interior chunks, now and with the packed rule; tokens sent."""
    backend = api.backend
    budget, shared = backend._late_limits(True, window, overlap)
    out: dict[str, list[float]] = {f"{rule}{group}": [] for rule in ("", "packed_")
                                   for group in ("boundary", "beside_boundary", "interior", "interior_later")}
    sent = {"now": 0, "packed": 0}
    for text in documents:
        spans, _ = document_order(SentenceChunker().spans(text))
        chunks = sent_texts(text, spans)
        counts = backend._counter.count(chunks, special_tokens=False)
        reference = np.stack([c.embedding for c in local.late_chunk(text, spans=spans, task=task, normalized=False)])
        usage = TokenUsage()
        now = np.stack([c.embedding for c in api.late_chunk(text, spans=spans, task=task, window=window,
                                                            overlap=overlap, normalized=False, usage=usage)])
        sent["now"] += usage.tokens
        packed = _packed(counts, *(packed_limits or (budget, shared)), backend._max_inputs())
        usage = TokenUsage()

        earlier = backend._run(replay(backend, spans, chunks, counts, task, packed, budget, shared, usage))
        sent["packed"] += usage.tokens
        classify(plan_requests(counts, budget, shared, backend._max_inputs()), cosines(now, reference), out, "")
        classify(packed, cosines(earlier, reference), out, "packed_")
    return out, sent


def many_chunks(words: int) -> None:
    """One window of ``words`` one-word chunks (words of at most 3 letters): API vs local, per chunk; the client
    counts tokens with the model's tokenizer, so it knows the document fits one window."""
    folder = build_checkpoint(tempfile.mkdtemp())
    local = Embedder.local(str(folder), device="cpu", dtype="float32")
    rng = random.Random(7)
    vocabulary = sorted({w.strip(".,'") for s in CORPUS for w in s.split() if 0 < len(w.strip(".,'")) <= 3})
    picked = [rng.choice(vocabulary) for _ in range(words)]
    text, spans, at = " ".join(picked), [], 0
    for word in picked:
        spans.append((at, at + len(word)))
        at += len(word) + 1
    with BackgroundServer(create_app(local, ServerConfig())) as server, Embedder.api(
        base_url=server.base_url, full_dimensions=local.dimensions, tokenizer=folder,
    ) as api:
        sent, read = TokenUsage(), TokenUsage()
        remote = np.stack([c.embedding for c in api.late_chunk(text, spans=spans, normalized=False, usage=sent)])
    reference = np.stack([c.embedding for c in local.late_chunk(text, spans=spans, normalized=False, usage=read)])
    cos = cosines(remote, reference)
    print(f"{words} one-word chunks, one window of {read.tokens} tokens (local); tokens sent {sent.tokens}")
    print(f"min cos {cos.min():.6f}  median cos {np.median(cos):.6f}  max |api - local| "
          f"{np.abs(remote - reference).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--window", type=int, default=None,
                        help="tokens per API request (default: max_request_tokens, lowered by the server's refusals)")
    parser.add_argument("--any-length", action="store_true",
                        help="documents may be longer than one local window (the local backend's own windows then "
                             "also cut them)")
    parser.add_argument("--overlap", type=int, default=None, help="tokens shared by neighbouring requests")
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--sentences", type=int, default=40, help="sentences per document")
    parser.add_argument("--max-chunk-tokens", type=int, default=64,
                        help="skip documents with a longer chunk (the corpus's symbol lines merge sentences into "
                             "chunks too long for one MiniLM request on their own)")
    parser.add_argument("--packed-budget", type=int, default=None,
                        help="tokens of chunks per request for the packed rule (default: the same as now; 228 with "
                             "--packed-overlap 57 replays what the client learnt from MiniLM's refusals before)")
    parser.add_argument("--packed-overlap", type=int, default=None)
    parser.add_argument("--words", type=int, default=None,
                        help="measure one window of this many one-word chunks instead (tiny model)")
    args = parser.parse_args()
    if args.words:
        many_chunks(args.words)
        return
    if args.model == "tiny":
        folder, name, task = build_checkpoint(tempfile.mkdtemp()), "jina-embeddings-v3", "retrieval.passage"
    else:
        folder, name, task = fallback_model_dir(), "all-MiniLM-L6-v2", None
    local = Embedder.local(str(folder), device="cpu", dtype="float32")
    rng = random.Random(0)
    documents: list[str] = []
    tokenizer = local.backend.tokenizer
    while len(documents) < args.docs:  # documents within one local window only, unless --any-length
        text = " ".join(rng.choice(CORPUS) for _ in range(args.sentences))
        chunks = [text[s:e] for s, e in SentenceChunker().spans(text)]
        longest = max(len(e.ids) for e in tokenizer.encode_batch(chunks, add_special_tokens=False))
        fits = args.any_length or local.backend.tokenize_document(text, task).length <= local.backend.max_length
        if fits and longest <= args.max_chunk_tokens:
            documents.append(text)
    with BackgroundServer(create_app(local, ServerConfig())) as server, Embedder.api(
        base_url=server.base_url, model=name, full_dimensions=local.dimensions, tokenizer=folder,
    ) as api:
        api.late_chunk(documents[0], "sentences", task=task, window=args.window)  # learns the server's limit
        packed = (args.packed_budget, args.packed_overlap) if args.packed_budget else None
        figures, sent = measure(api, local, documents, args.window, args.overlap, task, packed)
        budget, shared = api.backend._late_limits(True, args.window, args.overlap)
    print(f"{args.model}: requests of {budget} tokens of chunks sharing {shared}, "
          f"{args.docs} documents of {args.sentences} sentences; tokens sent {sent}")
    print(f"{'chunks':<18}{'n':>6}{'median':>10}{'min':>10}{'mean':>10}")
    for key, values in figures.items():
        v = np.asarray(values)
        print(f"{key:<18}{len(v):>6}{np.median(v):>10.4f}{v.min():>10.4f}{v.mean():>10.4f}")


if __name__ == "__main__":
    main()
