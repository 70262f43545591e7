"""int8 for the OpenVINO engine: the ONNX graph with QuantizeLinear/DequantizeLinear pairs around its MatMuls
(ONNX Runtime's static QDQ quantisation), which OpenVINO reads as FakeQuantize and runs with int8 kernels.

Static, unlike :mod:`jinav3.model.onnx_int8` (dynamic: ONNX Runtime measures each call's activation range, which
OpenVINO cannot run fast): activation ranges are measured once, on :data:`CALIBRATION_TEXTS` tokenised by the
model's own tokenizer under every task adapter. Weights: int8 per output channel, symmetric; activations: uint8
per tensor. The feed-forward block stays in float: its down projection for the reason given in
:mod:`jinav3.model.onnx_int8` (heavy-tailed GELU outputs behind one scale), and — unlike there — its up projection,
whose input (a LayerNorm output with a few outlier channels) a fixed per-tensor scale cannot hold. Measured on
all-MiniLM-L6-v2 over ``examples/corpus``, minimum cosine to fp32: 0.982 quantising both projections' neighbours
but the down projection, 0.994 with the up projection in float too (the bound is 0.99); excluding the Q/K/V, the
attention output or a whole layer instead left it below 0.989.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinav3.model.onnx_int8 import down_projections

#: The graph's name beside ``model.onnx``.
QDQ_NAME = "model_qdq.onnx"

#: Short and long sentences in several languages and scripts, with numbers, code and symbols: enough to show the
#: quantiser the activation ranges of ordinary text (written for this project).
CALIBRATION_TEXTS = (
    "The river floods every spring, so the village keeps its boats on the hill.",
    "How many bones are there in an adult human hand?",
    "Mitochondria convert nutrients into ATP through oxidative phosphorylation in the inner membrane.",
    "A 3.5 mm jack fits most headphones sold before 2018.",
    "Die Bibliothek öffnet morgen um neun Uhr, aber der Lesesaal bleibt bis Mittag geschlossen.",
    "Le boulanger a vendu toutes ses baguettes avant sept heures du matin.",
    "El tren de medianoche llegó a Sevilla con dos horas de retraso por la niebla.",
    "Il gatto dorme sul davanzale mentre piove sulla città.",
    "O projeto foi aprovado pela câmara municipal depois de três anos de discussão.",
    "Студенты сдают экзамен по физике в конце семестра.",
    "東京の地下鉄は朝のラッシュ時にとても混雑します。",
    "这家餐厅的面条是用手工拉制的，味道很好。",
    "서울의 가을 하늘은 맑고 높다.",
    "القهوة العربية تقدم عادة مع التمر في المناسبات.",
    "בירושלים יש שווקים עתיקים ורחובות צרים.",
    "भारत में मानसून जून के महीने में आता है।",
    "Kahve fincanı masanın kenarında duruyordu.",
    "Ο δάσκαλος εξήγησε το θεώρημα του Πυθαγόρα στην τάξη.",
    "def mean(xs): return sum(xs) / len(xs)  # average of a list",
    "SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 10;",
    "Error 404: the page https://example.org/docs/v2 was not found.",
    "🌧️ Rain again today... 😒 #weather",
    "Q3 revenue rose 12% to $4.2bn while operating costs fell 3%.",
    "Patients receiving 50 mg/day showed no significant change in blood pressure (p = 0.41).",
    "Photosynthesis",
    "yes",
    "Summary: the committee reviewed the budget, discussed the new library wing, postponed the vote on parking fees, "
    "and agreed to meet again in March after the public consultation closes and the engineers report on the roof.",
    "In 1969 the first humans walked on the Moon; the mission returned samples of lunar rock and dust, which are still "
    "studied today for clues about the early Solar System and the origin of the Earth-Moon pair.",
)


#: Ops of a GELU, exported whole or as its erf form.
_GELU = {"Gelu", "FastGelu", "BiasGelu", "Erf"}


def up_projections(model: Any, reach: int = 6) -> list[str]:
    """Names of the MatMuls reading what a feed-forward up projection reads — a MatMul with a constant weight whose
    output meets a GELU within ``reach`` nodes — that projection and its LoRA path."""
    constants = {init.name for init in model.graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def feeds_gelu(node: Any, steps: int) -> bool:
        following = [n for out in node.output for n in readers.get(out, [])]
        return any(n.op_type in _GELU or (steps > 1 and feeds_gelu(n, steps - 1)) for n in following)

    matmuls = [node for node in model.graph.node if node.op_type == "MatMul"]
    inputs = {node.input[0] for node in matmuls if node.input[1] in constants and feeds_gelu(node, reach)}
    return [node.name for node in matmuls if node.input[0] in inputs]


class _Feeds:
    """ONNX Runtime's calibration reader over prepared feeds."""

    def __init__(self, feeds: Sequence[dict[str, Any]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def feed_forward(model: Any) -> list[str]:
    """The MatMuls left in float: each feed-forward block's up and down projections with their LoRA paths."""
    return up_projections(model) + down_projections(model)


def quantize_qdq(graph: Path, target: Path, feeds: Sequence[dict[str, Any]]) -> Path:
    """Write the QDQ int8 version of ``graph`` to ``target``, with activation ranges from running ``feeds``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        graph,
        target,
        _Feeds(feeds),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=feed_forward(onnx.load(str(graph), load_external_data=False)),
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"MatMulConstBOnly": False, "WeightSymmetric": True},  # attention's products too
    )
    return target
