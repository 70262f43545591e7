"""Which core ``Embedder`` to use, as pydantic fields shared by the embedding model and the node parser.

Every value that changes the vectors is a pydantic ``Field``: it serialises with ``to_dict()`` and so feeds
``IngestionPipeline``'s cache key (private config would give stale cache hits). The API key is excluded from dumps
and reprs. The core ``Embedder`` is built lazily through ``Embedder.shared``, so an embedding model and a parser with
the same backend settings load a local model once per process.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from jinav3 import SEAL_KEY, Embedder
from jinav3.matryoshka import check_dimensions, float_path_encoding
from jinav3.runtime.settings import DEFAULT_MODELS, backend_options, canonical_model

#: Metadata key of the seal the late-chunking parser puts on every node it embeds (see
#: :mod:`jinav3.late_chunking.seal`); it is excluded from the embed and LLM metadata strings.
LATE_CHUNKED_KEY = SEAL_KEY

#: The settings below that are backend options (handed to the core as they are).
_OPTION_FIELDS = ("engine", "device", "dtype", "max_length", "token_budget", "api_key", "base_url", "timeout",
                  "max_retries", "full_dimensions")


class JinaV3CoreSettings(BaseModel):
    """Backend, model, Matryoshka width and backend options; builds the shared core ``Embedder`` on first use."""

    model_config = ConfigDict(protected_namespaces=(), extra="forbid", arbitrary_types_allowed=True)

    backend: Literal["local", "api"] = Field(
        default="local", description="'local' runs the model in this process; 'api' calls the Jina Embeddings API."
    )
    model_name: str = Field(
        default="",
        validation_alias=AliasChoices("model_name", "model"),
        description="Checkpoint folder or hub id (local) or API model name; empty = jina-embeddings-v3.",
    )
    dimensions: int | None = Field(
        default=None, gt=0, description="Matryoshka output width (32..1024 trained); None = full width."
    )
    engine: Literal["torch", "onnx", "openvino"] | None = Field(
        default=None,
        description="Local backend: 'torch' (default), 'onnx' (ONNX Runtime, no torch) or 'openvino' (OpenVINO on the "
        "same ONNX file, no torch).",
    )
    device: str | None = Field(default=None, description="Local backend: torch device; None = auto.")
    dtype: str | None = Field(default=None, description="Local backend: float32/bfloat16/int8; None = by hardware.")
    max_length: int | None = Field(default=None, gt=0, description="Local backend: tokens per sequence.")
    token_budget: int | None = Field(default=None, gt=0, description="Local backend: padded tokens per batch.")
    base_url: str | None = Field(default=None, description="API backend: endpoint (e.g. a `jinav3 serve`).")
    timeout: float | None = Field(default=None, gt=0, description="API backend: seconds per request.")
    max_retries: int | None = Field(default=None, ge=0, description="API backend: retries on 429/5xx.")
    full_dimensions: int | None = Field(
        default=None, gt=0, description="API backend: full width of the server's model; None = 1024."
    )
    embedding_type: Literal["float", "binary", "ubinary"] = Field(
        default="float",
        description="'float', or 'binary'/'ubinary': the sign bits as ±1.0 floats of the full width (cosine over "
        "them ranks by Hamming distance; packed bytes in a float store would not).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="API backend: key; None = JINA_API_KEY / JINAAI_API_KEY. Never serialised.",
    )

    _embedder: Embedder | None = PrivateAttr(default=None)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _integer_dimensions(cls, dimensions: object) -> int | None:
        return check_dimensions(dimensions)  # the core's rule: no "256" coerced to 256

    @model_validator(mode="after")
    def _check_backend_settings(self) -> JinaV3CoreSettings:
        if not self.model_name:
            self.model_name = DEFAULT_MODELS[self.backend]
        self.backend_options()  # raises, naming any setting that does not apply to this backend
        return self

    def backend_options(self) -> dict[str, Any]:
        """Options for ``Embedder.shared`` (only those set, so each backend keeps its own defaults)."""
        settings = {name: getattr(self, name) for name in _OPTION_FIELDS}
        if isinstance(settings["api_key"], SecretStr):
            settings["api_key"] = settings["api_key"].get_secret_value()
        return backend_options(self.backend, settings)

    @property
    def core(self) -> Embedder:
        """The shared core embedder for these settings (loaded on first use, then reused)."""
        embedder = getattr(self, "_embedder", None)  # LlamaIndex's __getstate__ may drop private attributes
        if embedder is None:
            embedder = Embedder.shared(self.backend, self.model_name, **self.backend_options())
            self._embedder = embedder
        return embedder

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the settings, never the loaded model (a copy reloads it lazily, once per process)."""
        embedder = getattr(self, "_embedder", None)
        self._embedder = None
        try:
            state = super().__getstate__()
            state["__pydantic_private__"] = dict(state.get("__pydantic_private__") or {})  # detach from self
        finally:
            self._embedder = embedder
        return state

    @property
    def core_embedding_type(self) -> str:
        """The core encoding behind ``embedding_type``: LlamaIndex stores take floats, so bits come as ±1.0."""
        return float_path_encoding(self.embedding_type)

    def vector_space(self) -> str:
        """Names the space the vectors live in (model, output width and encoding), e.g. ``jina-embeddings-v3@256``."""
        width = self.dimensions or self.core.dimensions
        space = f"{canonical_model(self.core.model_name)}@{width}"
        return space if self.embedding_type == "float" else f"{space}/{self.embedding_type}"

    def sealed_space(self, task: str | None) -> str:
        """The vector space a late-chunked node's seal names: :meth:`vector_space` and the document task."""
        return f"{self.vector_space()}#{task}"
