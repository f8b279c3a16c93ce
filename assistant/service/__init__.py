"""The application layer every front end calls (UI, API, CLI)."""
