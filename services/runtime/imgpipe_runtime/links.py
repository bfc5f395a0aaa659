"""Signed file links: capabilities that let whoever received a link download that one file.

A link is `<base>/files/<key>?token=<timestamp>.<signature>`; the signature covers the key and
the time it was made (itsdangerous' TimestampSigner), so a token opens only its own file and
only for LINK_EXPIRY seconds. The request id inside every key is random (128 bits), so links
cannot be guessed either.
"""

from __future__ import annotations

from itsdangerous import BadSignature, TimestampSigner

from imgpipe_runtime.settings import LinkSettings

_SALT = "imgpipe.files"


class LinkSigner:
    def __init__(self, secret: str, expiry: int) -> None:
        self._signer = TimestampSigner(secret, salt=_SALT)
        self.expiry = expiry

    def token_for(self, key: str) -> str:
        signed = self._signer.sign(key).decode()
        return signed[len(key) + 1 :]

    def is_valid(self, key: str, token: str) -> bool:
        try:
            self._signer.unsign(f"{key}.{token}", max_age=self.expiry)
        except BadSignature:
            return False
        return True


def link_signer(settings: LinkSettings) -> LinkSigner | None:
    """The signer of file links when access is controlled; None when AUTH_MODE=off."""
    if not settings.auth_required:
        return None
    return LinkSigner(settings.link_secret, settings.link_expiry)
