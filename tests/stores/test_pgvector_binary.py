"""PostgreSQL + pgvector: late-chunked vectors from each framework's splitter stored as ``bit`` (HNSW on Hamming
distance) plus ``halfvec``/``vector``; the bits are the core's, the rescored hits are the float ranking of the
Hamming candidates, and a table made for another width or type is refused naming both."""

from __future__ import annotations

import numpy as np
import pytest

from jinav3 import Embedder, InvalidInputError
from jinav3.compact import binary_codes, hamming_distances

from .conftest import DIMS

pytest.importorskip("psycopg")
from jinav3.compact.pgvector import PgvectorBinaryTable


def _table(pg, name: str, width: int = DIMS, rescore_type: str = "halfvec") -> PgvectorBinaryTable:
    pg.execute(f"DROP TABLE IF EXISTS {name}")
    return PgvectorBinaryTable(pg, name, width, rescore_type)


@pytest.mark.parametrize("rescore_type", ["halfvec", "vector"])
def test_bits_are_the_cores_and_rescoring_is_the_float_ranking_of_the_candidates(
        pg, late_chunks, tiny_checkpoint, rescore_type):
    framework, texts, vectors = late_chunks
    table = _table(pg, f"chunks_{framework}_{rescore_type}", rescore_type=rescore_type)
    ids = [f"c{i}" for i in range(len(texts))]
    table.add(ids, texts, vectors, [{"chunk": i} for i in range(len(texts))])
    np.testing.assert_array_equal(table.stored_bits(ids), binary_codes(vectors))
    if rescore_type == "vector":  # pgvector's own quantizer agrees (on float32; half precision may round to 0)
        same = pg.execute(f"SELECT bool_and(binary_quantize(embedding) = bits) FROM {table.table}").fetchone()
        assert same == (True,)

    query = Embedder.local(str(tiny_checkpoint), device="cpu").embed(["Which wall fell?"], "retrieval.query", DIMS)
    distances = hamming_distances(binary_codes(query), binary_codes(vectors))[0]
    stored = vectors.astype(np.float16).astype(np.float32) if rescore_type == "halfvec" else vectors
    for limit, oversampling in [(3, 2.0), (2, 4.0), (len(texts), 1.0)]:
        hits = table.search(query[0], limit, oversampling)
        count = min(int(np.ceil(limit * oversampling)), len(texts))
        # the candidates: the Hamming-nearest rows (any of those tied at the cut-off)
        cutoff = np.sort(distances)[count - 1]
        assert all(distances[ids.index(h.id)] == h.hamming <= cutoff for h in hits)
        # rescored: the best of the candidates by the inner product with the stored float copy, in that order
        scores = [float(stored[ids.index(h.id)] @ query[0].astype(stored.dtype)) for h in hits]
        assert [h.score for h in hits] == pytest.approx(scores, abs=2e-3)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        if count == len(texts):  # every row a candidate: exactly the float top `limit`
            best = np.sort(stored @ query[0])[::-1][:limit]
            assert [h.score for h in hits] == pytest.approx(best.tolist(), abs=2e-3)
    alone = table.search(query[0], 3, oversampling=None)
    assert [h.hamming for h in alone] == np.sort(distances)[:3].tolist()
    assert {h.text for h in alone} <= set(texts) and alone[0].metadata.keys() == {"chunk"}


def test_a_table_for_another_width_or_type_is_refused_naming_both(pg):
    _table(pg, "made_for_16", 16)
    with pytest.raises(InvalidInputError) as error:
        PgvectorBinaryTable(pg, "made_for_16", 32)
    assert "binary codes of 16 dimensions (2 bytes each)" in str(error.value)
    assert "binary codes of 32 dimensions (4 bytes each)" in str(error.value)
    with pytest.raises(InvalidInputError, match=r"rescores with halfvec\(16\), not vector\(16\)"):
        PgvectorBinaryTable(pg, "made_for_16", 16, rescore_type="vector")
    pg.execute("DROP TABLE IF EXISTS plain; CREATE TABLE plain (id text, embedding vector(16))")
    with pytest.raises(InvalidInputError, match="exists but is no binary table"):
        PgvectorBinaryTable(pg, "plain", 16)


def test_codes_and_sign_floats_are_refused_so_no_table_mixes_forms(pg):
    table = _table(pg, "mixing", DIMS)
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((2, DIMS)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    with pytest.raises(InvalidInputError, match=r"holds float vectors of 16 dimensions.*not binary codes of 16"):
        table.add(["a", "b"], ["x", "y"], binary_codes(unit))
    with pytest.raises(InvalidInputError, match="not int8 codes of 16"):
        table.add(["a", "b"], ["x", "y"], (unit * 100).astype(np.int8))
    with pytest.raises(InvalidInputError, match=r"unit-length.*norm 4"):
        table.add(["a", "b"], ["x", "y"], np.where(unit > 0, 1.0, -1.0))  # embedding_type="binary" floats
    with pytest.raises(InvalidInputError, match="not float vectors of 8 dimensions"):
        table.search(unit[0, :8] / np.linalg.norm(unit[0, :8]), 1)
    with pytest.raises(InvalidInputError, match="plain lower-case SQL name"):
        PgvectorBinaryTable(pg, "Robert'); DROP TABLE x;--", DIMS)
    with pytest.raises(InvalidInputError, match="more than pgvector's HNSW gives"):
        table.search(unit[0], 500, oversampling=4.0)
    assert pg.execute("SELECT count(*) FROM mixing").fetchone() == (0,)
