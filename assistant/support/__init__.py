"""Support drafting for the Agent desk: desk, help base, intents."""
