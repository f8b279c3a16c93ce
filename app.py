"""Start Tailor's web app from settings (same as `assistant serve`)."""

from assistant.cli import app

if __name__ == "__main__":
    app(["serve"])
