"""The egress policy: the one place that decides which addresses Safeguard may connect to.

Every outbound connection goes through it: stream pulls (the first URL, each redirect, every HLS
sub-playlist and segment, RTMP), and webhook deliveries. Why it is shaped like this:

- **Checked at connect time, pinned.** A URL checked when it is registered proves nothing about the
  address it will have later (DNS rebinding: a name answering a public address at registration and
  ``127.0.0.1`` a second later). So each connection resolves the name once, checks *every* address
  the resolver gave (a name answering one public and one private address is refused as a whole), and
  connects to an address it checked, never to the name: nothing resolves it again in between.
  :class:`CheckedTransport` does this for httpx (a network backend below the connection pool, so TLS
  still verifies the certificate for the host name); :meth:`EgressPolicy.pin` gives RTMP the address
  to hand to FFmpeg.
- **Strict parsing.** Host names are parsed the way resolvers and browsers read them, so that
  ``http://2130706433/``, ``http://0x7f.1/``, ``http://0177.0.0.1/`` and ``http://[::ffff:127.0.0.1]/``
  are all recognised as loopback and refused, whatever a later parser would make of them; a trailing
  dot is dropped, Unicode names are IDNA-encoded, anything else that is not a host name is refused.
- **Default: public yes, special ranges no.** Addresses that belong to this machine, its network or its
  cloud (private, loopback, link-local, CGNAT, multicast, unspecified, reserved, documentation,
  IPv6 ULA/link-local/site-local, IPv4-mapped, and the metadata services) are refused unless the
  operator lists them in ``SAFEGUARD_EGRESS_ALLOW`` (host names and/or CIDRs, comma-separated).
  Public addresses are allowed, because stream origins and webhook receivers are usually on the
  Internet; ``SAFEGUARD_EGRESS_DEFAULT=deny`` refuses everything not listed. A metadata address
  (169.254.169.254, fd00:ec2::254, ...) is refused even inside a listed range or behind a listed host
  name: only listing the address itself allows it.
- **Refusals say what was refused; network failures say nothing.** :class:`EgressRefused` names the
  address, the host and the range; callers turn connection refused, timeouts and TLS errors into one
  generic answer, so a caller cannot use Safeguard to find which internal ports are open.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx
import idna

from safeguard.errors import ConfigError, InvalidInput, SafeguardError

__all__ = [
    "METADATA",
    "CheckedTransport",
    "EgressPolicy",
    "EgressRefused",
    "Target",
    "check_webhook_url",
    "checked_client",
    "parse_host",
    "parse_url",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "SAFEGUARD_EGRESS_ALLOW"


class EgressRefused(SafeguardError):
    """A connection the egress policy does not allow. The message says what was refused and why."""

    code = "egress_refused"
    status = 422


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


#: cloud metadata and similar host-local services: refused unless the address itself is listed
METADATA: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "cloud metadata (AWS, GCP, Azure, OpenStack, Oracle, ...)",
    ipaddress.ip_address("169.254.170.2"): "AWS ECS task metadata",
    ipaddress.ip_address("169.254.169.253"): "AWS DNS resolver",
    ipaddress.ip_address("168.63.129.16"): "Azure WireServer",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud metadata",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud metadata",
    ipaddress.ip_address("fd00:ec2::254"): "AWS metadata (IPv6)",
    ipaddress.ip_address("fd00:ec2::23"): "AWS Time Sync (IPv6)",
}

#: (range name, networks): checked in order, the first that contains the address names it
SPECIAL: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
    ("shared address space (CGNAT)", _nets("100.64.0.0/10")),
    ("unique local (IPv6 ULA)", _nets("fc00::/7")),
    ("site-local (IPv6)", _nets("fec0::/10")),
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    ("IPv4-mapped IPv6", _nets("::ffff:0:0/96")),
    ("IPv4-compatible IPv6", _nets("::/96")),
    ("IETF protocol assignments", _nets("192.0.0.0/24")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")),
    ("benchmarking", _nets("198.18.0.0/15", "2001:2::/48")),
    ("reserved", _nets("240.0.0.0/4", "192.88.99.0/24", "100::/64", "64:ff9b:1::/48")),
    ("Teredo tunnel", _nets("2001::/32")),
)
#: IPv6 ranges that carry an IPv4 address inside: the embedded address is checked too
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def special_range(ip: IPAddress) -> str | None:
    """The name of the special-purpose range ``ip`` is in, or None for an ordinary public address."""
    if ip in METADATA:
        return METADATA[ip]
    for name, nets in SPECIAL:
        if any(ip.version == n.version and ip in n for n in nets):
            return name
    if isinstance(ip, ipaddress.IPv6Address):
        inner: ipaddress.IPv4Address | None = None
        if ip.sixtofour is not None:
            inner = ip.sixtofour
        elif ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            got = special_range(inner)
            if got is not None:
                return f"{got} (IPv4 {inner} inside IPv6)"
    return None


# -- parsing ----------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def _ipv4_number(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)  # ValueError for 8 and 9: not a number, as for inet_aton
    return int(part, 10)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address:
    """``inet_aton``/WHATWG forms: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last fills the rest."""
    parts = host.split(".")
    if len(parts) > 4 or not all(_NUMBER.match(p) for p in parts):
        raise ValueError(host)
    nums = [_ipv4_number(p) for p in parts]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise ValueError(host)
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_host(raw: str) -> str | IPAddress:
    """A URL's host as an IP address, or as a lower-case ASCII host name; ``InvalidInput`` otherwise.

    IPv6 is given in brackets (``[::1]``, no zone ids). A host whose last label is a number is an IPv4
    address in one of the legacy forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``) or
    invalid, as browsers and ``inet_aton`` read it; it is never looked up as a name.
    """
    host = raw
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner:
            raise InvalidInput(f"IPv6 zone ids are not accepted: {raw!r}", code="invalid_host")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise InvalidInput(f"not an IPv6 address: {raw!r}", code="invalid_host") from None
    if host.endswith("."):
        host = host[:-1]
    if not host or host.endswith(".") or any(c.isspace() or ord(c) < 0x21 or c in "%/\\@[]?#:" for c in host):
        raise InvalidInput(f"not a host name: {raw!r}", code="invalid_host")
    last = host.rsplit(".", 1)[-1]
    if _NUMBER.match(last):
        try:
            return _legacy_ipv4(host)
        except ValueError:
            raise InvalidInput(f"not an IPv4 address nor a host name: {raw!r}", code="invalid_host") from None
    try:
        ascii_name = idna.encode(host, uts46=True).decode("ascii") if not host.isascii() else host.lower()
    except idna.IDNAError:
        raise InvalidInput(f"not a valid international host name: {raw!r}", code="invalid_host") from None
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in ascii_name.split(".")):
        raise InvalidInput(f"not a host name: {raw!r}", code="invalid_host")
    return ascii_name


@dataclass(frozen=True)
class Target:
    """A parsed URL: its scheme, host (a name or an address), port, and the split URL."""

    url: str
    scheme: str
    host: str | IPAddress
    port: int
    parts: SplitResult

    @property
    def host_text(self) -> str:
        return str(self.host)


DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443}


def require_https(url: str, setting: str) -> str:
    """A service's base URL (NCMEC, the DSA database): ``https://``, or ``http://`` to loopback only (the
    tests' local servers); else ``invalid_setting`` naming ``setting``. Returns it without a trailing /."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(f"{setting} must be https:// (http only to loopback, for tests)", code="invalid_setting")
    return url.rstrip("/")


