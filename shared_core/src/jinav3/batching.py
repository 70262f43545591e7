"""Token-budget batching: sort by length, fill each batch up to a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """Group indices so that ``len(batch) * longest <= max_tokens`` (a single longer sequence gets its own batch).

    Sorting longest-first keeps neighbours of similar length together, so padding stays small and the first
    batch shows the peak memory at once.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, lengths[i]) if current else lengths[i]
        if current and ((len(current) + 1) * longest_if_added > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches
