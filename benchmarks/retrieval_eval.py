"""Retrieval evaluation: naive vs late chunking vs whole documents on a BEIR folder (same as ``jinav3 eval``).

    python benchmarks/retrieval_eval.py path/to/scifact --model jinaai/jina-embeddings-v3 -o results/scifact.json

Download a BEIR set first (for example SciFact: the ``scifact.zip`` of the BEIR benchmark, unzipped), or write
the small synthetic one with ``python -m jinav3.evaluation.synthetic FOLDER``. All options: ``jinav3 eval --help``.
"""

from __future__ import annotations

import sys

from jinav3.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", *sys.argv[1:]]))