def parse_url(url: str, schemes: Iterable[str], *, code: str = "invalid_url") -> Target:
    """Split ``url`` strictly: an allowed scheme, a host :func:`parse_host` accepts, a port; no whitespace."""
    allowed = tuple(schemes)
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
        raise InvalidInput("URLs may not contain whitespace, control characters or backslashes", code=code)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"not a valid URL: {exc}", code=code) from None
    scheme = parts.scheme.lower()
    if scheme not in allowed:
        raise InvalidInput(f"unsupported URL scheme {scheme!r}; use one of {list(allowed)}", code=code)
    netloc = parts.netloc.rpartition("@")[2]
    raw_host = netloc
    if netloc.startswith("["):
        raw_host = netloc[: netloc.find("]") + 1]
    elif ":" in netloc:
        raw_host = netloc.rsplit(":", 1)[0]
    if not raw_host:
        raise InvalidInput("the URL has no host", code=code)
    try:
        host = parse_host(raw_host)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, code=code) from None
    if port is None:
        port = DEFAULT_PORTS.get(scheme, 0)
    if not 0 < port < 65536:
        raise InvalidInput("the URL's port is out of range", code=code)
    return Target(url=url, scheme=scheme, host=host, port=port, parts=parts)


# -- resolving --------------------------------------------------------------------------------------
def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host`` (TCP), in its order. Tests replace this."""
    out: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses may be connected to. Build it with :meth:`from_settings` or :meth:`parse`."""

    hosts: frozenset[str] = frozenset()  # exact names, lower-case ASCII
    suffixes: tuple[str, ...] = ()  # from "*.example.com": any name ending in ".example.com"
    networks: tuple[IPNetwork, ...] = ()
    deny_by_default: bool = False  # refuse public addresses that are not listed too
    #: None: the module's :func:`resolve`, looked up at each call (tests patch it to simulate rebinding)
    resolver: Callable[[str, int], list[IPAddress]] | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, allow: str, default: str = "public") -> EgressPolicy:
        """``allow``: comma-separated host names (``*.example.com`` for subdomains), addresses and CIDRs."""
        if default not in ("public", "deny"):
            raise ConfigError(
                f"SAFEGUARD_EGRESS_DEFAULT must be public or deny, not {default!r}", code="invalid_setting"
            )
        hosts: set[str] = set()
        suffixes: list[str] = []
        nets: list[IPNetwork] = []
        for item in (x.strip() for x in allow.split(",")):
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            wildcard = item.startswith("*.")
            try:
                got = parse_host(item[2:] if wildcard else item)
            except InvalidInput:
                raise ConfigError(
                    f"{ALLOW_SETTING}: {item!r} is not a host name, an address or a CIDR", code="invalid_setting"
                ) from None
            if not isinstance(got, str):
                nets.append(ipaddress.ip_network(got))
            elif wildcard:
                suffixes.append("." + got)
            else:
                hosts.add(got)
        return cls(frozenset(hosts), tuple(suffixes), tuple(nets), default == "deny")

    @classmethod
    def from_settings(cls, settings: Any) -> EgressPolicy:
        return cls.parse(settings.egress_allow, settings.egress_default)

    def with_resolver(self, resolver: Callable[[str, int], list[IPAddress]]) -> EgressPolicy:
        return EgressPolicy(self.hosts, self.suffixes, self.networks, self.deny_by_default, resolver)

    # -- the decision -------------------------------------------------------------------------------
    def host_listed(self, name: str) -> bool:
        return name in self.hosts or any(name.endswith(s) for s in self.suffixes)

    def refusal(self, ip: IPAddress, name: str | None = None) -> str | None:
        """Why a connection to ``ip`` (for host ``name``) is refused, or None when it is allowed."""
        exact = any(n.num_addresses == 1 and ip in n for n in self.networks if n.version == ip.version)
        if exact:
            return None
        of = f"address {ip}" + (f" of host {name}" if name else "")
        if ip in METADATA:
            return f"{of} is {METADATA[ip]} and is allowed only when listed itself in {ALLOW_SETTING}"
        if (name is not None and self.host_listed(name)) or any(
            ip in n for n in self.networks if n.version == ip.version
        ):
            return None
        rng = special_range(ip)
        if rng is not None:
            article = "an" if rng[0].lower() in "aeiou" else "a"
            return f"{of} is in {article} {rng} range and not in {ALLOW_SETTING}"
        if self.deny_by_default:
            return f"{of} is not in {ALLOW_SETTING} (SAFEGUARD_EGRESS_DEFAULT=deny)"
        return None

    def check_address(self, ip: IPAddress, name: str | None = None) -> None:
        why = self.refusal(ip, name)
        if why is not None:
            raise EgressRefused(why, details={"address": str(ip), "host": name or str(ip)})

    def pin(self, host: str | IPAddress, port: int) -> list[IPAddress]:
        """Resolve ``host`` once and check every address; return them (connect to these, not to the name).

        Raises :class:`EgressRefused` when any address is refused, and ``OSError`` when the name does
        not resolve (a network failure like any other).
        """
        if not isinstance(host, str):
            self.check_address(host)
            return [host]
        if self.deny_by_default and not self.host_listed(host) and not self.networks:
            raise EgressRefused(
                f"host {host} is not in {ALLOW_SETTING} (SAFEGUARD_EGRESS_DEFAULT=deny)", details={"host": host}
            )
        addrs = (self.resolver or resolve)(host, port)
        if not addrs:
            raise OSError(f"no address for {host}")
        for ip in addrs:
            self.check_address(ip, host)
        return addrs

    def check_target(self, target: Target, *, resolve_names: bool = True) -> None:
        """Registration-time check: addresses refused now are refused at once (connect time checks again).

        A name that does not resolve now is let through: it fails at connect time like any unreachable
        source, so registration does not tell a caller which internal names exist.
        """
        if not isinstance(target.host, str):
            self.check_address(target.host)
            return
        if not resolve_names:
            return
        try:
            self.pin(target.host, target.port)
        except OSError:
            return


