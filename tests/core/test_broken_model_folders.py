"""A broken or incomplete ONNX folder and a device this machine lacks: the real ``jinav3`` command in a fresh
interpreter ends with exit status 2 and one error line naming the file (or device) and the fix, never a traceback.
The folders are the tiny checkpoint's real export, broken the way downloads break: the data file missing or cut
short, the graph cut short, a graph with other inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def refused(*args: str) -> str:
    """The one error line of ``jinav3 ARGS`` (exit status 2, no traceback)."""
    done = subprocess.run([sys.executable, "-m", "jinav3.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"jinav3 {args[0]}: error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture
def broken(tiny_onnx_dir: Path, tmp_path: Path):
    """A copy of the tiny export to break; its files before the command ran."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_onnx_dir, folder)
    return folder


def files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


ENGINES = [("onnx", "float32"), ("onnx", "int8"), ("openvino", "float32"), ("openvino", "int8")]


def engine_args(engine: str, dtype: str) -> list[str]:
    if engine == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra is not installed")
    if dtype == "int8":
        pytest.importorskip("onnx", reason="the onnx-int8 extra is not installed")
    return ["--engine", engine, "--dtype", dtype]


@pytest.mark.parametrize(("engine", "dtype"), ENGINES)
def test_a_folder_without_its_data_file(broken, engine, dtype):
    data = broken / "onnx" / "model.onnx_data"
    data.unlink()
    before = files_of(broken)
    line = refused("embed", "x", "--model", str(broken), *engine_args(engine, dtype))
    assert f"{data} is missing" in line and "download" in line and "jinav3 export-onnx" in line
    assert files_of(broken) == before  # nothing written beside the model by the failed load


@pytest.mark.parametrize(("engine", "dtype"), ENGINES)
def test_a_data_file_cut_short(broken, engine, dtype):
    data = broken / "onnx" / "model.onnx_data"
    with data.open("r+b") as file:
        file.truncate(data.stat().st_size // 3)
    before = files_of(broken)
    line = refused("embed", "x", "--model", str(broken), *engine_args(engine, dtype))
    assert str(data) in line and "cut short" in line and "download" in line
    assert files_of(broken) == before


@pytest.mark.parametrize(("engine", "dtype"), [("onnx", "float32"), ("openvino", "float32"), ("onnx", "int8")])
def test_a_graph_cut_short(broken, engine, dtype):
    graph = broken / "onnx" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:300])
    line = refused("chunk", str(broken / "config.json"), "--model", str(broken), *engine_args(engine, dtype))
    assert str(graph) in line and "not a readable ONNX graph" in line and "jinav3 export-onnx" in line


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_a_graph_with_other_inputs(broken, engine):
    """A valid ONNX file that is no text encoder of this layout (an image model's input names)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = broken / "onnx" / "model.onnx"
    (broken / "onnx" / "model.onnx_data").unlink()
    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3])]
    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])]
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["pixel_values"], ["features"])],
                                                "image", inputs, outputs))
    onnx.save(model, str(graph))
    line = refused("embed", "x", "--model", str(broken), *engine_args(engine, "float32"))
    assert str(graph) in line and "['pixel_values']" in line and "input_ids" in line and "export-onnx" in line


def test_a_device_this_machine_lacks(tiny_checkpoint):
    """A device name torch knows but this machine cannot use: refused after torch is imported, before any weight
    is moved (Apple's MPS exists only on macOS)."""
    import torch

    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    line = refused("embed", "x", "--model", str(tiny_checkpoint), "--device", "mps")
    assert "'mps'" in line and "--device cpu" in line


def test_python_callers_get_the_same_model_load_error(tiny_checkpoint):
    import torch

    from jinav3 import Embedder, ModelLoadError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ModelLoadError, match="cuda:3") as caught:
        Embedder.local(str(tiny_checkpoint), device="cuda:3")
    assert "device='cpu'" in str(caught.value)
