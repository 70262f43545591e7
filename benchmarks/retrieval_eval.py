"""Retrieval evaluation: naive vs late chunking vs whole documents on a BEIR folder (same as ``jinav3 eval``).

    python benchmarks/retrieval_eval.py path/to/scifact --model MODEL --chunk-size 32 64 128 \\
        --chunker tokens sentences --matryoshka 32 64 128 256 --embedding-types float binary -o scifact.json

Any BEIR folder works (SciFact, NFCorpus, ...; download it yourself, it is not part of this repository), or the
small synthetic one written by ``python -m jinav3.evaluation.synthetic FOLDER``. Vectors are cached under
``--cache-dir`` (default ``~/.cache/jinav3/eval``), so reruns with other widths or encodings skip the model. Each
phase prints its wall and CPU time. All options: ``jinav3 eval --help``; plots: ``scripts/plots/plot_eval.py``.
"""

from __future__ import annotations

import sys

from jinav3.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", *sys.argv[1:]]))
