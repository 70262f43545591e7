"""Local backend: jina-embeddings-v3 (or any HF encoder) on torch, with token-budget batching.

Tokenisation uses the checkpoint's ``tokenizer.json`` through the ``tokenizers`` library (fast, with exact char
offsets for late chunking). Sequences are grouped by task — so every batch runs one task's merged weights and a
row's vector never depends on what it is batched with — then sorted by length and packed into batches of at most
``token_budget`` padded tokens; results come back in input order.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from jinav3 import hardware, late, openmp, packing, pooling_torch, quantization
from jinav3.batching import token_budget_batches
from jinav3.checkpoint import load_jina_v3, load_plain_encoder
from jinav3.chunking import Span
from jinav3.errors import InputTooLongError, InvalidInputError, NoTaskAdaptersWarning, PerformanceWarning
from jinav3.model_files import DEFAULT_MODEL, is_jina_v3_original, load_tokenizer, read_config, resolve_model_dir
from jinav3.models import display_name
from jinav3.preparation import DocumentPreparer, PreparedDocument
from jinav3.progress import progress_bar
from jinav3.settings import check_dtype
from jinav3.tasks import validate_task
from jinav3.usage import TokenUsage

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # canonical names
# Late-chunking documents are processed in groups of about this many tokens so memory stays bounded.
_LATE_GROUP_TOKENS = 65_536


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None: chosen by hardware (:func:`jinav3.hardware.auto_dtype`: bf16 on CUDA and on CPUs with native bf16, else
    fp32). An explicit choice is honoured, with a :class:`~jinav3.errors.PerformanceWarning` where it is emulated."""
    if dtype is None:
        return hardware.auto_dtype(device)
    chosen = dtype if isinstance(dtype, torch.dtype) else _DTYPES.get(check_dtype(dtype))
    if chosen is None:
        raise InvalidInputError(f"dtype {dtype!r} is not a torch dtype; int8 is handled by LocalBackend")
    hardware.warn_if_slow(chosen, device)
    return chosen


