"""TAILOR_CHROMA_URL: the same VectorStore against a real `chroma run` server on loopback."""

import pytest

from assistant.core.config import load_settings
from assistant.core.errors import EmbeddingMismatchError
from assistant.infra.embeddings import MODEL_ID
from assistant.infra.vectors import VectorStore
from tests.servers import ChromaServer


@pytest.fixture
def chroma_server(tmp_path):
    with ChromaServer(tmp_path / "server") as server:
        yield server.url


def test_http_client_stores_and_checks_model(chroma_server, tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", chroma_url=chroma_server)
    vs = VectorStore.from_settings(settings)
    vs.upsert("help", ["a", "b"], ["how do I return an item", "where is my parcel"])
    assert vs.query("help", "track my delivery", k=1)[0]["id"] == "b"
    assert not (tmp_path / "data" / "chroma").exists()  # no embedded store was made
    assert any((tmp_path / "server").iterdir())  # the server persisted the data
    assert vs.collection("help").metadata["embedding_model"] == MODEL_ID

    class Other(type(vs.ef.embedder)):
        model_id = "other/model"

    with pytest.raises(EmbeddingMismatchError):
        VectorStore.from_settings(settings, Other()).collection("help")
