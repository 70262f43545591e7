"""Read (and write) the BEIR folder format: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jinav3.errors import InvalidInputError


@dataclass(frozen=True)
class BeirDataset:
    """Documents and queries by id, and graded relevance ``qrels[query_id][doc_id]`` (> 0 means relevant)."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = "dataset"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise InvalidInputError(f"{path} is missing; a BEIR folder has corpus.jsonl, queries.jsonl and qrels/")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{number} is not JSON: {exc}") from None
            if "_id" not in record:
                raise InvalidInputError(f"{path}:{number} has no '_id' field")
            records.append(record)
    return records


def document_text(record: Mapping[str, object]) -> str:
    """A corpus record as one text: its title (when there is one) as a first paragraph, then its text."""
    title = str(record.get("title") or "").strip()
    text = str(record.get("text") or "").strip()
    return f"{title}\n\n{text}" if title and text else title or text


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise InvalidInputError(f"{path} is missing; pass --split to pick another qrels file")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(rows, 1):
            if not row or (number == 1 and row[0] in ("query-id", "query_id", "qid")):
                continue  # blank line or header
            if len(row) < 3:
                raise InvalidInputError(f"{path}:{number} needs query-id, corpus-id and score, got {row!r}")
            try:
                score = int(float(row[2]))
            except ValueError:
                raise InvalidInputError(f"{path}:{number} has a non-numeric score {row[2]!r}") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(
    folder: str | Path, split: str = "test", limit_queries: int | None = None, limit_docs: int | None = None
) -> BeirDataset:
    """Load a BEIR folder, keeping only queries with at least one relevant document in the corpus.

    ``limit_queries`` keeps the first N such queries; ``limit_docs`` shrinks the corpus to N documents, always
    keeping the relevant documents of the kept queries (then the corpus's first other documents as distractors),
    so a quick run still measures something.
    """
    root = Path(folder)
    corpus = {str(r["_id"]): document_text(r) for r in _read_jsonl(root / "corpus.jsonl")}
    corpus = {doc_id: text for doc_id, text in corpus.items() if text.strip()}
    all_queries = {str(r["_id"]): str(r.get("text") or "") for r in _read_jsonl(root / "queries.jsonl")}
    qrels_all = _read_qrels(root / "qrels" / f"{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    for qid, judged in qrels_all.items():
        judged = {d: s for d, s in judged.items() if d in corpus}
        if qid in all_queries and all_queries[qid].strip() and any(s > 0 for s in judged.values()):
            qrels[qid] = judged
    if limit_queries is not None:
        qrels = dict(list(qrels.items())[: max(limit_queries, 0)])
    if not qrels:
        raise InvalidInputError(f"{root}: no query of the '{split}' split has a relevant document in the corpus")
    if limit_docs is not None:
        keep = {d for judged in qrels.values() for d, s in judged.items() if s > 0}
        for doc_id in corpus:
            if len(keep) >= limit_docs:
                break
            keep.add(doc_id)
        corpus = {d: t for d, t in corpus.items() if d in keep}
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(corpus, queries, qrels, name=root.name)


def write_beir(
    folder: str | Path,
    corpus: Mapping[str, str | Mapping[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    split: str = "test",
) -> Path:
    """Write a BEIR folder (for generated test and demo sets). Corpus values are texts or {title, text}."""
    root = Path(folder)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, doc in corpus.items():
            fields = {"title": "", "text": doc} if isinstance(doc, str) else dict(doc)
            handle.write(json.dumps({"_id": doc_id, **fields}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (root / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in qrels.items():
            for doc_id, score in judged.items():
                handle.write(f"{qid}\t{doc_id}\t{score}\n")
    return root
