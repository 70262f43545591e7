"""Build small random checkpoints in the published jina-embeddings-v3 layout (for tests and benchmarks).

The files match the hub repository's shapes and names: ``config.json`` with ``lora_adaptations`` and
``task_instructions``, ``model.safetensors`` with ``roberta.*`` keys, fused ``Wqkv`` and a LoRA bank for every
Linear and Embedding, and an XLM-R-style ``tokenizer.json`` (Unigram + Metaspace, ``<s>``=0 ``<pad>``=1
``</s>``=2 ``<unk>``=3) trained with the ``tokenizers`` library. ``full_size=True`` gives the real architecture.

Writing weights needs the ``local`` extra (torch, safetensors); they are imported only then, so this module (and
:func:`train_tokenizer`) also works on the light install. :func:`serve_command` runs the real ``jinav3 serve``
command in a child process on a free loopback port (it needs the ``server`` extra).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from tokenizers import Tokenizer, models

from jinav3.tasks import DEFAULT_INSTRUCTIONS, TASKS

if TYPE_CHECKING:
    import torch

CORPUS = [
    "Berlin is the capital and largest city of Germany, both by area and by population.",
    "Its more than 3.85 million inhabitants make it the European Union's most populous city.",
    "The city is also one of the states of Germany, and is the third smallest state in the country.",
    "Paris est la capitale de la France. Elle compte plus de deux millions d'habitants.",
    "Berlin ist die Hauptstadt Deutschlands. Die Stadt hat mehr als drei Millionen Einwohner.",
    "Madrid es la capital de España y su ciudad más poblada.",
    "東京は日本の首都です。人口は約千四百万人です。",
    "北京是中华人民共和国的首都。它有悠久的历史！",
    "Москва — столица России и крупнейший город страны.",
    "Represent the query for retrieving evidence documents: ",
    "Represent the document for retrieval: ",
    "What is the capital of Germany? How many people live in Paris? Which city is in Japan?",
    "Late chunking embeds the whole document once and pools token vectors per chunk.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]-",
]


def train_tokenizer(vocab_size: int = 600, corpus: list[str] | None = None) -> Tokenizer:
    """An XLM-R-like SentencePiece-Unigram tokenizer (``tokenizers.Tokenizer``)."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", max_piece_length=8
    )
    tokenizer.train_from_iterator(corpus or CORPUS, trainer)
    tokenizer.model = _in_a_fixed_order(tokenizer)
    tokenizer.add_special_tokens(["<mask>"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tokenizer


def _in_a_fixed_order(tokenizer: Tokenizer) -> models.Unigram:
    """The trained pieces with ids and scores that do not change from run to run. The trainer walks hash maps in a
    per-process order: scores differ in their last digits, and the characters it adds at the end get scores 1e-4
    apart in whatever order it met them, so pieces swapped ids and every tiny checkpoint (and every figure measured
    on one) differed between test sessions. Scores closer than 1e-3 are made equal (their group's highest, to 6
    places) and equal scores ordered by the piece; the four special tokens keep ids 0-3."""
    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    special, pieces = vocab[:4], sorted(vocab[4:], key=lambda entry: -entry[1])
    fixed: list[tuple[str, float]] = []
    for index, (piece, score) in enumerate(pieces):
        tied = index > 0 and pieces[index - 1][1] - score < 1e-3
        fixed.append((piece, fixed[-1][1] if tied else round(score, 6)))
    fixed.sort(key=lambda entry: (-entry[1], entry[0]))
    return models.Unigram([tuple(entry) for entry in special] + fixed, unk_id=3, byte_fallback=False)


def jina_v3_config(vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int) -> dict:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 8194,
        "position_embedding_type": "rotary",
        "rotary_emb_base": 20000.0,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "lora_adaptations": list(TASKS),
        "task_instructions": dict(DEFAULT_INSTRUCTIONS),
        "lora_rank": 4,
        "lora_alpha": 1,
        "lora_dropout_p": 0.0,
        "matryoshka_dimensions": [32, 64, 128, 256, 512, 768, 1024],
        "use_flash_attn": True,
        "torch_dtype": "bfloat16",
    }


def random_state_dict(
    config: dict, seed: int = 0, lora_std: float = 0.3, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Random weights with the original key names and shapes (``roberta.`` prefix, LoRA banks, pooler); fp32 unless
    ``dtype`` says otherwise."""
    from jinav3.runtime.extras import require_local

    require_local("writing checkpoint weights")
    import torch

    dtype = dtype or torch.float32
    gen = torch.Generator().manual_seed(seed)
    t, r = len(config["lora_adaptations"]), config["lora_rank"]
    h, ff, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    state: dict[str, torch.Tensor] = {}

    def randn(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * std).to(dtype)

    def linear(name: str, fan_out: int, fan_in: int) -> None:
        state[f"roberta.{name}.parametrizations.weight.original"] = randn(fan_out, fan_in, std=fan_in**-0.5)
        state[f"roberta.{name}.parametrizations.weight.0.lora_A"] = randn(t, r, fan_in, std=lora_std)
        state[f"roberta.{name}.parametrizations.weight.0.lora_B"] = randn(t, fan_out, r, std=lora_std)
        state[f"roberta.{name}.bias"] = randn(fan_out)

    def embedding(name: str, rows: int) -> None:
        state[f"roberta.{name}.parametrizations.weight.original"] = randn(rows, h, std=0.5)
        state[f"roberta.{name}.parametrizations.weight.0.lora_A"] = randn(t, rows, r, std=lora_std)
        state[f"roberta.{name}.parametrizations.weight.0.lora_B"] = randn(t, r, h, std=lora_std)

    def norm(name: str) -> None:
        state[f"roberta.{name}.weight"] = (1 + randn(h, std=0.1)).to(dtype)
        state[f"roberta.{name}.bias"] = randn(h, std=0.1)

    embedding("embeddings.word_embeddings", v)
    embedding("embeddings.token_type_embeddings", config["type_vocab_size"])
    norm("emb_ln")
    for i in range(config["num_hidden_layers"]):
        linear(f"encoder.layers.{i}.mixer.Wqkv", 3 * h, h)
        linear(f"encoder.layers.{i}.mixer.out_proj", h, h)
        norm(f"encoder.layers.{i}.norm1")
        linear(f"encoder.layers.{i}.mlp.fc1", ff, h)
        linear(f"encoder.layers.{i}.mlp.fc2", h, ff)
        norm(f"encoder.layers.{i}.norm2")
    linear("pooler.dense", h, h)
    return state


def build_checkpoint(
    folder: str | Path,
    *,
    hidden: int = 32,
    layers: int | None = None,
    heads: int = 4,
    intermediate: int = 64,
    vocab_size: int | None = None,
    tokenizer_vocab: int = 600,
    seed: int = 0,
    full_size: bool = False,
    dtype: torch.dtype | None = None,
    lora_std: float = 0.3,
) -> Path:
    """Write a random jina-embeddings-v3-layout checkpoint to ``folder`` and return the folder."""
    if full_size:  # the real architecture; ``layers`` may still be lowered for quick benchmark runs
        hidden, heads, intermediate, vocab_size = 1024, 16, 4096, 250002
        layers = layers or 24
    layers = layers or 2
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(tokenizer_vocab)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 8194, "bos_token": "<s>",
                    "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}),
        encoding="utf-8",
    )
    config = jina_v3_config(vocab_size or tokenizer.get_vocab_size(), hidden, layers, heads, intermediate)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = random_state_dict(config, seed, lora_std, dtype=dtype)
    from safetensors.torch import save_file

    save_file(state, str(folder / "model.safetensors"))
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_command(model: str | Path, *options: str, log: Path | None = None, ready_within: float = 120.0,
                  port: int | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``jinav3 serve --model model --device cpu *options`` in a child process on a free loopback port (or on
    ``port``, to restart a server on the same address), as ``(process, base_url)`` once ``/health`` answers. Its
    stdout and stderr go to ``log``, or to ``process.stdout`` (text) without one. A child that exits or is not
    ready within ``ready_within`` seconds raises ``RuntimeError`` with what it printed; one still running on the
    way out is terminated."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        output = stack.enter_context(log.open("w")) if log is not None else subprocess.PIPE
        process = subprocess.Popen(
            [sys.executable, "-m", "jinav3.cli", "serve", "--model", str(model), "--device", "cpu", "--port",
             str(port), *options], stdout=output, stderr=subprocess.STDOUT, text=True,
        )
        try:
            deadline = time.monotonic() + ready_within
            while True:
                try:
                    if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    printed = process.communicate()[0] if log is None else log.read_text()
                    raise RuntimeError(f"jinav3 serve did not start (exit status {process.returncode}):\n{printed}")
                time.sleep(0.1)
            yield process, base_url
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def same_vectors(got: object, expected: object) -> bool:
    """The batch-mate promise as one check: the same shape and the same float32 values, bit for bit.

    A row's vector does not depend on what it is batched with (unpadded batches, every precision), so a vector
    computed beside any traffic equals the one computed alone exactly. Vectors that crossed JSON are compared after
    rounding back to float32, which is exact for what ``jinav3 serve`` writes (float32 values as decimal floats).
    """
    import numpy as np

    a, b = np.asarray(got, dtype=np.float32), np.asarray(expected, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a, b)
