"""Chroma: the only module that imports ``chromadb``.

Embedded ``PersistentClient`` under the data dir by default; ``HttpClient`` when
``TAILOR_CHROMA_URL`` is set. Every collection is created with Tailor's own embedding
function (never Chroma's default, which downloads a model) and records the embedding model
id and dimension in its metadata; opening it with another model is refused.
Later issues add profiles, the catalog and help articles on top of ``collection()``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings as ChromaSettings
from chromadb.utils.embedding_functions import register_embedding_function

from assistant.core.config import Settings
from assistant.core.errors import EmbeddingMismatchError, InputError
from assistant.infra.embeddings import MiniLMEmbedder

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # Chroma refuses batches above ~5461
# HNSW parameters for new collections; chosen by measurement (bench/recommend.py)
# 100,000 profiles (bench/chroma_recall.py): ef_search 200 -> 700 took recall@10 0.955 ->
# 0.987-0.988 at p95 7-11 ms, same build; 600: 0.983-0.988; M32 builds 1.1-1.5x slower
DEFAULT_HNSW: dict[str, int] = {"ef_construction": 200, "max_neighbors": 16, "ef_search": 700}
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


@register_embedding_function
class TailorEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma adapter around a local embedder (MiniLM by default)."""

    def __init__(self, embedder: MiniLMEmbedder | None = None) -> None:
        self.embedder = embedder or MiniLMEmbedder()

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "tailor-minilm-onnx"

    def get_config(self) -> dict[str, Any]:
        return {"model_id": self.embedder.model_id, "dimension": self.embedder.dimension}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> TailorEmbeddingFunction:
        return TailorEmbeddingFunction()

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "ip", "l2"]


def make_client(settings: Settings):  # -> chromadb.api.ClientAPI
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                   ssl=url.scheme == "https", settings=chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


