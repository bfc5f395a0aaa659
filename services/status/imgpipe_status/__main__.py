"""`python -m imgpipe_status`: the status API and the outcome consumer."""

from __future__ import annotations

import uvicorn

from imgpipe_contracts.logs import configure_logging
from imgpipe_status.app import create_app
from imgpipe_status.config import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "status", settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.status_port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
