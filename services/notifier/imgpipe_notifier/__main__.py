"""`python -m imgpipe_notifier`: the webhook sender and demo receiver."""

from __future__ import annotations

import uvicorn

from imgpipe_contracts.logs import configure_logging
from imgpipe_notifier.app import create_app
from imgpipe_notifier.config import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "notifier", settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.notifier_port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
