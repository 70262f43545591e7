"""Token-budget batching: sort by length, fill each batch up to a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_batch: int = 256, max_padding: float = 0.1
) -> list[list[int]]:
    """Group indices so that ``len(batch) * longest <= max_tokens`` (a single longer sequence gets its own batch).

    Sorting longest-first keeps neighbours of similar length together and shows the peak memory at once; a
    sequence shorter than ``(1 - max_padding) * longest`` starts a new batch, so padding stays under that share
    (small batches cost little: a GEMM over a few hundred tokens is already efficient).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, lengths[i]) if current else lengths[i]
        too_short = lengths[i] < (1 - max_padding) * longest
        if current and (too_short or (len(current) + 1) * longest_if_added > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches
