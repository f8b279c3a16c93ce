"""The store's schema migrations (Alembic), forward-only; ``Store.migrate`` runs them."""