# -- httpx ------------------------------------------------------------------------------------------
class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's network backend with the policy in front: resolve, check, connect to the checked address."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            parsed = parse_host(f"[{host}]" if ":" in host else host)
        except InvalidInput as exc:
            raise EgressRefused(exc.message, details={"host": host}) from None
        try:
            addrs = self.policy.pin(parsed, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for ip in addrs:
            try:
                return self.inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused("connections to Unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class CheckedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose every connection goes through the policy (no proxies from the environment)."""

    def __init__(self, policy: EgressPolicy, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        super().__init__(limits=limits, trust_env=False)
        # the one private name touched: the pool HTTPTransport builds, rebuilt with the checked backend
        # (tests/test_egress.py fails if a new httpx stops using it)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(policy),
        )


def checked_client(policy: EgressPolicy, timeout: httpx.Timeout | float) -> httpx.Client:
    """An httpx client whose connections the policy checks; it never follows redirects by itself."""
    return httpx.Client(transport=CheckedTransport(policy), timeout=timeout, follow_redirects=False, trust_env=False)


def check_webhook_url(url: str, settings: Any) -> Target:
    """Registration of a webhook endpoint: ``http(s)``, a strict host, and its addresses allowed now."""
    target = parse_url(url, ("http", "https"), code="invalid_webhook_url")
    EgressPolicy.from_settings(settings).check_target(target)
    return target
