"""A folder of embedded vectors keyed by everything that determines them, so reruns skip the model.

The harness stores full-width, un-normalised vectors: every Matryoshka size and output encoding is derived from
them afterwards (truncate, then normalise, then encode), so asking for more dimensions never re-embeds. The key
is a hash of the embedder's ``describe()``, the setting, the chunker, the macro windows, and hashes of the exact
texts and spans; a changed corpus, chunker or model therefore never reads stale vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped whenever the meaning of a stored array changes (for example the late-chunking pooling rule).
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$JINAV3_CACHE/eval``, else ``$XDG_CACHE_HOME/jinav3/eval``, else ``~/.cache/jinav3/eval``."""
    if os.environ.get("JINAV3_CACHE"):
        return Path(os.environ["JINAV3_CACHE"]) / "eval"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "jinav3" / "eval"


def content_hash(items: Iterable[Any]) -> str:
    """A sha256 over a sequence of JSON-able items (texts, ids, spans), order included."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


class VectorCache:
    """``.npy`` arrays with a JSON sidecar (the key's parts and facts such as the embedding time) per entry.

    ``folder=None`` disables caching: nothing is read or written.
    """

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        canonical = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]

    def load(self, parts: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The stored array and its facts, or None when absent (or unreadable: it is then recomputed)."""
        if self.folder is None:
            return None
        stem = self.folder / self.key(parts)
        try:
            facts = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
            array = np.load(stem.with_suffix(".npy"), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return array, facts.get("facts", {})

    def save(self, parts: Mapping[str, Any], array: np.ndarray, facts: Mapping[str, Any]) -> None:
        """Write atomically (temporary file, then rename), array first, so a reader never sees half an entry."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self.folder / self.key(parts)
        for suffix, write in (
            (".npy", lambda handle: np.save(handle, np.ascontiguousarray(array), allow_pickle=False)),
            (".json", lambda handle: handle.write(
                json.dumps({"key": dict(parts), "facts": dict(facts)}, indent=1, default=str).encode("utf-8"))),
        ):
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=suffix + ".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    write(handle)
                os.replace(tmp, stem.with_suffix(suffix))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
