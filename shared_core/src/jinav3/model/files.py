"""Find a model folder and read its config and tokenizer — without torch.

Everything here runs on the light install (``tokenizers`` + ``huggingface_hub`` only when a hub id is given), so a
tokenising stage (a Ray CPU worker, a client that counts tokens) never imports the model code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jinav3.errors import ModelLoadError
from jinav3.runtime.extras import FROM_CLONE, LOCAL_INSTALL
from jinav3.tasks import DEFAULT_INSTRUCTIONS

DEFAULT_MODEL = "jinaai/jina-embeddings-v3"
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
# A tokenizer with fewer entries than this is a broken or missing tokenizer file (transformers silently builds a
# 5-entry XLM-R tokenizer, special tokens only, when sentencepiece.bpe.model is absent).
_MIN_VOCAB = 100
#: Ordinary text in several scripts: every id a tokenizer gives it must have a row in the model's embedding table.
#: Counting entries instead would refuse tokenizers with extra special tokens the text never produces
#: (EmbeddingGemma: 262,145 tokenizer entries for 262,144 rows).
TOKENIZER_PROBE = (
    "The quick brown fox jumps over the lazy dog, e.g. at 3.14 p.m. on 12/05/2024! "
    "Berlin ist die Hauptstadt Deutschlands. Paris est la capitale de la France. ¿Dónde está Málaga? "
    "Москва — столица России. 東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다. "
    "القاهرة عاصمة مصر. नई दिल्ली भारत की राजधानी है। Αθήνα. ‘Quotes’ — “dashes” … 0123456789 #@%&*()[]{}<>/\\|~"
)

def resolve_model_dir(model: str | os.PathLike[str], patterns: list[str] | None = None) -> Path:
    """A local folder as is; otherwise a hub repo id fetched (or read from cache) by ``huggingface_hub``: the
    files matching ``patterns`` (default: config, tokenizer and safetensors weights).

    ``HF_HUB_OFFLINE=1`` and the usual cache variables are honoured by ``snapshot_download`` itself.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(model).startswith((".", "/", "~")):
        raise ModelLoadError(f"model folder {str(model)!r} does not exist or is not a folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - the light install may lack it
        raise ModelLoadError(
            f"{str(model)!r} is not a local folder and huggingface_hub is not installed to fetch it; "
            f"install the local extra ({LOCAL_INSTALL}, {FROM_CLONE}) or pass a folder"
        ) from None
    try:
        return Path(snapshot_download(str(model), allow_patterns=patterns or _HUB_FILES))
    except Exception as exc:  # the hub raises many types (offline, 404, gated, network)
        from jinav3.model.choice import offline_advice

        raise ModelLoadError(
            f"could not load {str(model)!r} from the Hugging Face hub or its cache ({type(exc).__name__}: {exc}). "
            f"{offline_advice(str(model))}"
        ) from exc


def read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no config.json; is it a Hugging Face model folder?") from None


def is_jina_v3_original(config: dict[str, Any]) -> bool:
    """The published jina-embeddings-v3 layout: LoRA task banks and rotary positions."""
    return bool(config.get("lora_adaptations")) and config.get("position_embedding_type") == "rotary"


def encoder_max_positions(folder: Path, config: dict[str, Any]) -> int | None:
    """Usable sequence length of a plain encoder: its learned positions (None for relative or rotary ones), or
    less where sentence-transformers says it was trained shorter."""
    positions = config.get("max_position_embeddings")
    if config.get("position_embedding_type", "absolute") != "absolute":
        positions = None
    elif positions and config.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # RoBERTa-style position ids start after the padding index
    st_config = folder / "sentence_bert_config.json"  # sentence-transformers models say how long they were trained
    if st_config.exists():
        trained = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if trained and (positions is None or trained < positions):
            positions = int(trained)
    return positions


def task_instructions(config: dict[str, Any]) -> dict[str, str]:
    """Instructions per task for a jina-v3 checkpoint (its own ``task_instructions`` win); none for others."""
    if not is_jina_v3_original(config):
        return {}
    return {**DEFAULT_INSTRUCTIONS, **(config.get("task_instructions") or {})}


def load_tokenizer(folder: Path, config: dict[str, Any] | None = None) -> Any:
    """The folder's fast tokenizer as a ``tokenizers.Tokenizer`` (exact char offsets), or ``ModelLoadError``.

    jina-embeddings-v3 needs its ``tokenizer.json``. Other encoders may build one from their vocabulary files
    through transformers; a result far smaller than the model's vocabulary means those files are missing.
    """
    from tokenizers import Tokenizer

    config = read_config(folder) if config is None else config
    path = folder / "tokenizer.json"
    if path.exists():
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
            raise ModelLoadError(f"{path} is not a valid tokenizer file: {exc}") from exc
    elif is_jina_v3_original(config):
        raise ModelLoadError(f"{folder} has no tokenizer.json; jina-embeddings-v3 needs it (copy it from the model)")
    else:
        tokenizer = _tokenizer_from_vocabulary_files(folder)
    check_tokenizer_fits(tokenizer, int(config.get("vocab_size") or 0), folder)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def check_tokenizer_fits(tokenizer: Any, rows: int, folder: Path) -> None:
    """Refuse a tokenizer that cannot serve a model with ``rows`` embedding rows (0: unknown): one that is
    near-empty (its vocabulary files are missing), or one that gives ordinary text ids beyond the table (it belongs
    to another model). Special tokens beyond the table that ordinary text never produces are fine."""
    entries = tokenizer.get_vocab_size()
    if entries < _MIN_VOCAB:
        raise ModelLoadError(
            f"the tokenizer in {folder} has only {entries} entries (the model has "
            f"{rows or 'an unknown number of'} embedding rows); its tokenizer files (tokenizer.json, or "
            "sentencepiece.bpe.model / vocab.txt) are missing or broken"
        )
    if not rows:
        return
    ids = tokenizer.encode(TOKENIZER_PROBE).ids
    beyond = sorted({i for i in ids if i >= rows})
    if beyond:
        tokens = [tokenizer.id_to_token(i) for i in beyond[:3]]
        raise ModelLoadError(
            f"the tokenizer in {folder} gives ordinary text token ids up to {max(beyond)} (e.g. {tokens}), but the "
            f"model's embedding table has {rows} rows (config.json vocab_size) for a tokenizer of {entries} "
            "entries; the tokenizer files belong to another model"
        )


def _tokenizer_from_vocabulary_files(folder: Path) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover - the light install has no transformers
        raise ModelLoadError(
            f"{folder} has no tokenizer.json; building one from vocabulary files needs transformers "
            f"({LOCAL_INSTALL}, {FROM_CLONE})"
        ) from None
    try:
        hf = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder} has no usable tokenizer files ({exc})") from exc
    if not hasattr(hf, "backend_tokenizer"):
        raise ModelLoadError(f"{folder} has no fast tokenizer (tokenizer.json); late chunking needs offsets")
    return hf.backend_tokenizer
