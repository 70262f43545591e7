"""Why an ONNX folder did not load, in one line that names the file and the fix.

ONNX Runtime and OpenVINO report a broken download in their own words (a protobuf parse failure, an external data
offset out of bounds, "invalid usage of method for externally stored data") and as multi-line native tracebacks.
The likeliest broken download of the official repository is a folder without ``onnx/model.onnx_data`` (the graph
keeps its weights there), or with a data file cut short; the engines turn any load failure into the
:class:`ModelLoadError` made here, after looking at the files themselves. Nothing here imports an engine.
"""

from __future__ import annotations

from pathlib import Path

from jinav3.errors import ModelLoadError

#: Where the official layout keeps a graph's weights: beside it, its name plus this suffix (model.onnx_data).
DATA_SUFFIX = "_data"
_PARSE_WORDS = ("protobuf", "parse", "parsing", "can't be parsed", "invalid_graph", "invalid model")


def data_file(graph: Path) -> Path:
    """The external weights file of ``graph`` in the official layout."""
    return graph.with_name(graph.name + DATA_SUFFIX)


def _refetch(graph: Path) -> str:
    folder = graph.parent.parent if graph.parent.name == "onnx" else graph.parent
    return (f"download the model's onnx/ folder again (model.onnx with model.onnx_data), or write {folder} anew "
            "with `jinav3 export-onnx CHECKPOINT OUT`")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def graph_load_error(graph: Path, exc: BaseException) -> ModelLoadError:
    """A one-line :class:`ModelLoadError` for ``exc``, raised by an engine loading ``graph``: the missing or damaged
    file and how to replace it."""
    data = data_file(graph)
    text = str(exc).lower()
    refers_to_data = "external" in text or data.name.lower() in text
    if refers_to_data and not data.exists():
        return ModelLoadError(f"{data} is missing: {graph.name} keeps its weights in it; {_refetch(graph)}")
    if refers_to_data:
        return ModelLoadError(f"{data} ({data.stat().st_size:,} bytes) is cut short or does not belong to "
                              f"{graph.name}: the graph's weights could not be read from it; {_refetch(graph)}")
    if any(word in text for word in _PARSE_WORDS):
        return ModelLoadError(f"{graph} ({graph.stat().st_size:,} bytes) is not a readable ONNX graph (damaged or "
                              f"cut short); {_refetch(graph)}")
    return ModelLoadError(f"{graph} could not be loaded ({type(exc).__name__}: {_first_line(exc)}); "
                          f"{_refetch(graph)}")


#: Above this size a graph is not searched for the name of its data file (a graph with its weights inside).
_SCAN_LIMIT = 256 * 1024 * 1024


def check_graph_files(graph: Path) -> None:
    """The quick checks before an engine reads ``graph``: it is not empty, and the data file its initializers name
    (the location is stored verbatim in the graph) is there. Quantising a graph on first load imports heavy
    packages and reads the whole graph before it finds out."""
    size = graph.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{graph} is empty; {_refetch(graph)}")
    data = data_file(graph)
    if not data.exists() and size <= _SCAN_LIMIT and data.name.encode() in graph.read_bytes():
        raise ModelLoadError(f"{data} is missing: {graph.name} keeps its weights in it; {_refetch(graph)}")


def check_external_data(graph: Path) -> None:
    """With the onnx package (which writing an int8 graph needs anyway): the graph parses, and every weight it keeps
    outside lies inside its data file. Quantising first would take seconds before failing on the same files."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(graph), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise graph_load_error(graph, RuntimeError(f"protobuf parsing failed: {exc}")) from exc
    needed: dict[str, int] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        end = int(entries.get("offset", 0)) + int(entries.get("length", 0))
        location = entries.get("location", "")
        needed[location] = max(needed.get(location, 0), end)
    for location, end in needed.items():
        data = graph.parent / location
        if not data.is_file():
            raise ModelLoadError(f"{data} is missing: {graph.name} keeps its weights in it; {_refetch(graph)}")
        if data.stat().st_size < end:
            raise ModelLoadError(f"{data} ({data.stat().st_size:,} bytes) is cut short: {graph.name} reads its "
                                 f"weights up to byte {end:,}; {_refetch(graph)}")


def missing_inputs_error(graph: Path, missing: set[str], found: set[str]) -> ModelLoadError:
    """The graph loads but is not a text encoder in the official layout (inputs ``input_ids``, ``attention_mask``
    and, with task adapters, ``task_id``)."""
    return ModelLoadError(f"{graph} has the inputs {sorted(found)}, not {sorted(missing)} of the jina-embeddings-v3 "
                          "ONNX layout; it is not a text-embedding export of this kind: write one with "
                          "`jinav3 export-onnx CHECKPOINT OUT` and load OUT")
