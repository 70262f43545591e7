"""jinav3: jina-embeddings-v3 with task adapters, late chunking and Matryoshka dimensions, local or via the API."""

from jinav3.embedder import Chunk, Embedder, check_texts
from jinav3.errors import (
    BackendError,
    ChunkAlignmentError,
    InputTooLongError,
    InvalidInputError,
    JinaV3Error,
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
from jinav3.matryoshka import TRAINED_DIMENSIONS, truncate_normalise
from jinav3.tasks import TASKS, RoleTasks

__version__ = "0.1.0"

__all__ = [
    "TASKS",
    "TRAINED_DIMENSIONS",
    "BackendError",
    "Chunk",
    "ChunkAlignmentError",
    "Chunker",
    "DocumentPreparer",
    "Embedder",
    "InputTooLongError",
    "InvalidInputError",
    "JinaV3Error",
    "ModelLoadError",
    "NoTaskAdaptersWarning",
    "ParagraphChunker",
    "PerformanceWarning",
    "PreparedDocument",
    "RoleTasks",
    "SentenceChunker",
    "Span",
    "TokenChunker",
    "check_texts",
    "spans_from_texts",
    "truncate_normalise",
]
