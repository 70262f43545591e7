"""Plain, serialisable backend settings -> ``Embedder`` options. Shared by every adapter so that a misplaced or
misspelt option is the same clear error everywhere, never a ``TypeError`` deep inside a backend."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinav3.errors import InvalidInputError

#: The model each backend uses when none is named.
DEFAULT_MODELS: dict[str, str] = {"local": "jinaai/jina-embeddings-v3", "api": "jina-embeddings-v3"}

_COMMON = ("query_task", "document_task")
#: Options each backend accepts (beyond ``model``).
BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    "local": ("engine", "device", "dtype", "max_length", "token_budget", "max_batch", "attn_implementation",
              "merge_lora", "unpadded", "device_pooling", "threads", "max_padding", *_COMMON),
    "api": ("api_key", "base_url", "timeout", "max_retries", "max_concurrency", "max_batch_inputs",
            "max_batch_tokens", "max_request_tokens", "full_dimensions", "backoff", "max_backoff", *_COMMON),
}

#: Engines of the local backend and the options each takes (beyond ``device``/``dtype`` and the role tasks).
ENGINE_OPTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("max_length", "token_budget", "max_batch", "attn_implementation", "merge_lora", "unpadded",
              "device_pooling"),
    "onnx": ("max_length", "token_budget", "max_batch", "threads", "max_padding"),
    "openvino": ("max_length", "token_budget", "max_batch", "threads", "max_padding"),
}
#: ``--engine`` choices of the commands that load the local backend.
ENGINES = list(ENGINE_OPTIONS)


def check_engine_options(engine: str, options: Mapping[str, Any]) -> None:
    """An unknown engine, or an option the chosen engine does not take, is an error naming it."""
    if engine not in ENGINE_OPTIONS:
        raise InvalidInputError(f"unknown engine {engine!r}; use one of {', '.join(map(repr, ENGINE_OPTIONS))}")
    wrong = [name for name in options if name not in ENGINE_OPTIONS[engine]]
    if wrong:
        raise InvalidInputError(f"{', '.join(wrong)}: not an option of engine={engine!r} (it takes "
                                f"{', '.join(ENGINE_OPTIONS[engine])})")


#: Precision names of the local backend (aliases -> canonical). ``int8`` = int8 weights with dynamic int8
#: activations on CPU (:mod:`jinav3.model.int8`); the others are torch dtypes.
LOCAL_DTYPES: dict[str, str] = {
    "float32": "float32", "fp32": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16",
    "int8": "int8", "qint8": "int8",
}


#: ``--dtype`` help of every command that loads the local backend.
DTYPE_HELP = ("float32, bfloat16 or int8 (int8: CPU only, int8 weights and activations via ONNX Runtime); default: "
              "chosen by hardware (bf16 on CUDA and on CPUs with native bf16, else float32)")


def check_dtype(dtype: str) -> str:
    """The canonical name of a local-backend precision (``float32``, ``bfloat16``, ``float16``, ``int8``)."""
    try:
        return LOCAL_DTYPES[str(dtype).lower()]
    except KeyError:
        raise InvalidInputError(
            f"unknown dtype {dtype!r}; use one of {', '.join(sorted(set(LOCAL_DTYPES.values())))} (or leave it unset "
            "to let the backend choose by hardware)"
        ) from None


#: Precisions each engine of the local backend runs; the first is the engine's default where it has one.
ENGINE_DTYPES: dict[str, tuple[str, ...]] = {
    "torch": ("float32", "bfloat16", "float16", "int8"),
    "onnx": ("float32", "int8"),
    "openvino": ("float32", "bfloat16", "int8"),
}

#: Device names of the local backend: a torch device type, optionally with an index (``cuda:1``).
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:\d+)?")
DEVICE_NAMES = "cpu, cuda, cuda:N (the N-th GPU), mps (Apple GPU) or xpu (Intel GPU)"


def check_device(device: str) -> str:
    """``device`` as given when it names a device type the local backend can run on; an unknown name (``tpu``,
    ``gpu``, ``cuda1``) is an :class:`InvalidInputError` listing the valid ones, before torch is imported."""
    if not isinstance(device, str) or _DEVICE.fullmatch(device.strip().lower()) is None:
        raise InvalidInputError(f"unknown device {device!r}; use {DEVICE_NAMES}, or leave it unset to pick the "
                                "best available")
    return device.strip().lower()


def check_engine_precision(engine: str, dtype: str | None, device: str | None) -> None:
    """Refuse, before anything is loaded, a precision or a device the chosen engine does not run."""
    if dtype is not None:
        chosen = check_dtype(dtype)
        offered = ENGINE_DTYPES.get(engine, ENGINE_DTYPES["torch"])
        if chosen not in offered:
            raise InvalidInputError(f"engine={engine!r} runs {', '.join(offered[:-1])} or {offered[-1]}, not "
                                    f"{dtype!r}; use engine='torch' for {chosen}")
    if device is not None and check_device(device) != "cpu" and engine != "torch":
        raise InvalidInputError(f"engine={engine!r} runs on the CPU only, not on {device!r}; use engine='torch' "
                                "there")


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
    if isinstance(given.get("dtype"), str):
        check_dtype(given["dtype"])
    if isinstance(given.get("device"), str):
        check_device(given["device"])
    return given


def canonical_model(name: str) -> str:
    """The hub id and the API name of jina-embeddings-v3 denote the same vectors: compare them without owner."""
    return name.removeprefix("jinaai/")
