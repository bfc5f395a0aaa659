"""`python -m imgpipe_notifier`: the webhook sender and demo receiver."""

from __future__ import annotations

from imgpipe_notifier.app import create_app
from imgpipe_notifier.config import Settings
from imgpipe_runtime.serve import serve_http
from imgpipe_runtime.settings import load_settings


def main() -> None:
    settings = load_settings(Settings)
    serve_http(create_app(settings), settings, "notifier", settings.notifier_port)


if __name__ == "__main__":
    main()
