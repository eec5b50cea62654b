"""The egress policy for clients that speak ``requests`` (python-threatexchange's exchange clients).

:mod:`safeguard.egress` checks httpx connections at connect time; pytx's StopNCII, ThreatExchange and
NCMEC clients use ``requests`` instead. :class:`CheckedAdapter` is a ``requests`` transport adapter
whose connections do the same as :class:`safeguard.egress.CheckedTransport`: resolve the host once,
check every address the resolver gave against the policy, and connect to a checked address, never to
the name (nothing resolves it again in between, so a DNS answer that changes between a check and the
connect cannot reach a refused address). TLS still verifies the certificate for the host name: only
the TCP connect goes to the pinned address.

:func:`checked_session` mounts it for every ``http://`` and ``https://`` URL (redirects included) and
turns off proxies from the environment, which would otherwise take the connection elsewhere.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as u3conn

from safeguard.egress import EgressPolicy, EgressRefused, parse_host
from safeguard.errors import InvalidInput

__all__ = ["CheckedAdapter", "checked_session"]


def _pinned_socket(conn: HTTPConnection, policy: EgressPolicy) -> socket.socket:
    """What urllib3's ``_new_conn`` does, to an address the policy checked instead of the name."""
    host = conn.host
    try:
        parsed = parse_host(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    except InvalidInput as exc:
        raise EgressRefused(exc.message, details={"host": host}) from None
    try:
        addrs = policy.pin(parsed, conn.port)
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to resolve {host}: {exc}") from exc
    last: OSError | None = None
    for ip in addrs:
        try:
            return u3conn.create_connection(
                (str(ip), conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(conn, f"Connection to {host} timed out") from exc
        except OSError as exc:
            last = exc
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


def _pools(policy: EgressPolicy) -> dict[str, type[HTTPConnectionPool]]:
    class Conn(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, policy)

    class TLSConn(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, policy)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConn

    return {"http": Pool, "https": TLSPool}


class CheckedAdapter(HTTPAdapter):
    """A ``requests`` adapter whose every connection goes through ``policy`` (with a default timeout)."""

    def __init__(self, policy: EgressPolicy, *, timeout: float = 60.0, **kw: Any) -> None:
        self.policy = policy
        self.timeout = timeout
        super().__init__(**kw)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        manager: PoolManager = self.poolmanager
        manager.pool_classes_by_scheme = _pools(self.policy)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise EgressRefused("connections through a proxy are not allowed by the egress policy")

    def send(self, request: requests.PreparedRequest, *args: Any, **kw: Any) -> requests.Response:
        if kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        return super().send(request, *args, **kw)


def checked_session(policy: EgressPolicy, session: requests.Session | None = None, **adapter: Any) -> requests.Session:
    """``session`` (or a new one) with :class:`CheckedAdapter` for every http(s) URL and no proxies."""
    s = session if session is not None else requests.Session()
    s.trust_env = False
    s.proxies.clear()
    # requests picks the longest mounted prefix: drop the clients' own (base-URL) adapters so none
    # of them bypasses the checked one
    s.adapters.clear()
    checked = CheckedAdapter(policy, **adapter)
    s.mount("https://", checked)
    s.mount("http://", checked)
    return s
