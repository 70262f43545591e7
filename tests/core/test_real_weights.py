"""Published fp32 anchors of the real jina-embeddings-v3 (transformers' integration test, MODEL.md section 10).

Opt-in: runs where the real weights are present, in a folder named by ``JINAV3_REAL_MODEL`` or in the HF cache.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

IDS = [0, 345, 232, 328, 740, 140, 1695, 69, 6078, 1588, 2]
MASK = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
ANCHORS = {
    None: [[-2.1561, 1.8075, -0.1943], [-2.0813, 1.9855, -0.2760], [-2.1181, 2.0043, -0.1322]],
    "retrieval.query": [[-1.5202, 2.4074, -0.9706], [-1.5279, 2.4025, -1.1237], [-1.5252, 2.6143, -0.9416]],
    "retrieval.passage": [[-1.0778, 1.8124, -0.8223], [-1.3796, 1.8108, -0.9868], [-1.1073, 1.9459, -0.8104]],
}


def _real_model_folder() -> str | None:
    folder = os.environ.get("JINAV3_REAL_MODEL")
    if folder:
        return folder
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download("jinaai/jina-embeddings-v3", local_files_only=True)
    except Exception:
        return None


@pytest.mark.real_model
@pytest.mark.parametrize("task", list(ANCHORS))
def test_published_anchors(task):
    folder = _real_model_folder()
    if folder is None:
        pytest.skip("real jina-embeddings-v3 weights not available (set JINAV3_REAL_MODEL or fill the HF cache)")
    from jinav3 import Embedder

    backend = Embedder.local(folder, device="cpu", dtype="float32").backend
    backend._selection.use(backend._task_id(task))
    with torch.inference_mode():
        hidden = backend._module(input_ids=torch.tensor([IDS]), attention_mask=torch.tensor([MASK])).last_hidden_state
    np.testing.assert_allclose(hidden[0, 1:4, 1:4].numpy(), ANCHORS[task], atol=1e-3)
