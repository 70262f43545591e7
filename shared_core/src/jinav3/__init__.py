"""jinav3: jina-embeddings-v3 with task adapters, late chunking and Matryoshka dimensions, local or via the API."""

from jinav3.embedder import Chunk, Embedder, check_texts
from jinav3.errors import (
    BackendError,
    BrokenSealError,
    ChunkAlignmentError,
    InputTooLongError,
    InvalidInputError,
    JinaV3Error,
    LateChunkingRequiredError,
    ModelLoadError,
    NoTaskAdaptersWarning,
    PerformanceWarning,
)
from jinav3.late_chunking.chunking import (
    Chunker,
    ParagraphChunker,
    SentenceChunker,
    Span,
    TokenChunker,
    spans_from_texts,
)
from jinav3.late_chunking.preparation import DocumentPreparer, PreparedDocument
from jinav3.late_chunking.seal import SEAL_KEY, Seal, check_seal, seal_string
from jinav3.matryoshka import TRAINED_DIMENSIONS, truncate_normalise
from jinav3.tasks import TASKS, RoleTasks

__version__ = "0.1.0"

__all__ = [
    "SEAL_KEY",
    "TASKS",
    "TRAINED_DIMENSIONS",
    "BackendError",
    "BrokenSealError",
    "Chunk",
    "ChunkAlignmentError",
    "Chunker",
    "DocumentPreparer",
    "Embedder",
    "InputTooLongError",
    "InvalidInputError",
    "JinaV3Error",
    "LateChunkingRequiredError",
    "ModelLoadError",
    "NoTaskAdaptersWarning",
    "ParagraphChunker",
    "PerformanceWarning",
    "PreparedDocument",
    "RoleTasks",
    "Seal",
    "SentenceChunker",
    "Span",
    "TokenChunker",
    "check_seal",
    "check_texts",
    "seal_string",
    "spans_from_texts",
    "truncate_normalise",
]
