"""Cases for tests: the people who review them and a banked, decided-upon case."""

from __future__ import annotations

from safeguard.accounts import Who
from safeguard.banks import BankService
from safeguard.content import Content, ContentKind
from safeguard.engine import Engine
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from tests.media_factory import image_bytes

MOD = Who("user:mia", "moderator", "mia", "user", 1)


LEAD = Who("user:lea", "lead", "lea", "user", 3)


AUDITOR = Who("user:aud", "auditor", "aud", "user", 4)


def banked_case(engine: Engine, banks: BankService, seed: int = 2, user: str = "u-1") -> tuple[int, int]:
    """A csam bank with the PDQ of a generated image; scanning it opens a case. Returns (case id, entry id)."""
    if not any(b.name == "csam" for b in banks.list_banks()):
        banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(seed)
    pdq = PDQSignal().compute(Media.from_bytes(data))[0]
    entry = banks.add_entry("csam", signal_type="pdq", value=pdq.value, actor="t")
    d = engine.scan(Content(kind=ContentKind.IMAGE, data=data, content_id=f"c-{seed}", user_id=user))
    assert d.case_id is not None
    return d.case_id, entry.id
