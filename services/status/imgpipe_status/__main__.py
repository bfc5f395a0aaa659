"""`python -m imgpipe_status`: the status API and the outcome consumer."""

from __future__ import annotations

from imgpipe_runtime.files import exit_unless_store_usable
from imgpipe_runtime.serve import PROBES, serve_http
from imgpipe_runtime.settings import load_settings
from imgpipe_status.app import create_app
from imgpipe_status.config import Settings


def main() -> None:
    settings = load_settings(Settings)
    exit_unless_store_usable(settings)
    # Status polls are the bulk of this service's requests.
    serve_http(
        create_app(settings),
        settings,
        "status",
        settings.status_port,
        quiet_paths=(*PROBES, "/status/"),
    )


if __name__ == "__main__":
    main()
