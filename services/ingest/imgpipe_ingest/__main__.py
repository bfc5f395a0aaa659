"""`python -m imgpipe_ingest`: serve the ingest API."""

from __future__ import annotations

from imgpipe_ingest.app import create_app
from imgpipe_ingest.config import Settings
from imgpipe_runtime.serve import serve_http
from imgpipe_runtime.settings import load_settings


def main() -> None:
    settings = load_settings(Settings)
    serve_http(create_app(settings), settings, "ingest", settings.ingest_port)


if __name__ == "__main__":
    main()
