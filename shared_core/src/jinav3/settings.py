"""Plain, serialisable backend settings -> ``Embedder`` options. Shared by every adapter so that a misplaced or
misspelt option is the same clear error everywhere, never a ``TypeError`` deep inside a backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinav3.errors import InvalidInputError

#: The model each backend uses when none is named.
DEFAULT_MODELS: dict[str, str] = {"local": "jinaai/jina-embeddings-v3", "api": "jina-embeddings-v3"}

_COMMON = ("query_task", "document_task")
#: Options each backend accepts (beyond ``model``).
BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    "local": ("device", "dtype", "max_length", "token_budget", "max_batch", "attn_implementation", "merge_lora",
              *_COMMON),
    "api": ("api_key", "base_url", "timeout", "max_retries", "max_concurrency", "max_batch_inputs",
            "max_batch_tokens", "max_request_tokens", "full_dimensions", "backoff", "max_backoff", *_COMMON),
}


def check_backend(backend: str) -> str:
    if backend not in BACKEND_OPTIONS:
        raise InvalidInputError(f"unknown backend {backend!r}; use 'local' or 'api'")
    return backend


def backend_options(backend: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``settings`` that are set (not None), checked against ``backend``.

    An option of the other backend, or one no backend knows, raises :class:`InvalidInputError` naming it.
    """
    check_backend(backend)
    allowed = BACKEND_OPTIONS[backend]
    given = {name: value for name, value in settings.items() if value is not None}
    wrong = [name for name in given if name not in allowed]
    if wrong:
        other = next(b for b in BACKEND_OPTIONS if b != backend)
        belongs = [n for n in wrong if n in BACKEND_OPTIONS[other]]
        unknown = [n for n in wrong if n not in BACKEND_OPTIONS[other]]
        parts = []
        if belongs:
            parts.append(f"setting(s) {', '.join(belongs)} do not apply to backend={backend!r} (they are options of "
                         f"backend={other!r}); remove them or change the backend")
        if unknown:
            parts.append(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not an option of any backend "
                         f"(backend={backend!r} takes {', '.join(allowed)})")
        raise InvalidInputError("; ".join(parts))
    return given


def canonical_model(name: str) -> str:
    """The hub id and the API name of jina-embeddings-v3 denote the same vectors: compare them without owner."""
    return name.removeprefix("jinaai/")
