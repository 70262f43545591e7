"""``JinaV3TextEmbedder``: one string in, one vector out, with the query task by default (the retriever side)."""

from __future__ import annotations

from typing import Any

from haystack import component, default_from_dict, default_to_dict
from haystack.utils import Secret

from haystack_integrations.components.embedders.jinav3._component import (
    JinaV3Component,
    default_api_key,
    restore_secrets,
)
from jinav3.usage import TokenUsage


@component
class JinaV3TextEmbedder(JinaV3Component):
    """Embed a query (or any text) with jina-embeddings-v3, locally or through the Jina API.

    ```python
    from haystack_integrations.components.embedders.jinav3 import JinaV3TextEmbedder

    embedder = JinaV3TextEmbedder(dimensions=256)           # local jinaai/jina-embeddings-v3, task retrieval.query
    embedder.run(text="Which city was divided by a wall?")["embedding"]   # 256 floats, unit length
    ```
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str = "local",
        api_key: Secret = default_api_key(),  # noqa: B008 (Haystack's convention for secrets)
        task: str | None = "retrieval.query",
        dimensions: int | None = None,
        prefix: str = "",
        suffix: str = "",
        normalized: bool = True,
        truncate: bool = False,
        backend_options: dict[str, Any] | None = None,
        base_url: str | None = None,
        late_chunking: bool = False,
        embedding_type: str = "float",
    ) -> None:
        """
        :param model: Folder or hub id (local) or API model name; None = jina-embeddings-v3 for the backend.
        :param backend: ``"local"`` (torch in this process) or ``"api"`` (the Jina Embeddings HTTP API).
        :param api_key: Used only with ``backend="api"``; default reads ``JINA_API_KEY`` / ``JINAAI_API_KEY``.
        :param task: LoRA task (``retrieval.query``, ``retrieval.passage``, ``separation``, ``classification``,
            ``text-matching``) or None for the base weights.
        :param dimensions: Matryoshka size (trained: 32…1024); None = full width.
        :param prefix: Text put before the input. The task instruction is added by the model; do not repeat it.
        :param suffix: Text put after the input.
        :param normalized: L2-normalise after truncation to ``dimensions``.
        :param truncate: Cut texts longer than the model's context instead of raising an error.
        :param backend_options: Further settings for the core backend, e.g. ``{"device": "cuda", "dtype":
            "bfloat16", "max_length": 8192}`` (local) or ``{"timeout": 60, "max_retries": 5}`` (api).
        :param base_url: API backend: the Jina API root or a ``jinav3 serve`` server (``.../v1``; jina-haystack's
            ``.../v1/embeddings`` form is accepted too).
        :param late_chunking: Accepted for one-line migration from jina-haystack. A query is one whole text, i.e.
            one chunk covering its document, and late chunking a single chunk gives the plain vector: no effect.
        :param embedding_type: ``"float"``, or ``"binary"``/``"ubinary"``: the sign bits as ±1.0 floats of the full
            width, so a store's cosine or dot product ranks by Hamming distance (packed bytes would not).
        """
        self._init_backend(model, backend, api_key, task, dimensions, backend_options, base_url, embedding_type)
        self.late_chunking = late_chunking
        self.prefix = prefix
        self.suffix = suffix
        self.normalized = normalized
        self.truncate = truncate

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, **self._backend_params(), prefix=self.prefix, suffix=self.suffix, normalized=self.normalized,
            truncate=self.truncate, late_chunking=self.late_chunking,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JinaV3TextEmbedder:
        return default_from_dict(cls, restore_secrets(data))

    def _text(self, text: Any) -> str:
        if not isinstance(text, str):
            raise TypeError(
                "JinaV3TextEmbedder expects a string as input; to embed a list of Documents, use "
                "JinaV3DocumentEmbedder"
            )
        return self.prefix + text + self.suffix

    def _options(self) -> dict[str, Any]:
        return {"task": self.task, "dimensions": self.dimensions, "normalized": self.normalized,
                "truncate": self.truncate, "embedding_type": self.core_embedding_type}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """Embed ``text``; returns ``embedding`` (list of floats) and ``meta`` (model, token usage)."""
        usage = TokenUsage()
        vectors = self.embedder.embed([self._text(text)], **self._options(), usage=usage)
        return {"embedding": vectors[0].tolist(), "meta": self._run_meta(usage)}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Same as :meth:`run`, without blocking the event loop (the local backend computes in a worker thread)."""
        full = self._text(text)
        await self.warm_up_async()
        usage = TokenUsage()
        vectors = await self.embedder.aembed([full], **self._options(), usage=usage)
        return {"embedding": vectors[0].tolist(), "meta": self._run_meta(usage)}