def pick_attention(device: torch.device) -> str:
    """SDPA everywhere (never materialises the n x n scores); FlashAttention-2 on CUDA when installed."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _pad_id(tokenizer: Any, config: dict) -> int:
    for token in ("<pad>", "[PAD]"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return int(config.get("pad_token_id") or 0)


class LocalBackend:
    """Runs the model in this process. Thread-safe: forward passes are serialised by a lock."""

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int = 8192,
        token_budget: int | None = None,
        max_batch: int = 256,
        attn_implementation: str | None = None,
        merge_lora: bool = True,
        unpadded: bool | None = None,
        device_pooling: bool | None = None,
    ) -> None:
        """``merge_lora`` keeps a copy of the adapted Linear weights (about 1.2 GB in fp32 for jina-v3) so a task's
        LoRA is merged once per task switch; ``False`` saves that memory and adds the low-rank term on every call.
        ``unpadded`` packs each batch's sequences into one row (:mod:`jinav3.packing`; default: on, unless an
        ``attn_implementation`` that cannot read sequence boundaries is named) and ``device_pooling`` pools
        late-chunking spans on the device (:mod:`jinav3.pooling_torch`; default: on for CUDA only)."""
        folder = resolve_model_dir(model)
        # int8 hook (jinav3.quantization): fp32 model, Linear layers swapped for int8 ones after loading; CPU only.
        self.int8 = quantization.is_int8(dtype)
        self.device = pick_device("cpu" if self.int8 and device is None else device)
        if self.int8 and self.device.type != "cpu":
            raise InvalidInputError(f"dtype='int8' runs on the CPU only, not on {self.device}; use bfloat16 there")
        self.dtype = pick_dtype("float32" if self.int8 else dtype, self.device)
        merge_lora = merge_lora and not self.int8  # int8 copies are built from merged weights, never merged in place
        # Unpadded batches (jinav3.packing) by default wherever the attention can read sequence boundaries: no FLOP
        # on padding, and a row's vector is bit-identical whatever it is batched with (padded attention is not, by
        # up to 1e-7 in fp32, 1e-3 in bf16 and 1e-2 in int8). Device pooling (jinav3.pooling_torch): CUDA only.
        if unpadded is None:
            unpadded = attn_implementation is None or attn_implementation in packing.PACKED_CAPABLE
        self.unpadded = bool(unpadded)
        self.device_pooling = self.device.type == "cuda" if device_pooling is None else bool(device_pooling)
        default_attention = packing.packed_attention(self.device) if self.unpadded else pick_attention(self.device)
        self.attn_implementation = attn_implementation or default_attention
        if self.unpadded:
            packing.check_packed_attention(self.attn_implementation)
        config = read_config(folder)
        if is_jina_v3_original(config):
            loaded = load_jina_v3(folder, config, self.dtype, self.device, self.attn_implementation, merge_lora)
        else:
            loaded = load_plain_encoder(folder, self.dtype, self.device, self.attn_implementation)
        if self.int8:
            quantization.quantize_model(loaded.module, loaded.selection)
            spinning = openmp.spin_warning(dtype, torch.get_num_threads())
            if spinning:
                warnings.warn(spinning, PerformanceWarning, stacklevel=2)
        self._module = loaded.module
        self._selection = loaded.selection
        self._stop_check = threading.local()  # see stoppable()
        _hook_layers(self._module, self._stop_check)
        self.tasks = loaded.tasks
        self.instructions = loaded.instructions
        self.full_dimensions = loaded.hidden_size
        self.model_name = str(model)
        self.tokenizer = load_tokenizer(folder, config)
        self.preparer = DocumentPreparer(self.tokenizer, self.instructions if self.tasks else {})
        self._pad_id = _pad_id(self.tokenizer, config)
        limit = loaded.max_positions
        self.max_length = min(max_length, limit) if limit else max_length
        self.token_budget = token_budget or (32_768 if self.device.type == "cuda" else 4_096)
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._rows = int(config.get("vocab_size") or 0)  # embedding rows (0: unknown); see _check_rows
        self._ignored_tasks: set[str] = set()  # tasks asked of a model without adapters, already reported

    # -- helpers -----------------------------------------------------------------------------------------
    def instruction(self, task: str | None) -> str:
        return self.preparer.instruction(task)

    def _task_id(self, task: str | None) -> int:
        validate_task(task)
        if task is not None and not self.tasks and task not in self._ignored_tasks:
            self._ignored_tasks.add(task)  # said once per task: embed_query on a plain encoder is not a mistake
            warnings.warn(f"{display_name(self.model_name)} has no task adapters, so task={task!r} is not applied: "
                          "its vectors are the model's plain ones, the same for every task (task adapters are a "
                          "jina-embeddings-v3 feature)", NoTaskAdaptersWarning, stacklevel=4)
        if task is None or not self.tasks:
            return -1
        if task not in self.tasks:
            raise InvalidInputError(f"task {task!r} has no adapter in this checkpoint (it has {self.tasks})")
        return self.tasks.index(task)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "model": self.model_name,
            "dtype": "int8" if self.int8 else str(self.dtype).removeprefix("torch."),
            "max_length": self.max_length,
        }

    def close(self) -> None:
        """Nothing to release; kept for the backend protocol."""

    @contextmanager
    def stoppable(self, should_stop: Callable[[], bool]) -> Iterator[None]:
        """Within this block, this thread's forward passes check ``should_stop()`` before every encoder layer and
        raise :class:`Abandoned` when it is true (a server stops work whose clients all left mid-pass)."""
        self._stop_check.function = should_stop
        try:
            yield
        finally:
            self._stop_check.function = None

    # -- forward -----------------------------------------------------------------------------------------
    def _batches(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool | None
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Yield (indices, hidden states (B, L, D), attention mask (B, L)) for token-budget batches of one task."""
        self._check_rows(sequences)
        lengths = [len(s) for s in sequences]
        batches: list[tuple[int, list[int]]] = []
        for task_id in dict.fromkeys(task_ids):  # one task per batch, tasks in order of first appearance
            members = [i for i, t in enumerate(task_ids) if t == task_id]
            for batch in token_budget_batches([lengths[i] for i in members], self.token_budget, self.max_batch):
                batches.append((task_id, [members[j] for j in batch]))
        for task_id, batch in progress_bar(show_progress, iterable=batches, desc="embedding", unit="batch"):
            if self.unpadded:  # GPU-path hook: no padding in any FLOP (jinav3.packing)
                with self._lock, torch.inference_mode():
                    hidden, mask = packing.forward_unpadded(
                        self._module, self._selection, [sequences[i] for i in batch], task_id, self.device)
                yield batch, hidden, mask
                continue
            longest = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), longest), self._pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.from_numpy(np.asarray(sequences[i], dtype=np.int64))
                mask[row, : lengths[i]] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            with self._lock, torch.inference_mode():
                if self._selection is not None:
                    self._selection.use(task_id)
                hidden = self._module(input_ids=ids, attention_mask=mask).last_hidden_state
            yield batch, hidden, mask

    def _check_rows(self, sequences: Sequence[np.ndarray]) -> None:
        """Refuse ids without a row in the embedding table: special tokens a tokenizer may hold beyond the table
        (EmbeddingGemma: one more than its rows), written literally in a text."""
        for index, ids in enumerate(sequences):
            if self._rows and len(ids) and int(np.max(ids)) >= self._rows:
                token_id = int(np.max(ids))
                raise InvalidInputError(
                    f"input {index} contains the token {self.tokenizer.id_to_token(token_id)!r} (id {token_id}), a "
                    f"special token of the tokenizer without a row in the model's embedding table ({self._rows} "
                    "rows); remove it from the text"
                )

    def encode_ids(self, texts: Sequence[str], task: str | None, *, truncate: bool) -> list[np.ndarray]:
        """Token ids of ``instruction + text`` for every text, truncated or rejected past ``max_length``."""
        prefix = self.instruction(task)
        encodings = self.tokenizer.encode_batch([prefix + t for t in texts])
        out: list[np.ndarray] = []
        for index, enc in enumerate(encodings):
            ids = np.asarray(enc.ids, dtype=np.int64)
            if len(ids) > self.max_length:
                if not truncate:
                    raise InputTooLongError(
                        f"text {index} has {len(ids)} tokens, more than max_length={self.max_length}; pass "
                        "truncate=True to cut it, or late-chunk it"
                    )
                ids = np.concatenate([ids[: self.max_length - 1], ids[-1:]])
            out.append(ids)
        return out

    def embed_ids(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool = False
    ) -> np.ndarray:
        """Mean-pooled raw vectors for already tokenised sequences (fp32 accumulation)."""
        result = np.empty((len(sequences), self.full_dimensions), dtype=np.float32)
        for batch, hidden, mask in self._batches(sequences, task_ids, show_progress):
            weights = mask.unsqueeze(-1).to(torch.float32)
            pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            result[batch] = pooled.cpu().numpy()
        return result

    def token_vectors(
        self, sequences: Sequence[np.ndarray], task_ids: Sequence[int], show_progress: bool = False
    ) -> list[np.ndarray]:
        """Per-token output vectors (fp32) of every sequence."""
        out: list[np.ndarray] = [np.empty(0)] * len(sequences)
        for batch, hidden, _ in self._batches(sequences, task_ids, show_progress):
            hidden = hidden.float().cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = hidden[row, : len(sequences[i])]
        return out

    # -- protocol ----------------------------------------------------------------------------------------
    def embed(
        self, texts: Sequence[str], task: str | None, *, truncate: bool = False, show_progress: bool | None = False,
        usage: TokenUsage | None = None,
    ) -> np.ndarray:
        task_id = self._task_id(task)
        sequences = self.encode_ids(texts, task, truncate=truncate)
        if usage is not None:
            usage.add(sum(len(s) for s in sequences))
        return self.embed_ids(sequences, [task_id] * len(sequences), show_progress)

    def tokenize_document(self, document: str, task: str | None) -> late.TokenizedDocument:
        return self.preparer.tokenize(document, task)

    def prepare(
        self, documents: Sequence[str], spans: Sequence[Sequence[Span]], task: str | None, include_special_tokens: bool
    ) -> list[PreparedDocument]:
        """Tokenise every document with its spans (the CPU half of late chunking)."""
        self._task_id(task)
        return [
            self.preparer.prepare(doc, task, spans=doc_spans, include_special_tokens=include_special_tokens)
            for doc, doc_spans in zip(documents, spans, strict=True)
        ]

    def late_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool | None = False,
        usage: TokenUsage | None = None,
    ) -> list[np.ndarray]:
        prepared = self.prepare(documents, spans, task, include_special_tokens)
        return self.late_chunk_prepared(prepared, window=window, overlap=overlap, show_progress=show_progress,
                                        usage=usage)

    def late_chunk_prepared(
        self,
        prepared: Sequence[PreparedDocument],
        *,
        window: int | None = None,
        overlap: int | None = None,
        show_progress: bool | None = False,
        usage: TokenUsage | None = None,
    ) -> list[np.ndarray]:
        """Raw contextual vectors of prepared documents. Windows run in document order, about
        ``_LATE_GROUP_TOKENS`` tokens at a time, and each window's token vectors are pooled as soon as it finishes,
        so memory is bounded by that group, not by the longest document. The tokens of every window fed to the
        model are added to ``usage``."""
        window = self.max_length if window is None else window
        if not 16 <= window <= self.max_length:
            raise InvalidInputError(f"window must be between 16 and max_length={self.max_length}, got {window}")
        if overlap is not None and overlap < 0:
            raise InvalidInputError(f"overlap must be at least 0 tokens, got {overlap}")
        plans = [self._window_plan(item.tokens, window, overlap) for item in prepared]
        results: list[np.ndarray] = [np.empty(0)] * len(prepared)
        streams: dict[int, late.PoolingStream] = {}
        total = sum(item.tokens.length for item in prepared)
        with progress_bar(show_progress, total=total, desc="late chunking", unit="tok") as bar:
            for group in _window_groups(prepared, plans):
                sequences = [late.window_sequences(prepared[d].tokens, [plans[d][k]])[0] for d, k in group]
                task_ids = [self._task_id(prepared[d].task) for d, _ in group]
                if usage is not None:
                    usage.add(sum(len(s) for s in sequences))
                pending: dict[int, Any] = {}
                fed = 0
                for batch, hidden, _ in self._batches(sequences, task_ids, False):
                    for row, i in enumerate(batch):
                        out = hidden[row, : len(sequences[i])]
                        pending[i] = out if self.device_pooling else out.float().cpu().numpy()
                    while fed in pending:  # windows are pooled in document order, each as soon as it can be
                        d, k = group[fed]
                        out = pending.pop(fed)
                        if d not in streams:
                            streams[d] = self._pooling_stream(prepared[d])
                        stream = streams[d]
                        for rows in late.kept_rows(prepared[d].tokens, plans[d], k, len(out)):
                            stream.feed(out[rows])
                            bar.update(rows.stop - rows.start)
                        if k == len(plans[d]) - 1:
                            results[d] = streams.pop(d).result()
                        fed += 1
        return results

    def _window_plan(self, doc: late.TokenizedDocument, window: int, overlap: int | None) -> list[late.Window]:
        content_window = window - len(doc.head) - len(doc.tail)
        if content_window < 8:
            raise InvalidInputError(f"window={window} leaves no room for the document after the instruction")
        ov = min(512, content_window // 4) if overlap is None else overlap
        return late.plan_windows(len(doc.content), content_window, ov)

    def _pooling_stream(self, item: PreparedDocument) -> late.PoolingStream:
        if self.device_pooling:  # GPU-path hook: token vectors stay on the device (jinav3.pooling_torch)
            return pooling_torch.TorchPoolingStream(item.tokens, item.pooling, self.full_dimensions, self.device)
        return late.PoolingStream(item.tokens, item.pooling, self.full_dimensions)

    async def aembed(self, texts: Sequence[str], task: str | None, *, truncate: bool = False,
                     usage: TokenUsage | None = None) -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts, task, truncate=truncate, usage=usage)

    async def alate_chunk(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[Span]],
        task: str | None,
        *,
        include_special_tokens: bool = True,
        window: int | None = None,
        overlap: int | None = None,
        usage: TokenUsage | None = None,
    ) -> list[np.ndarray]:
        return await asyncio.to_thread(
            self.late_chunk,
            documents,
            spans,
            task,
            include_special_tokens=include_special_tokens,
            window=window,
            overlap=overlap,
            usage=usage,
        )


