"""Exception types of jinav3: one family, messages that say what to do next."""

from __future__ import annotations


class JinaV3Error(Exception):
    """Base class of every error raised by jinav3."""


class InvalidInputError(JinaV3Error, ValueError):
    """A caller passed something jinav3 cannot use (unknown task, bad dimensions, empty text...)."""


class InputTooLongError(InvalidInputError):
    """A text is longer than the model's context and truncation was not allowed."""


class ChunkAlignmentError(InvalidInputError):
    """A chunk span could not be mapped onto the document's tokens."""


class BrokenSealError(InvalidInputError):
    """A late-chunked vector met again no longer matches its seal: its text, offsets, vector, document or vector
    space changed since it was late-chunked (see :mod:`jinav3.late_chunking.seal`)."""


class LateChunkingRequiredError(InvalidInputError):
    """A strict late-chunking embedder was asked for a plain passage vector of a text that carries no seal."""


class ModelLoadError(JinaV3Error, OSError):
    """A checkpoint could not be found or does not have the expected layout."""


class BackendError(JinaV3Error, RuntimeError):
    """The backend failed to produce embeddings (for example the HTTP API answered with an error)."""


class PerformanceWarning(UserWarning):
    """A setting works but is known to be slow on this machine (for example bf16 on a CPU that emulates it)."""


class NoTaskAdaptersWarning(UserWarning):
    """A task was asked of a model without task adapters (a plain encoder such as all-MiniLM-L6-v2): its vectors are
    the model's plain ones, the same for every task. Shown once per model and task."""
