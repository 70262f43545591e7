"""What every jinav3 Haystack component shares: backend settings, the API key as a ``Secret``, validation,
lazy creation of the core :class:`jinav3.Embedder`, and the serialised form of those settings.

The core embedder comes from ``Embedder.shared``, so a query embedder, a document embedder and a splitter with the
same backend settings load a local model once per process. Because that instance is shared, components always pass
their own ``task`` to the core and never rely on its query/document roles.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from haystack import Document
from haystack.utils import Secret, deserialize_secrets_inplace

from jinav3 import TASKS, Embedder, InvalidInputError
from jinav3.matryoshka import check_dimensions, float_path_encoding, validate_embedding_type
from jinav3.runtime.settings import backend_options as backend_options_check
from jinav3.runtime.settings import canonical_model
from jinav3.usage import TokenUsage

BACKENDS: tuple[str, ...] = ("local", "api")

#: Output encodings a Haystack ``Document.embedding`` (a list of floats) can hold: floats, or the sign bits as ±1.0
#: floats of the full width (``binary`` and ``ubinary`` alike: packed bytes read as floats would rank wrongly).
EMBEDDING_TYPES: tuple[str, ...] = ("float", "binary", "ubinary")


def default_api_key() -> Secret:
    """The key is read from ``JINA_API_KEY`` or ``JINAAI_API_KEY``, and only when ``backend="api"``: not strict, so
    a local-only user needs no key at all."""
    return Secret.from_env_var(["JINA_API_KEY", "JINAAI_API_KEY"], strict=False)


def check_documents(documents: Any, component: str) -> list[Document]:
    """Haystack convention: a wrong input type is a ``TypeError`` that says what was expected."""
    if not isinstance(documents, list) or not all(isinstance(doc, Document) for doc in documents):
        raise TypeError(
            f"{component} expects a list of Documents as input; to embed a single string, use JinaV3TextEmbedder"
        )
    return documents


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive slices of ``size`` items: how many texts or documents go to the core per call."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


class JinaV3Component:
    """Base of the jinav3 components: holds the backend settings and builds the core embedder on ``warm_up``."""

    def _init_backend(
        self,
        model: str | None,
        backend: str,
        api_key: Secret,
        task: str | None,
        dimensions: int | None,
        backend_options: dict[str, Any] | None,
        base_url: str | None = None,
        embedding_type: str = "float",
    ) -> None:
        if backend not in BACKENDS:
            raise InvalidInputError(f"unknown backend {backend!r}; use 'local' or 'api'")
        if task is not None and task not in TASKS:
            raise InvalidInputError(
                f"unknown task {task!r}; valid tasks are {', '.join(map(repr, TASKS))} (or None for no adapter)"
            )
        dimensions = check_dimensions(dimensions)  # the core's one rule: an int >= 1 or None, never a string
        if not isinstance(api_key, Secret):
            raise TypeError(
                f"api_key must be a haystack Secret (Secret.from_env_var(...) or Secret.from_token(...)), "
                f"got {type(api_key).__name__}"
            )
        options = dict(backend_options or {})
        if "api_key" in options:
            raise InvalidInputError("pass the API key as api_key=Secret..., not in backend_options (it would be saved)")
        if base_url is not None:
            if backend != "api":
                raise InvalidInputError("base_url applies to backend='api' (the Jina API or a `jinav3 serve` server)")
            if "base_url" in options:
                raise InvalidInputError("pass base_url once: either base_url=... or backend_options['base_url']")
        if embedding_type not in EMBEDDING_TYPES:
            validate_embedding_type(embedding_type)  # names the core's types for a typo
            raise InvalidInputError(
                f"embedding_type {embedding_type!r} cannot be stored in Document.embedding; use one of "
                f"{', '.join(map(repr, EMBEDDING_TYPES))}"
            )
        self.base_url = base_url
        self.embedding_type = embedding_type
        # A wrong option or dtype is named now, not at warm_up. An api_key other than the default (which only reads
        # the environment) is an option of backend="api": with the local backend it would be ignored while the
        # model loads from the hub, so the core's rule refuses it here as it does for the other adapters.
        explicit_key = {"api_key": "<set>"} if backend == "local" and api_key != default_api_key() else {}
        backend_options_check(backend, {**options, **explicit_key})
        self.model = model
        self.backend = backend
        self.api_key = api_key
        self.task = task
        self.dimensions = dimensions
        self.backend_options = options
        self._embedder: Embedder | None = None

    def warm_up(self) -> None:
        """Create (or reuse) the core embedder; for the local backend this loads the model. Idempotent."""
        if self._embedder is None:
            options = dict(self.backend_options)
            if self.base_url is not None:
                # jina-haystack takes the full endpoint (".../v1/embeddings"); the core takes the API root.
                options["base_url"] = self.base_url.rstrip("/").removesuffix("/embeddings")
            if self.backend == "api":
                key = self.api_key.resolve_value()
                if key is not None:
                    options["api_key"] = key
            self._embedder = Embedder.shared(self.backend, self.model, **options)

    async def warm_up_async(self) -> None:
        """Load off the event loop: building a local model takes seconds and must not block other coroutines."""
        if self._embedder is None:
            await asyncio.to_thread(self.warm_up)

    @property
    def embedder(self) -> Embedder:
        """The core embedder, created on first use when ``run`` is called before ``warm_up``."""
        self.warm_up()
        assert self._embedder is not None
        return self._embedder

    @property
    def core_embedding_type(self) -> str:
        """The core encoding behind ``embedding_type``: ``binary``/``ubinary`` give the sign bits as ±1.0 floats."""
        return float_path_encoding(self.embedding_type)

    def vector_space(self) -> str:
        """The space this component's vectors live in (model, width, encoding), e.g. ``jina-embeddings-v3@256``."""
        embedder = self.embedder
        space = f"{canonical_model(embedder.model_name)}@{self.dimensions or embedder.dimensions}"
        return space if self.embedding_type == "float" else f"{space}/{self.embedding_type}"

    def _run_meta(self, usage: TokenUsage) -> dict[str, Any]:
        """``{"model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}`` as jina-haystack returns it, with
        the tokens the core reports consumed (the API's own count; locally the tokens fed to the model). ``usage``
        is absent only when a server answered without one."""
        meta: dict[str, Any] = {"model": self.embedder.model_name}
        counted = usage.as_openai()
        if counted is not None:
            meta["usage"] = counted
        return meta

    def _get_telemetry_data(self) -> dict[str, Any]:
        """Non-sensitive data for Haystack's usage telemetry."""
        return {"model": self.model, "backend": self.backend}

    def _backend_params(self) -> dict[str, Any]:
        """The shared init parameters, in the form ``default_to_dict`` expects (the Secret serialises itself and
        refuses to when it holds a plain token)."""
        return {
            "model": self.model,
            "backend": self.backend,
            "api_key": self.api_key,
            "task": self.task,
            "dimensions": self.dimensions,
            "backend_options": self.backend_options or None,
            "base_url": self.base_url,
            "embedding_type": self.embedding_type,
        }


def restore_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """Turn the serialised ``api_key`` back into a ``Secret`` before ``default_from_dict``."""
    deserialize_secrets_inplace(data.get("init_parameters", {}), keys=["api_key"])
    return data
