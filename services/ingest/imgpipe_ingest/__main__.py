"""`python -m imgpipe_ingest`: serve the ingest API."""

from __future__ import annotations

import uvicorn

from imgpipe_contracts.logs import configure_logging
from imgpipe_ingest.app import create_app
from imgpipe_ingest.config import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "ingest", settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.ingest_port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
