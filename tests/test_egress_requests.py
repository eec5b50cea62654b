"""The egress policy at connect time for ``requests`` (pytx's exchange clients): the address a name
resolves to when the connection is made is the one checked and the one connected to."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from safeguard import egress
from safeguard.egress import EgressPolicy, EgressRefused, IPAddress
from safeguard.egress_requests import checked_session
from tests.helpers.net import serving

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

    with serving(Handler) as srv:
        yield srv.server_address[1], hosts


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


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_verifies_the_host_name_while_connecting_to_the_pinned_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path, "feeds.test")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with serving(Handler, wrap=lambda sock: ctx.wrap_socket(sock, server_side=True)) as srv:
        port = srv.server_address[1]
        answers(monkeypatch, {"feeds.test": [[LOOPBACK]], "other.test": [[LOOPBACK]]})
        with checked_session(EgressPolicy.parse("127.0.0.1")) as s:
            assert s.get(f"https://feeds.test:{port}/ok", verify=str(cert)).text == "ok"
            # the same address under a name the certificate does not carry: the TLS check still fails
            with pytest.raises(requests.exceptions.SSLError):
                s.get(f"https://other.test:{port}/ok", verify=str(cert))
