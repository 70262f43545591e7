"""int8 for the OpenVINO engine: the ONNX graph with every MatMul's constant weight stored as int8 (one scale per
output channel, symmetric) behind a DequantizeLinear. OpenVINO's CPU plugin reads that pattern as compressed
weights and quantises the activations on the fly per group of values (the engine's ``activation_group``), so the
products run on int8 kernels.

Why not the whole graph with fixed activation scales (ONNX Runtime's static QDQ, which OpenVINO also runs int8):
measured on all-MiniLM-L6-v2, one per-tensor scale cannot hold the LayerNorm outputs that feed each feed-forward
block (a few outlier channels): minimum cosine to fp32 0.982 over ``examples/corpus`` (the bound is 0.99); with the
feed-forward blocks left in float it reached 0.994 but ran slower than plain bf16. These int8 weights with
OpenVINO's per-group activation scales gave 0.999 on the same texts and ran at least as fast as bf16 (on 200
SciFact sentences, native-bf16 AVX-512 CPU, loaded machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def compress_weights(graph: Path, target: Path) -> Path:
    """Write ``graph`` to ``target`` with each MatMul's 2-D constant weight as int8 + DequantizeLinear; the
    tensors go to ``<name>.onnx_data`` beside it (graphs over 2 GB need external data), named after ``target`` up
    to ``.onnx``, so a graph written under a temporary name and renamed still finds them."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(graph))
    weights = {init.name: init for init in model.graph.initializer}
    dequantize = []
    for node in model.graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            continue
        name = f"{weight.name}_int8"
        if name not in weights:  # a weight shared by several MatMuls is converted once
            values = numpy_helper.to_array(weight).astype(np.float32)
            scale = np.abs(values).max(axis=0) / 127.0
            scale[scale == 0] = 1.0  # an all-zero column: any scale gives zeros back
            quantized = np.clip(np.rint(values / scale), -127, 127).astype(np.int8)
            weights[name] = numpy_helper.from_array(quantized, name)
            weights[f"{name}_scale"] = numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale")
            dequantize.append(helper.make_node("DequantizeLinear", [name, f"{name}_scale"], [f"{name}_dequantized"],
                                               name=f"{name}_DequantizeLinear", axis=1))
        node.input[1] = f"{name}_dequantized"
    nodes = dequantize + list(model.graph.node)  # dequantisation first: the graph stays topologically sorted
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    del model.graph.initializer[:]
    model.graph.initializer.extend(init for name, init in weights.items() if name in used)
    data = target.with_name(f"{target.name.split('.onnx')[0]}.onnx_data")
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save_model(model, str(target), save_as_external_data=True, location=data.name)
    data.chmod(graph.stat().st_mode & 0o777)  # readable by whoever may read the model (onnx writes it 0600)
    return target
