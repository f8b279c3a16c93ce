"""Adapters to the outside: SQLite store, language models, embeddings, Chroma, model artefacts,
staff users. Each third-party runtime is imported in one module."""
