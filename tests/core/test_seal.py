"""Seals bind a late-chunked vector to its chunk text, offsets, document, vector and space; any change is named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jinav3 import SEAL_KEY, BrokenSealError, Seal, check_seal, seal_string

documents = st.text(min_size=1, max_size=200)


@st.composite
def sealed(draw: st.DrawFn) -> tuple[str, int, int, np.ndarray, str]:
    document = draw(documents)
    start = draw(st.integers(0, len(document) - 1))
    end = draw(st.integers(start + 1, len(document)))
    vector = np.asarray(draw(st.lists(st.floats(-1, 1, width=32), min_size=32, max_size=32)), dtype=np.float32)
    assume(np.linalg.norm(vector) > 0.1)
    return document, start, end, vector, seal_string(space="m@4", document=document, start=start, end=end,
                                                     text=document[start:end], vector=vector, source="doc-1")


@given(sealed())
def test_a_seal_holds_for_its_own_chunk_through_float_round_trips(case: tuple) -> None:
    document, start, end, vector, seal = case
    as_stored = [float(v) for v in vector]  # a store hands back Python floats of float32 values
    found = check_seal(seal, what="chunk", fix="", text=document[start:end], vector=as_stored, space="m@4",
                       start=start, end=end, document=document, source="doc-1")
    assert (found.start, found.end) == (start, end)
    assert Seal.decode(found.encode()) == found


@given(sealed(), st.data())
def test_every_change_is_refused_and_named(case: tuple, data: st.DataObject) -> None:
    document, start, end, vector, seal = case
    change = data.draw(st.sampled_from(["text", "vector", "offsets", "space", "document", "source"]))
    kwargs = {"text": document[start:end], "vector": vector, "space": "m@4", "start": start, "end": end,
              "document": document, "source": "doc-1"}
    if change == "text":
        kwargs["text"] = document[start:end] + "x"
    elif change == "vector":  # turn it by at least atan(0.5 / sqrt(32)), about 5 degrees
        axis = np.zeros_like(vector)
        axis[int(np.argmin(np.abs(vector)))] = 1
        across = axis - (axis @ vector) * vector / (vector @ vector)
        kwargs["vector"] = vector + 0.5 * across / np.linalg.norm(across) * np.linalg.norm(vector)
    elif change == "offsets":
        kwargs["end"] = end + 1
    elif change == "space":
        kwargs["space"] = "m@8"
    elif change == "document":
        kwargs["document"] = document + "!"
    else:
        kwargs["source"] = "doc-2"
    words = {"text": "text was changed", "vector": "vector is not", "offsets": "offsets", "space": "vector space",
             "document": "document's text changed", "source": "for document 'doc-1'"}
    with pytest.raises(BrokenSealError, match=words[change]):
        check_seal(seal, what="chunk", fix="do X", **kwargs)


@pytest.mark.parametrize("value", [None, "", "[1]", '[2,"s","d",0,1,"t","v"]', '[1,"s","d",0,1,"t","v","x","y"]',
                                   '[1,"s","d",5,1,"t","v"]', 7])
def test_an_unreadable_seal_is_refused(value: object) -> None:
    with pytest.raises(BrokenSealError, match=SEAL_KEY):
        Seal.decode(value)


@given(st.lists(st.floats(-1, 1, width=32), min_size=8, max_size=1024).filter(lambda v: np.linalg.norm(v) > 0.1))
def test_a_store_that_normalises_again_or_halves_precision_keeps_the_seal(values: list[float]) -> None:
    vector = np.asarray(values, dtype=np.float32)
    seal = Seal.of(space="s", document="ab", start=0, end=1, text="a", vector=vector)
    unit = (vector / np.linalg.norm(vector)).astype(np.float32)
    for stored in (unit, unit.astype(np.float16), [float(v) for v in vector]):
        assert not seal.mismatches(vector=stored)
    assert seal.mismatches(vector=vector[:-1])  # another width


def test_a_seal_must_describe_its_own_text() -> None:
    with pytest.raises(ValueError, match="is not document"):
        Seal.of(space="s", document="abc", start=0, end=2, text="bc", vector=[1.0])
