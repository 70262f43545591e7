"""The peers' side of ``bench_engines.py``: runs in the peers' own venv (``benchmarks/peers-requirements.txt``), never
imports jinav3, and speaks the same protocol as the jinav3 workers (``ready``, one ``seconds`` per ``run`` line, then
``peak_rss_mb``), so every engine is timed, loaded and measured the same way.

    python _peer_worker.py prepare ST_FOLDER CALIBRATION_JSONL   # sentence-transformers' exports, offline, once
    python _peer_worker.py NAME MODEL FOLDER TEXTS_JSON VECTORS_NPY DIM FASTEMBED_BATCH

fastembed runs on the file that ``jinav3 export-onnx`` wrote: MiniLM through its custom-model API (mean pooling,
normalised); the jina graph through fastembed's own jina-embeddings-v3 class pointed at the folder, because only
that class feeds the ``task_id`` input (the custom-model API feeds ``input_ids``, ``attention_mask`` and
``token_type_ids`` only). sentence-transformers runs on MiniLM only: it cannot load the jina architecture offline
(its modelling code lives on the hub).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from bench_engines import serve  # stdlib and numpy only at import time, so it loads in the peers' venv

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_name] = "1"  # nothing may reach the hub: every model and calibration set is local
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ONNX_INT8 = "onnx/model_qint8_avx512_vnni.onnx"
OPENVINO_INT8 = "openvino/openvino_model_qint8_quantized.xml"
#: sentence-transformers variants: (backend, model file inside the ST folder or None for the backend's default).
ST_VARIANTS: dict[str, tuple[str, str | None]] = {
    "st-torch": ("torch", None),
    "st-onnx": ("onnx", "onnx/model.onnx"),
    "st-onnx-int8": ("onnx", ONNX_INT8),
    "st-openvino": ("openvino", None),
    "st-openvino-int8": ("openvino", OPENVINO_INT8),
}


def prepare(folder: str, calibration: str) -> None:
    """Write sentence-transformers' ONNX and OpenVINO exports of the model in ``folder`` and their int8 versions
    (ONNX Runtime dynamic quantisation with AVX-512 VNNI kernels; OpenVINO static quantisation calibrated on the
    local ``calibration`` JSON-lines file), as a user following its efficiency guide would."""
    from optimum.intel import OVQuantizationConfig
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_static_quantized_openvino_model,
    )

    root = Path(folder)
    if not (root / ONNX_INT8).exists():
        onnx_model = SentenceTransformer(folder, backend="onnx", device="cpu")
        onnx_model.save_pretrained(folder)
        export_dynamic_quantized_onnx_model(onnx_model, "avx512_vnni", folder)
    if not (root / OPENVINO_INT8).exists():
        ov_model = SentenceTransformer(folder, backend="openvino", device="cpu")
        ov_model.save_pretrained(folder)
        local_set = {"dataset_name": str(Path(calibration).parent), "dataset_config_name": "default",
                     "dataset_split": "train", "column_name": "text"}  # a folder with one JSON-lines file
        export_static_quantized_openvino_model(ov_model, OVQuantizationConfig(), folder, **local_set)


def load(name: str, model: str, folder: str, dim: int, fastembed_batch: int) -> Any:
    """A callable embedding a list of texts to normalised vectors with the peer ``name``."""
    if name == "fastembed":
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        if model == "jina":
            jina = TextEmbedding("jinaai/jina-embeddings-v3", specific_model_path=folder)
            return lambda texts: np.stack(list(jina.passage_embed(texts, batch_size=fastembed_batch)))
        TextEmbedding.add_custom_model("jinav3-bench/" + model, pooling=PoolingType.MEAN, normalization=True,
                                       sources=ModelSource(hf="jinav3-bench/" + model), dim=dim,
                                       model_file="onnx/model.onnx", additional_files=["onnx/model.onnx_data"])
        custom = TextEmbedding("jinav3-bench/" + model, specific_model_path=folder)
        return lambda texts: np.stack(list(custom.embed(texts, batch_size=fastembed_batch)))
    from sentence_transformers import SentenceTransformer

    backend, file_name = ST_VARIANTS[name]
    kwargs = {"model_kwargs": {"file_name": file_name}} if file_name else {}
    st = SentenceTransformer(folder, backend=backend, device="cpu", **kwargs)
    return lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def main() -> None:
    if sys.argv[1] == "prepare":
        prepare(*sys.argv[2:4])
        return
    name, model, folder, texts_file, vectors_file, dim, fastembed_batch = sys.argv[1:8]
    serve(load(name, model, folder, int(dim), int(fastembed_batch)), texts_file, vectors_file)


if __name__ == "__main__":
    main()