def _window_groups(
    prepared: Sequence[PreparedDocument], plans: Sequence[Sequence[late.Window]]
) -> Iterator[list[tuple[int, int]]]:
    """``(document, window)`` pairs in document order, in groups of about ``_LATE_GROUP_TOKENS`` tokens (at least
    one window each): one group's windows share batches, and only one group's token vectors exist at a time."""
    group: list[tuple[int, int]] = []
    tokens = 0
    for d, plan in enumerate(plans):
        extra = len(prepared[d].tokens.head) + len(prepared[d].tokens.tail)
        for k, w in enumerate(plan):
            group.append((d, k))
            tokens += w.end - w.start + extra
            if tokens >= _LATE_GROUP_TOKENS:
                yield group
                group, tokens = [], 0
    if group:
        yield group


class Abandoned(Exception):
    """A forward pass stopped between layers because nobody waits for its result (:meth:`LocalBackend.stoppable`)."""


def _hook_layers(module: torch.nn.Module, stop_check: threading.local) -> None:
    """Before each layer of the module's longest ``ModuleList`` (the encoder's layers), raise :class:`Abandoned`
    when this thread's stop check says so; nothing is checked outside :meth:`LocalBackend.stoppable`."""
    lists = [m for m in module.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        return

    def check(_module: torch.nn.Module, _args: Any) -> None:
        function = getattr(stop_check, "function", None)
        if function is not None and function():
            raise Abandoned("every caller of this forward pass has gone")

    for layer in max(lists, key=len):
        layer.register_forward_pre_hook(check)
