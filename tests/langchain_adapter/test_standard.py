"""langchain-tests' standard embeddings suites, against the local backend on the tiny checkpoint and against
``backend="api"`` talking to the real ``jinav3 serve`` app on 127.0.0.1. No fakes."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_jinav3 import JinaV3Embeddings


class _JinaV3:
    """The class under test; ``_params`` comes from a fixture, since the settings point at test-built things."""

    _params: dict

    @property
    def embeddings_class(self) -> type[JinaV3Embeddings]:
        return JinaV3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return self._params


class _Local(_JinaV3):
    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_model: str) -> None:
        self._params = {"model": tiny_model, "device": "cpu", "dimensions": 16}


class TestLocalUnit(_Local, EmbeddingsUnitTests):
    pass


class TestLocalIntegration(_Local, EmbeddingsIntegrationTests):
    pass


class TestApiUnit(_JinaV3, EmbeddingsUnitTests):
    """Construction only (the server is contacted on first use); the key may come from JINA_API_KEY."""

    _params = {"backend": "api", "api_key": "jina_test", "dimensions": 256}  # noqa: RUF012

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return {"JINA_API_KEY": "jina_from_env"}, {"backend": "api"}, {"api_key": "jina_from_env"}


class TestApiIntegration(_JinaV3, EmbeddingsIntegrationTests):
    """The whole integration suite over HTTP, against the loopback server."""

    @pytest.fixture(autouse=True)
    def _server(self, api_settings: dict) -> None:
        self._params = {**api_settings, "dimensions": 16}
