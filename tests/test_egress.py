"""The egress policy: strict host parsing, the refused ranges, the allow-list, and webhooks through it
(registration refused, delivery refused at connect time, DNS rebinding, pinning). Loopback only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safeguard import secrets
from safeguard.api import create_app
from safeguard.config import Settings
from safeguard.egress import EgressPolicy, EgressRefused, IPAddress, parse_host, parse_url, special_range
from safeguard.engine import Engine
from safeguard.errors import ConfigError, InvalidInput
from safeguard.store.models import Event, OutboxMessage, WebhookEndpoint
from safeguard.webhook_store import PURPOSE
from safeguard.workers.outbox import OutboxWorker
from tests.helpers.api import auth
from tests.webhook_receiver import webhook_receiver

ip = ipaddress.ip_address
DEFAULT = EgressPolicy.parse("")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2130706433", "127.0.0.1"),  # one decimal integer
        ("0x7f000001", "127.0.0.1"),  # one hex integer
        ("017700000001", "127.0.0.1"),  # one octal integer
        ("0x7f.1", "127.0.0.1"),  # two parts, hex
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # leading zero: octal
        ("10.0.0.5", "10.0.0.5"),
        ("169.254.169.254.", "169.254.169.254"),  # trailing dot
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[::1]", "::1"),
    ],
)
def test_numeric_hosts_are_read_as_addresses(raw: str, want: str) -> None:
    assert parse_host(raw) == ip(want)


@pytest.mark.parametrize(
    ("raw", "want"),
    [("Example.COM", "example.com"), ("example.com.", "example.com"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_names_are_lower_case_ascii(raw: str, want: str) -> None:
    assert parse_host(raw) == want


@pytest.mark.parametrize(
    "raw", ["1.2.3.256", "0x100000000", "08.1.2.3", "1.2.3.4.5", "[fe80::1%eth0]", "a b", "x..y", "", ".", "ex_-.com."]
)
def test_malformed_hosts_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_host(raw)


def test_urls_are_parsed_strictly() -> None:
    t = parse_url("https://user@Example.com:8443/a?b", ("https",))
    assert (t.scheme, t.host, t.port) == ("https", "example.com", 8443)
    assert parse_url("http://2130706433/", ("http",)).host == ip("127.0.0.1")
    assert parse_url("rtmp://[::1]/live", ("rtmp",)).port == 1935
    for bad in (
        "file:///etc/passwd",
        "http://a\\b/",
        "http://a b/",
        "http://x:99999/",
        "http:///nohost",
        "gopher://x/",
    ):
        with pytest.raises(InvalidInput):
            parse_url(bad, ("http", "rtmp"))


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "::ffff:8.8.8.8",  # IPv4-mapped: refused as a range, whatever it maps to
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "2002:a00:5::1",  # 6to4 of 10.0.0.5
        "100.100.100.200",
    ],
)
def test_special_ranges_are_refused_by_default(addr: str) -> None:
    why = DEFAULT.refusal(ip(addr), "host.example")
    assert why is not None and str(ip(addr)) in why and "SAFEGUARD_EGRESS_ALLOW" in why


@pytest.mark.parametrize("addr", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are_allowed_by_default(addr: str) -> None:
    assert special_range(ip(addr)) is None
    assert DEFAULT.refusal(ip(addr)) is None


def test_the_allow_list() -> None:
    pol = EgressPolicy.parse("127.0.0.1, 10.0.0.0/8, origin.internal, *.cdn.internal, fd00::/8")
    assert pol.refusal(ip("127.0.0.1")) is None
    assert pol.refusal(ip("127.0.0.2")) is not None  # listed as one address, not the range
    assert pol.refusal(ip("10.9.9.9")) is None
    assert pol.refusal(ip("192.168.0.1"), "origin.internal") is None  # a listed name may resolve anywhere...
    assert pol.refusal(ip("192.168.0.1"), "edge-1.cdn.internal") is None
    assert pol.refusal(ip("192.168.0.1"), "cdn.internal") is not None  # "*." is subdomains only
    # ...except to a metadata address, which is allowed only when listed itself
    assert "metadata" in (pol.refusal(ip("fd00:ec2::254")) or "")
    assert "metadata" in (pol.refusal(ip("169.254.169.254"), "origin.internal") or "")
    assert EgressPolicy.parse("169.254.0.0/16").refusal(ip("169.254.169.254")) is not None
    assert EgressPolicy.parse("169.254.169.254").refusal(ip("169.254.169.254")) is None
    with pytest.raises(ConfigError):
        EgressPolicy.parse("not a host!")
    with pytest.raises(ConfigError):
        EgressPolicy.parse("", default="maybe")


def test_deny_by_default_refuses_everything_not_listed() -> None:
    pol = EgressPolicy.parse("hooks.example.com, 203.0.113.0/24", default="deny")
    assert pol.refusal(ip("8.8.8.8")) is not None
    assert pol.refusal(ip("8.8.8.8"), "hooks.example.com") is None
    assert pol.refusal(ip("203.0.113.7")) is None
    with pytest.raises(EgressRefused):
        EgressPolicy.parse("hooks.example.com", default="deny").pin("other.example.com", 443)


def test_every_resolved_address_is_checked() -> None:
    answers: dict[str, list[IPAddress]] = {"mixed.test": [ip("93.184.216.34"), ip("10.0.0.5")]}
    pol = DEFAULT.with_resolver(lambda h, p: answers[h])
    with pytest.raises(EgressRefused) as exc:
        pol.pin("mixed.test", 80)
    assert exc.value.message == (
        "address 10.0.0.5 of host mixed.test is in a private range and not in SAFEGUARD_EGRESS_ALLOW"
    )


# -- webhooks ---------------------------------------------------------------------------------------
@pytest.fixture
def strict(settings: Settings) -> Iterator[Engine]:
    """Default egress settings: loopback refused."""
    eng = Engine(settings.with_(egress_allow=""))
    yield eng
    eng.close()


def _endpoint(engine: Engine, url: str) -> None:
    """An endpoint row written straight to the database, past registration's check (as one registered
    before the policy, or before its name resolved elsewhere), and a delivery waiting for it."""
    with engine.db.write() as s:
        sealed = secrets.seal(engine.settings, "s" * 20, purpose=PURPOSE)
        endpoint = WebhookEndpoint(url=url, secret=sealed, events=[], enabled=True)
        s.add(endpoint)
        s.flush()
        s.add(
            OutboxMessage(
                topic="decision.block",
                endpoint_url=url,
                endpoint_id=endpoint.id,
                payload={"type": "decision.block"},
                status="pending",
                attempts=0,
                last_error="",
            )
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0x7f.1/hook",
    ],
)
def test_webhook_registration_refuses_internal_addresses(strict: Engine, url: str) -> None:
    from safeguard.keys import KeyService

    admin = KeyService(strict.db).create("admin", "a", actor="t")["key"]
    with TestClient(create_app(strict.settings, engine=strict)) as c:
        r = c.post("/v1/webhooks", json={"url": url}, headers=auth(admin))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "egress_refused"
    assert "SAFEGUARD_EGRESS_ALLOW" in r.json()["error"]["message"]


def test_webhook_to_a_refused_address_is_not_delivered(strict: Engine) -> None:
    with webhook_receiver() as rx:
        _endpoint(strict, rx.url)  # written straight to the database: registration would refuse it
        assert OutboxWorker(strict.db, strict.settings).run_once() == 1
        assert rx.deliveries == []
    with strict.db.read() as s:
        msg = s.execute(select(OutboxMessage)).scalar_one()
        assert msg.status == "dead" and msg.attempts == 1  # refused once, not retried
        assert msg.last_error.startswith("egress_refused: address 127.0.0.1")
        ev = s.execute(select(Event).where(Event.type == "webhook.dead")).scalar_one()
        assert "egress_refused" in ev.payload["error"]


def test_webhook_dns_rebinding_is_refused_at_connect(strict: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """hooks.test answers a public address at registration and loopback when the delivery connects."""
    from safeguard import egress

    answers = [[ip("93.184.216.34")], [ip("127.0.0.1")]]
    monkeypatch.setattr(egress, "resolve", lambda host, port: answers.pop(0) if host == "hooks.test" else [])
    with webhook_receiver() as rx:
        port = rx.url.split(":")[2].split("/")[0]
        url = f"http://hooks.test:{port}/hook"
        egress.check_webhook_url(url, strict.settings)  # registration: public, accepted
        _endpoint(strict, url)
        OutboxWorker(strict.db, strict.settings).run_once()
        assert rx.deliveries == []
    with strict.db.read() as s:
        msg = s.execute(select(OutboxMessage)).scalar_one()
        assert msg.status == "dead"
        assert msg.last_error == (
            "egress_refused: address 127.0.0.1 of host hooks.test is in a loopback range and not in "
            "SAFEGUARD_EGRESS_ALLOW"
        )


def test_webhook_connects_to_the_address_it_checked(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinning: the name is resolved by the policy (here to loopback, allowed) and never by httpx again."""
    from safeguard import egress

    looked_up: list[str] = []

    def fake(host: str, port: int) -> list[IPAddress]:
        looked_up.append(host)
        return [ip("127.0.0.1")]

    monkeypatch.setattr(egress, "resolve", fake)
    with webhook_receiver() as rx:
        port = rx.url.split(":")[2].split("/")[0]
        _endpoint(engine, f"http://receiver.test:{port}/hook")  # not in any DNS: only the pin reaches it
        OutboxWorker(engine.db, engine.settings).run_once()
        assert len(rx.deliveries) == 1
    assert looked_up == ["receiver.test"]
    with engine.db.read() as s:
        assert s.execute(select(OutboxMessage.status)).scalar_one() == "delivered"


def test_webhooks_add_command_refuses_internal_addresses(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from safeguard.cli import app

    monkeypatch.setenv("SAFEGUARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SAFEGUARD_EGRESS_ALLOW", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    got = runner.invoke(app, ["webhooks", "add", "http://169.254.169.254/x"])
    assert got.exit_code == 2 and "egress_refused" in got.output
    monkeypatch.setenv("SAFEGUARD_EGRESS_ALLOW", "169.254.169.254")
    assert runner.invoke(app, ["webhooks", "add", "http://169.254.169.254/x"]).exit_code == 0
