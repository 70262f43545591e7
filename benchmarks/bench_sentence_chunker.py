"""The ``sentences`` chunker on SciFact: speed and how often it leaves a fragment (a one- or two-word "sentence",
e.g. "C." cut from "C. albicans"), for comparing two versions of the code (run it with each on PYTHONPATH).

    python benchmarks/bench_sentence_chunker.py /path/to/scifact/corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jinav3 import SentenceChunker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="a BEIR corpus.jsonl (title and text per line)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()
    with args.corpus.open(encoding="utf-8") as lines:
        texts = [f"{row.get('title', '')}\n\n{row['text']}" for row in map(json.loads, lines)]
    chunker = SentenceChunker()
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        spans = [chunker.spans(text) for text in texts]
        best = min(best, time.perf_counter() - start)
    pieces = [text[s:e] for text, found in zip(texts, spans, strict=True) for s, e in found]
    fragments = [p for p in pieces if len(p.split()) <= 2 and not any("\u3000" <= c <= "\u9fff" for c in p)]
    megabytes = sum(map(len, texts)) / 2**20
    print(f"{len(texts)} documents, {megabytes:.1f} MB: {best:.2f} s ({megabytes / best:.1f} MB/s), "
          f"{len(pieces)} sentences, {len(fragments)} of them one or two words, e.g. {fragments[:6]}")


if __name__ == "__main__":
    main()
