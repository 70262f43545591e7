"""``jinav3 serve``: a self-hosted server speaking the Jina Embeddings API contract over the local backend.

Needs the ``server`` extra (``pip install 'jinav3[server]'``: fastapi and uvicorn); the rest of jinav3 does not.
"""

from __future__ import annotations

from jinav3.server.app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
