"""The ``sentences`` chunker: speed and fragments on SciFact, and boundary agreement on generated multilingual text.

SciFact (English abstracts): time with language detection (the default) and with ``language="en"``, which
languages were detected, in how many documents the two agree, and how often a piece is a one- or two-word
"sentence" (e.g. "C." cut from "C. albicans"). Generated text: documents of 1-7 known sentences per language
(tests/core/multilingual_sentences.py: abbreviations, numbers, ordinal dates), with precision and recall of the
chunker's boundaries against the known ones, by the language's own rules (named or detected) and by English rules
(what every document got before languages were detected). Run it with two versions of the code on PYTHONPATH to
compare them.

    python benchmarks/bench_sentence_chunker.py /path/to/scifact/corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from jinav3 import SentenceChunker
from jinav3.late_chunking.languages import detect_language

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
from multilingual_sentences import SENTENCES, UNSPACED  # test data shared with the tests

Span = tuple[int, int]


def _timed(chunker: SentenceChunker, texts: Sequence[str], rounds: int) -> tuple[float, list[list[Span]]]:
    best, spans = float("inf"), []
    for _ in range(rounds):
        start = time.perf_counter()
        spans = [chunker.spans(text) for text in texts]
        best = min(best, time.perf_counter() - start)
    return best, spans


def scifact(corpus: Path, rounds: int) -> None:
    with corpus.open(encoding="utf-8") as lines:
        texts = [f"{row.get('title', '')}\n\n{row['text']}" for row in map(json.loads, lines)]
    megabytes = sum(map(len, texts)) / 2**20
    results = {language: _timed(SentenceChunker(language=language), texts, rounds) for language in ("auto", "en")}
    print(f"SciFact: {len(texts)} documents, {megabytes:.1f} MB")
    print(f"| language | s (best of {rounds}) | MB/s | sentences | one- or two-word pieces |")
    print("|---|---:|---:|---:|---:|")
    for language, (seconds, spans) in results.items():
        pieces = [text[s:e] for text, found in zip(texts, spans, strict=True) for s, e in found]
        fragments = [p for p in pieces if len(p.split()) <= 2 and not any("\u3000" <= c <= "\u9fff" for c in p)]
        print(f"| {language} | {seconds:.2f} | {megabytes / seconds:.1f} | {len(pieces)} | {len(fragments)} |")
    start = time.perf_counter()
    detected = Counter(detect_language(text) for text in texts)
    detecting = time.perf_counter() - start
    same = sum(a == b for a, b in zip(results["auto"][1], results["en"][1], strict=True))
    print(f"detected: {dict(detected.most_common(5))} in {detecting:.2f} s ({1e3 * detecting / len(texts):.3f} ms a "
          f"document); auto and en give the same spans in {same} of {len(texts)} documents")


def _boundaries(text: str, spans: Sequence[Span]) -> set[int]:
    return {end for _, end in spans[:-1]}


def generated(per_language: int, seed: int) -> None:
    rng = random.Random(seed)
    print(f"\nGenerated documents ({per_language} per language, 1-7 known sentences, random whitespace between):")
    print("| language | known boundaries | own rules, named: P / R | detected: P / R (detected right) | "
          "English rules: P / R |")
    print("|---|---:|---:|---:|---:|")
    for language, sentences in SENTENCES.items():
        counts = {name: Counter() for name in ("named", "auto", "en")}
        right = 0
        for _ in range(per_language):
            chosen = rng.choices(sentences, k=rng.randint(1, 7))
            gaps = rng.choices(["", " ", "\n"] if language in UNSPACED else [" ", "  ", "\n", " \n", "\t"],
                               k=len(chosen))
            text, known, at = "", set(), 0
            for sentence, gap in zip(chosen, gaps, strict=True):
                text += sentence + gap
                at += len(sentence)
                known.add(at)
                at += len(gap)
            text, known = text.rstrip(), known - {len(text.rstrip())}
            right += detect_language(text) == language
            for name, rules in (("named", language), ("auto", "auto"), ("en", "en")):
                found = _boundaries(text, SentenceChunker(language=rules).spans(text))
                counts[name].update(tp=len(found & known), fp=len(found - known), fn=len(known - found))
        cells = []
        for name in ("named", "auto", "en"):
            c = counts[name]
            precision = c["tp"] / max(1, c["tp"] + c["fp"])
            recall = c["tp"] / max(1, c["tp"] + c["fn"])
            cells.append(f"{precision:.3f} / {recall:.3f}" + (f" ({right}/{per_language})" if name == "auto" else ""))
        print(f"| {language} | {sum(counts['named'][k] for k in ('tp', 'fn'))} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="a BEIR corpus.jsonl (title and text per line)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many passes")
    parser.add_argument("--per-language", type=int, default=200, help="generated documents per language")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scifact(args.corpus, args.rounds)
    generated(args.per_language, args.seed)


if __name__ == "__main__":
    main()
