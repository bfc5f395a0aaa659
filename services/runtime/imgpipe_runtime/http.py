"""The one way the services make outbound HTTP requests to user-given URLs: an aiohttp session
whose every connection passes the SSRF guard, with timeouts and no proxy from the environment."""

from __future__ import annotations

import aiohttp

from imgpipe_runtime.netguard import socket_factory_for
from imgpipe_runtime.settings import NetworkSettings


def guarded_session(
    network: NetworkSettings,
    *,
    timeout: aiohttp.ClientTimeout,
    user_agent: str,
    per_host: int = 0,
    auto_decompress: bool = True,
) -> aiohttp.ClientSession:
    """A session for one process. `per_host` caps concurrent connections to one host (0: no cap)."""
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=per_host,
        socket_factory=socket_factory_for(
            network.imgpipe_allow_private_networks, network.imgpipe_allowed_networks
        ),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": user_agent},
        auto_decompress=auto_decompress,
        # Proxies from the environment would connect on our behalf, past the guard.
        trust_env=False,
    )
