"""DSA statements for tests: blocked scans of users in the EU and the submitter's settings."""

from __future__ import annotations

from sqlalchemy import select

from safeguard import secrets
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Statement
from tests.dsa.dsa_server import TOKEN, FakeDsa
from tests.media_factory import image_bytes


def dsa_settings(engine: Engine, fake: FakeDsa, token: str = TOKEN, **kw: object) -> Settings:
    s = engine.settings.with_(egress_allow="127.0.0.1", dsa_url=fake.url, **kw)
    return s.with_(dsa_token=secrets.seal(s, token, purpose="dsa"))


def blocks(engine: Engine, banks: BankService, n: int, territory: str = "DE") -> list[str]:
    """``n`` blocked hash-only uploads by users in ``territory``: one statement each; their decision ids."""
    pdq = csam_pdq(banks)
    return [
        engine.scan(Content(ContentKind.HASHES, signals=(Signal("pdq", pdq),), territory=territory)).id
        for _ in range(n)
    ]


def csam_pdq(banks: BankService, seed: int = 2) -> str:
    """A csam bank holding the PDQ of a generated (benign) image; returns the hash."""
    if not any(b.name == "csam" for b in banks.list_banks()):
        banks.create("csam", actor="t", default_category="A1")
    pdq = PDQSignal().compute(Media.from_bytes(image_bytes(seed)))[0].value
    banks.add_entry("csam", signal_type="pdq", value=pdq, actor="t")
    return pdq


def statements(engine: Engine) -> list[Statement]:
    with engine.db.read() as s:
        rows = list(s.execute(select(Statement).order_by(Statement.id)).scalars())
        for r in rows:
            s.expunge(r)
        return rows
