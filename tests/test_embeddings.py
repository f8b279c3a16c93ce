"""Real MiniLM ONNX embeddings and a real (embedded) Chroma."""

import numpy as np
import pytest

from assistant.core.config import load_settings
from assistant.core.errors import EmbeddingMismatchError, InputError
from assistant.infra.embeddings import DIMENSION, MODEL_ID, MiniLMEmbedder
from assistant.infra.vectors import VectorStore


@pytest.fixture(scope="module")
def embedder():
    return MiniLMEmbedder()


def test_shape_normalization_determinism(embedder):
    texts = ["scented candles for a birthday", "a lunch bag with dots", ""]
    a = embedder.embed(texts)
    b = embedder.embed(list(texts))
    assert a.shape == (3, DIMENSION) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    assert embedder.embed([]).shape == (0, DIMENSION)


def test_batching_does_not_change_vectors(embedder):
    texts = [f"gift number {i} for my sister" for i in range(10)]
    small = MiniLMEmbedder(batch_size=3).embed(texts)
    np.testing.assert_allclose(small, embedder.embed(texts), atol=1e-5)


def test_meaning_not_just_words(embedder):
    q, near, far = embedder.embed(["candle holder", "tea light lantern", "invoice refund"])
    assert float(q @ near) > float(q @ far) + 0.1


def test_long_text_is_truncated_not_refused(embedder):
    assert embedder.embed(["word " * 2000]).shape == (1, DIMENSION)


def test_chroma_collection_records_model_and_queries(tmp_path, embedder):
    vs = VectorStore.from_settings(load_settings(data_dir=tmp_path), embedder)
    vs.upsert("catalog", ["1", "2", "3"],
              ["white hanging heart t-light holder", "jumbo bag red retrospot",
               "set of 3 cake tins pantry design"],
              [{"group": "home"}, {"group": "bags"}, {"group": "kitchen"}])
    hits = vs.query("catalog", "candle lantern for the living room", k=2)
    assert hits[0]["id"] == "1"
    assert vs.query("catalog", "baking", k=1, where={"group": "kitchen"})[0]["id"] == "3"
    meta = vs.collection("catalog").metadata
    assert meta["embedding_model"] == MODEL_ID and meta["embedding_dim"] == DIMENSION
    # reopened from disk by a new client: same data, same function
    again = VectorStore.from_settings(load_settings(data_dir=tmp_path), embedder)
    assert again.collection("catalog").count() == 3


def test_other_embedding_model_is_refused(tmp_path, embedder):
    vs = VectorStore.from_settings(load_settings(data_dir=tmp_path), embedder)
    vs.upsert("notes", ["a"], ["hello"])

    class Other(MiniLMEmbedder):
        model_id = "someone/else"
        dimension = 768

    other = VectorStore(vs.client, Other())
    with pytest.raises(EmbeddingMismatchError) as exc:
        other.collection("notes")
    assert "someone/else" in exc.value.message and MODEL_ID in exc.value.message
    assert "Rebuild" in exc.value.hint


def test_bad_collection_name(tmp_path, embedder):
    vs = VectorStore.from_settings(load_settings(data_dir=tmp_path), embedder)
    with pytest.raises(InputError):
        vs.collection("a b")


def test_a_collection_made_with_a_lower_ef_search_gets_the_new_one(tmp_path, embedder):
    """Collections built before DEFAULT_HNSW raised ef_search (200) are raised in place
    when opened (recall@10 0.956 -> 0.988 at 100,000 profiles); the data stays."""
    from assistant.infra.vectors import DEFAULT_HNSW

    vs = VectorStore.from_settings(load_settings(data_dir=tmp_path), embedder)
    old = {**DEFAULT_HNSW, "ef_search": 200}
    made = vs.collection("profiles", hnsw=old)  # as an earlier release made it
    made.upsert(ids=["a", "b"], documents=["candles for my mum", "garden tools"])
    assert vs.client.get_collection("profiles").configuration["hnsw"]["ef_search"] == 200
    again = VectorStore.from_settings(load_settings(data_dir=tmp_path), embedder)
    assert again.query("profiles", "a candle", k=1)[0]["id"] == "a"
    hnsw = again.client.get_collection("profiles").configuration["hnsw"]
    assert hnsw["ef_search"] == DEFAULT_HNSW["ef_search"] == 700
    assert hnsw["max_neighbors"] == DEFAULT_HNSW["max_neighbors"]  # built once, unchanged
    assert again.collection("profiles").count() == 2
