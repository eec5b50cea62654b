"""python-threatexchange's exchange clients, with every connection through the egress policy.

Imported only once python-threatexchange is known to be installed (``pytx._require``). Each client is
pytx's own, subclassed at the one method that makes its ``requests`` session, so that the session is
:func:`safeguard.egress_requests.checked_session` (resolve, check, connect to the checked address) with
pytx's own timeout and retry settings. What else each subclass changes, and why:

- :class:`CheckedNCMECHashAPI`: pytx's client accepts only NCMEC's fixed environments
  (``NCMECEnvironment``, an enum of NCMEC's URLs); the subclass takes the environment as pytx does and
  then points ``_base_url`` (the one attribute every request is built from, ``paging/next`` included)
  at the configured base URL. Nothing else of the client changes.
- :class:`CheckedThreatExchangeAPI`: pytx's ``get_json_from_url`` makes its session and then calls
  the module-level ``requests.get`` (outside the session: no timeout, no retries, and here no check);
  the subclass sends that request through the session.
"""

from __future__ import annotations

from typing import Any

import requests
from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI
from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment, NCMECHashAPI
from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI, StopNCIIEndpoint
from threatexchange.exchanges.impl.ncmec_api import NCMECCollabConfig, NCMECSignalExchangeAPI
from urllib3.util.retry import Retry

from safeguard.egress import EgressPolicy
from safeguard.egress_requests import checked_session

__all__ = [
    "CheckedNCMECHashAPI",
    "CheckedNCMECSignalExchangeAPI",
    "CheckedStopNCIIAPI",
    "CheckedThreatExchangeAPI",
]


def _session(policy: EgressPolicy, session: requests.Session) -> requests.Session:
    # pytx's own settings: 60 s, GETs retried on 429 and 5xx (about 1.5 s in all), POSTs never
    retry = Retry(
        total=4,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=["HEAD", "GET", "OPTIONS"],
        backoff_factor=0.2,
    )
    return checked_session(policy, session, timeout=60.0, max_retries=retry)


class CheckedStopNCIIAPI(StopNCIIAPI):
    def __init__(self, policy: EgressPolicy, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.policy = policy

    def _get_session(self, endpoint: StopNCIIEndpoint) -> requests.Session:
        return _session(self.policy, super()._get_session(endpoint))


class CheckedThreatExchangeAPI(ThreatExchangeAPI):
    def __init__(self, policy: EgressPolicy, api_token: str, *, endpoint_override: str) -> None:
        super().__init__(api_token, endpoint_override=endpoint_override)
        self.policy = policy

    def _get_session(self) -> requests.Session:
        return _session(self.policy, super()._get_session())  # type: ignore[no-untyped-call]

    def get_json_from_url(self, url: Any, params: Any = None, *, json_obj_hook: Any = None) -> Any:
        with self._get_session() as session:
            response = session.get(url, params=params or {})
            response.raise_for_status()
            return response.json(object_hook=json_obj_hook)


class CheckedNCMECHashAPI(NCMECHashAPI):
    def __init__(self, policy: EgressPolicy, username: str, password: str, *, base_url: str) -> None:
        super().__init__(username, password, NCMECEnvironment.Industry)
        self._base_url = base_url.rstrip("/")
        self.policy = policy

    def _get_session(self) -> requests.Session:
        return _session(self.policy, super()._get_session())


class CheckedNCMECSignalExchangeAPI(NCMECSignalExchangeAPI):
    """pytx's NCMEC exchange (its windowed, resumable ``fetch_iter``) over a :class:`CheckedNCMECHashAPI`."""

    def __init__(self, collab: NCMECCollabConfig, client: CheckedNCMECHashAPI) -> None:
        super().__init__(collab, client.username, client.password)
        self.client = client

    def get_client(self, environment: NCMECEnvironment) -> NCMECHashAPI:
        return self.client
