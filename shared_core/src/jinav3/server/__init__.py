"""``jinav3 serve``: a self-hosted server speaking the Jina Embeddings API contract over the local backend.

Needs the ``server`` extra (``pip install -e 'shared_core[server]'``
in a clone of the repository: fastapi and uvicorn); the rest of jinav3 does not.
Names are imported on first use, so that ``jinav3 serve`` can check its port and arguments before torch loads.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'jinav3.server' has no attribute {name!r}")
    from jinav3.server import app

    return getattr(app, name)
