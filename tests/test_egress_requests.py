"""The egress policy at connect time for ``requests`` (pytx's exchange clients): the address a name
resolves to when the connection is made is the one checked and the one connected to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from safeguard import egress
from safeguard.egress import EgressPolicy, EgressRefused, IPAddress
from safeguard.egress_requests import checked_session

LOOPBACK = egress.parse_host("127.0.0.1")


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers.get("host", ""))
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", f"http://inner.test:{self.server.server_address[1]}/ok")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1], hosts
    finally:
        srv.shutdown()
        srv.server_close()


def answers(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[list[IPAddress]]]) -> list[str]:
    """Resolve names from ``table`` (each lookup takes the next answer); returns the names looked up."""
    asked: list[str] = []

    def fake(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        got = table[host]
        return got.pop(0) if len(got) > 1 else got[0]

    monkeypatch.setattr(egress, "resolve", fake)
    return asked


def test_connects_to_the_checked_address_not_to_the_name(
    server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hosts = server
    asked = answers(monkeypatch, {"feeds.test": [[LOOPBACK]]})  # .test never resolves in real DNS
    with checked_session(EgressPolicy.parse("127.0.0.1")) as s:
        r = s.get(f"http://feeds.test:{port}/ok")
    assert r.text == "ok" and hosts == [f"feeds.test:{port}"] and asked == ["feeds.test"]


def test_a_name_rebound_to_a_forbidden_address_after_the_check_is_refused_at_connect(
    server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hosts = server
    metadata = egress.parse_host("169.254.169.254")
    private = egress.parse_host("10.0.0.7")
    # the first answer (a registration-time check) is allowed, the next ones are not
    answers(monkeypatch, {"feeds.test": [[LOOPBACK], [metadata], [LOOPBACK, private]]})
    policy = EgressPolicy.parse("127.0.0.1")
    policy.check_target(egress.parse_url(f"http://feeds.test:{port}/ok", ("http",)))
    with checked_session(policy) as s:
        with pytest.raises(EgressRefused) as e:
            s.get(f"http://feeds.test:{port}/ok")
        assert "169.254.169.254" in e.value.message
        with pytest.raises(EgressRefused) as e2:  # one allowed and one refused address: refused as a whole
            s.get(f"http://feeds.test:{port}/ok")
        assert "10.0.0.7" in e2.value.message
    assert hosts == []  # nothing reached the server


def test_redirects_and_proxies_go_through_the_policy_too(
    server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hosts = server
    answers(monkeypatch, {"feeds.test": [[LOOPBACK]], "inner.test": [[egress.parse_host("192.168.1.5")]]})
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")  # ignored: the session trusts no environment
    with checked_session(EgressPolicy.parse("127.0.0.1")) as s, pytest.raises(EgressRefused):
        s.get(f"http://feeds.test:{port}/redirect")
    assert hosts == [f"feeds.test:{port}"]
    with requests.Session() as plain:  # a plain session would have used the proxy (the control)
        assert plain.get(f"http://unresolvable.test:{port}/ok").text == "ok"
