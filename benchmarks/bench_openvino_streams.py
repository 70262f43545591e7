"""A candidate for batch jobs: OpenVINO's THROUGHPUT hint (several streams, requests in flight at once) against
the LATENCY hint the engine uses (one stream over every core, one request at a time), on the same graph.

    python benchmarks/bench_openvino_streams.py                    # MiniLM's int8-weight graph, 5 rounds
    python benchmarks/bench_openvino_streams.py --graph .bench/jina-4l-onnx/onnx/model_int8_weights.onnx

Same padded batches of token ids (length-sorted, ``--batch`` texts each) through both compiled models; rounds
interleave the two so a drifting load hits both alike; the figure is tokens/s (real tokens), median over rounds,
and the ratio is the median of per-round ratios. The outputs are compared too (max abs difference): streams must
not change what a row gets.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def batches(folder: Path, n: int, batch: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` texts of 16-250 tokens from the test corpus, sorted by length, padded per batch."""
    from tokenizers import Tokenizer

    from jinav3.testing import CORPUS

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(n):
        words = " ".join(CORPUS[int(i)] for i in rng.integers(len(CORPUS), size=6))
        ids.append(tokenizer.encode(words).ids[: int(rng.integers(16, 251))])
    ids.sort(key=len)
    feeds = []
    for first in range(0, n, batch):
        group = ids[first:first + batch]
        width = max(map(len, group))
        input_ids = np.zeros((len(group), width), np.int64)
        mask = np.zeros((len(group), width), np.int64)
        for row, seq in enumerate(group):
            input_ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
        feeds.append({"input_ids": input_ids, "attention_mask": mask})
    return feeds


def compiled(graph: Path, hint: str, bf16: bool) -> Any:
    import openvino as ov

    from jinav3.backends.openvino_engine import OpenVinoBackend

    config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
    if "int8" in graph.name:
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = OpenVinoBackend.activation_group
    core = ov.Core()
    return core.compile_model(core.read_model(str(graph)), "CPU", config)


def run_latency(model: Any, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    request = model.create_infer_request()
    return [request.infer(feed)[0].copy() for feed in feeds]


def run_throughput(model: Any, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    import openvino as ov

    out: list[np.ndarray | None] = [None] * len(feeds)
    queue = ov.AsyncInferQueue(model, model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def done(request: Any, index: int) -> None:
        out[index] = request.get_output_tensor(0).data.copy()

    queue.set_callback(done)
    for index, feed in enumerate(feeds):
        queue.start_async(feed, index)
    queue.wait_all()
    return out  # type: ignore[return-value]


def main() -> None:
    from jinav3.runtime.hardware import cpu_features

    default = Path(__file__).resolve().parent.parent / ".bench" / "minilm-6l-onnx" / "onnx" / "model_int8_weights.onnx"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=default, help="an exported graph (its folder's parent holds "
                        "tokenizer.json); default: MiniLM's int8-weight graph that bench_engines/roofline wrote")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cpu = cpu_features()
    feeds = batches(args.graph.parent.parent, args.n, args.batch, 0)
    tokens = sum(int(f["attention_mask"].sum()) for f in feeds)
    latency, throughput = compiled(args.graph, "LATENCY", cpu.native_bf16), compiled(args.graph, "THROUGHPUT",
                                                                                       cpu.native_bf16)
    streams = throughput.get_property("NUM_STREAMS"), throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    a, b = run_latency(latency, feeds), run_throughput(throughput, feeds)  # warm-up, and the outputs compared
    difference = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
    rates: dict[str, list[float]] = {"LATENCY": [], "THROUGHPUT": []}
    for _ in range(args.rounds):
        for name, model, run in (("LATENCY", latency, run_latency), ("THROUGHPUT", throughput, run_throughput)):
            start = time.perf_counter()
            run(model, feeds)
            rates[name].append(tokens / (time.perf_counter() - start))
    ratios = [t / lat for t, lat in zip(rates["THROUGHPUT"], rates["LATENCY"], strict=True)]
    print(f"{args.graph} ({cpu.describe()}); {args.n} texts, {tokens:,} tokens, batches of {args.batch}; "
          f"THROUGHPUT: {streams[0]} streams, {streams[1]} requests in flight; {args.rounds} interleaved rounds")
    for name, values in rates.items():
        print(f"  {name:>10}: {statistics.median(values):8,.0f} tokens/s (median; min {min(values):,.0f}, "
              f"max {max(values):,.0f})")
    print(f"  THROUGHPUT / LATENCY: {statistics.median(ratios):.2f}x (median of per-round ratios); outputs differ "
          f"by at most {difference:.2e}")


if __name__ == "__main__":
    main()
