"""langchain-tests' standard embeddings suites, against the local backend on the tiny checkpoint and against
``backend="api"`` talking to the real ``jinav3 serve`` app on 127.0.0.1. No fakes."""

from __future__ import annotations

import pytest
from langchain_jinav3 import JinaV3Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests


class _Local:
    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_model: str) -> None:
        self._model_dir = tiny_model

    @property
    def embeddings_class(self) -> type[JinaV3Embeddings]:
        return JinaV3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self._model_dir, "device": "cpu", "dimensions": 16}


class TestLocalUnit(_Local, EmbeddingsUnitTests):
    pass


class TestLocalIntegration(_Local, EmbeddingsIntegrationTests):
    pass


class TestApiUnit(EmbeddingsUnitTests):
    """Construction only (the model is contacted on first use): the key comes from JINA_API_KEY."""

    @property
    def embeddings_class(self) -> type[JinaV3Embeddings]:
        return JinaV3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"backend": "api", "api_key": "jina_test", "dimensions": 256}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return {"JINA_API_KEY": "jina_from_env"}, {"backend": "api"}, {"api_key": "jina_from_env"}


class TestApiIntegration(EmbeddingsIntegrationTests):
    """The whole integration suite over HTTP, against the loopback server."""

    @pytest.fixture(autouse=True)
    def _server(self, api_settings: dict) -> None:
        self._settings = api_settings

    @property
    def embeddings_class(self) -> type[JinaV3Embeddings]:
        return JinaV3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {**self._settings, "dimensions": 16}