class VectorStore:
    """Collections of texts embedded locally, with model id + dimension checks."""

    def __init__(self, client, embedder: MiniLMEmbedder | None = None, *,
                 local_dir: Path | None = None) -> None:
        self.client = client
        self.ef = TailorEmbeddingFunction(embedder)
        self.local_dir = local_dir  # the embedded store's folder (None: a Chroma server)

    @classmethod
    def from_settings(cls, settings: Settings,
                      embedder: MiniLMEmbedder | None = None) -> VectorStore:
        local = None if settings.chroma_url else settings.chroma_dir
        return cls(make_client(settings), embedder, local_dir=local)

    def collection(self, name: str, *, hnsw: dict[str, int] | None = None):
        """Get or create a collection; refuse one made with another embedding model.
        ``hnsw``: index parameters for a new collection (``ef_construction``,
        ``max_neighbors`` = M, ``ef_search``); default ``DEFAULT_HNSW`` (measured, see
        bench/recommend.py)."""
        if not _NAME.match(name):
            raise InputError(f"'{name}' is not a valid collection name.",
                             "Use 3-512 characters from letters, digits, '.', '_' and '-'.")
        model_id, dim = self.ef.embedder.model_id, self.ef.embedder.dimension
        existing = {c.name for c in self.client.list_collections()}
        if name in existing:
            coll = self.client.get_collection(name, embedding_function=self.ef)
            meta = coll.metadata or {}
            if meta.get("embedding_model") != model_id or meta.get("embedding_dim") != dim:
                raise EmbeddingMismatchError(
                    f"Collection '{name}' was built with embedding model "
                    f"{meta.get('embedding_model')!r} ({meta.get('embedding_dim')} dims); "
                    f"this app embeds with {model_id!r} ({dim} dims).",
                    "Rebuild the collection (delete it and re-index), or configure the "
                    "embedding model it was built with.",
                )
            self._raise_ef_search(coll)
            return coll
        metadata: dict[str, Any] = {"embedding_model": model_id, "embedding_dim": dim}
        config = {"space": "cosine", **(DEFAULT_HNSW if hnsw is None else hnsw)}
        return self.client.create_collection(name, embedding_function=self.ef,
                                             metadata=metadata,
                                             configuration={"hnsw": config})

    def _raise_ef_search(self, coll: Any) -> None:
        """A collection made before ``DEFAULT_HNSW`` raised ``ef_search`` gets the new
        value (the only HNSW setting Chroma changes in place; a process that already has
        the index loaded keeps the old one until it restarts)."""
        hnsw = (getattr(coll, "configuration", None) or {}).get("hnsw") or {}
        current = hnsw.get("ef_search")
        if isinstance(current, int) and current < DEFAULT_HNSW["ef_search"]:
            try:
                coll.modify(configuration={"hnsw": {"ef_search": DEFAULT_HNSW["ef_search"]}})
            except Exception:  # noqa: BLE001 - recall only; a server may refuse, search works
                log.warning("could not raise ef_search of collection %s", coll.name,
                            exc_info=True)

    def drop(self, name: str) -> None:
        if name in {c.name for c in self.client.list_collections()}:
            self.client.delete_collection(name)

    def count(self, name: str) -> int:
        return self.collection(name).count()

    def upsert(self, name: str, ids: list[str], documents: list[str],
               metadatas: list[dict[str, Any]] | None = None,
               embeddings: Any = None) -> int:
        """Add or replace records (chunked below Chroma's batch limit); ``embeddings``
        (precomputed, same model) skips embedding the documents again."""
        coll = self.collection(name)
        for start in range(0, len(ids), MAX_BATCH):
            end = start + MAX_BATCH
            coll.upsert(ids=ids[start:end], documents=documents[start:end],
                        metadatas=metadatas[start:end] if metadatas else None,
                        embeddings=embeddings[start:end] if embeddings is not None else None)
        return len(ids)

    def query(self, name: str, text: str | None = None, k: int = 5,
              where: dict[str, Any] | None = None, *,
              embedding: Any = None) -> list[dict[str, Any]]:
        """Nearest records to a text (or a precomputed embedding), best first."""
        coll = self.collection(name)
        if embedding is not None:
            res = coll.query(query_embeddings=[embedding], n_results=k, where=where)
        else:
            res = coll.query(query_texts=[text or ""], n_results=k, where=where)
        return [
            {"id": i, "document": d, "metadata": m, "distance": dist}
            for i, d, m, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                     res["distances"][0], strict=True)
        ]

    def forget(self, name: str, ids: list[str]) -> int:
        """Delete records so that their text is gone from the disk too. Chroma deletes the
        records but keeps the text in its write-ahead log table until that is compacted, in
        the full-text index until it is merged, and in free pages of its SQLite file; for
        the embedded store this also blanks those log entries (their effect, already
        applied, stays the same), merges the index and vacuums the file. A Chroma server
        (``TAILOR_CHROMA_URL``) is asked to delete only: compacting it is its operator's
        job. Returns how many of ``ids`` existed."""
        if name not in {c.name for c in self.client.list_collections()} or not ids:
            return 0
        coll = self.collection(name)
        found = len(coll.get(ids=ids, include=[])["ids"])
        coll.delete(ids=ids)
        if self.local_dir is not None:
            self._scrub_local(ids)
        return found

    def _scrub_local(self, ids: list[str]) -> None:
        db = self.local_dir / "chroma.sqlite3" if self.local_dir else None
        if db is None or not db.exists():
            return
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA secure_delete = ON")
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE embeddings_queue SET metadata = NULL, "
                         f"vector = zeroblob(length(vector)) WHERE id IN ({marks})", ids)
            conn.execute("INSERT INTO embedding_fulltext_search(embedding_fulltext_search) "
                         "VALUES ('optimize')")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("could not compact the embedded Chroma store after a delete: %s", exc)
        finally:
            conn.close()

    def get(self, name: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Records by id (missing ids are left out)."""
        res = self.collection(name).get(ids=ids, include=["documents", "metadatas"])
        return {i: {"document": d, "metadata": m}
                for i, d, m in zip(res["ids"], res["documents"], res["metadatas"], strict=True)}
