"""Fixtures for the Haystack adapter: component settings that point at the tiny checkpoint on the CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("haystack", reason="haystack-ai is not installed")
pytest.importorskip("haystack_integrations.components.embedders.jinav3", reason="jinav3-haystack is not installed")


# Haystack's usage telemetry would try to reach posthog.com; tests talk to 127.0.0.1 only.
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"


@pytest.fixture(scope="session")
def tiny(tiny_checkpoint: Path) -> dict[str, Any]:
    """Keyword arguments that make any jinav3 component use the tiny checkpoint on the CPU, without progress bars
    where the component has them."""
    return {"model": str(tiny_checkpoint), "backend_options": {"device": "cpu"}}


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local use must never need a key."""
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    monkeypatch.delenv("JINAAI_API_KEY", raising=False)
