"""Shared by the adapter smoke scripts, which run in a fresh virtual environment holding only the built wheels (no
``local`` extra) against a ``jinav3 serve`` app on loopback. Standard library and the core only."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
from typing import Any

QUERY = "Which city was divided by a wall?"
TEXTS = ["Berlin is the capital of Germany.", "Kyoto was the old capital of Japan."]
DOCUMENT = "Berlin is the capital of Germany. It was divided by a wall. Today it hosts several universities."
DIMENSIONS = 16
HEAVY = ("torch", "transformers", "safetensors")


def check_light_install() -> None:
    """No torch & co. here, and asking for the local backend says which extra to install."""
    present = [name for name in HEAVY if importlib.util.find_spec(name) is not None]
    assert not present, f"the light install has {present}"
    from jinav3 import Embedder, ModelLoadError

    try:
        Embedder.local("some-model")
    except ModelLoadError as exc:
        assert "pip install -e 'shared_core[local]'" in str(exc), exc
    else:
        raise AssertionError("Embedder.local worked without the local extra")


def server() -> dict[str, Any]:
    """Where the loopback server is: ``base_url``, ``api_key`` and the model's ``full_dimensions``."""
    return {"base_url": os.environ["JINAV3_SMOKE_URL"], "api_key": os.environ["JINAV3_SMOKE_KEY"],
            "full_dimensions": int(os.environ["JINAV3_SMOKE_WIDTH"])}


def report(framework: str, query: Any, documents: Any, chunks: Any, spans: Any) -> None:
    """Print what the test compares with the local model, with the framework version actually installed."""
    assert not [name for name in HEAVY if name in sys.modules], "something imported torch & co."
    print(json.dumps({
        "framework": framework, "version": importlib.metadata.version(framework),
        "query": [float(x) for x in query], "documents": [[float(x) for x in row] for row in documents],
        "chunks": [[float(x) for x in row] for row in chunks], "spans": [[int(s), int(e)] for s, e in spans],
    }))
