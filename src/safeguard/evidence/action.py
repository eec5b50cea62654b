"""The ``preserve`` action: keep an encrypted copy of the upload in the evidence vault.

``prepare`` (in the scanning thread, once the decision is known) starts sealing the bytes into the
vault's spool in another thread; ``run`` (inside the transaction) writes the item's row, so the row
commits with the decision and its case while the file is written, and the ``action.preserve`` event
records the item's SHA-256 in the hash chain. The recorder answers only when both are done. A
hash-only scan holds no bytes: ``run`` writes a row that says so ("no bytes preserved: hash-only
scan"), which the case shows among its evidence.
"""

from __future__ import annotations

from typing import Any

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.config import Settings
from safeguard.content import Action, Content, ContentKind, Decision
from safeguard.errors import ConfigError
from safeguard.evidence.vault import HASH_ONLY_NOTE, ITEMS, STREAM_NOTE, EvidenceVault, Sealed
from safeguard.media.decode import sniff_media_type
from safeguard.store import Database
from safeguard.store.db import connection_of
from safeguard.store.driver import Prepared

_INSERT_ITEM = Prepared(ITEMS.insert())  # on the DBAPI cursor (store/driver.py)
SHARED_KEY = "evidence_vault"


class Preserve(ActionHandler):
    name = "preserve"
    rerunnable = True  # ``run`` writes one row through the session; the file is written by ``prepare``'s thread

    def __init__(self) -> None:
        self.vault: EvidenceVault | None = None

    def start(self, settings: Settings, db: Database, shared: dict[str, Any]) -> None:
        self.vault = EvidenceVault(settings, db)
        self.vault.start()  # refuses to start without a readable, matching key
        shared[SHARED_KEY] = self.vault

    def _vault(self) -> EvidenceVault:
        if self.vault is None:
            raise ConfigError("the preserve action was not started (no evidence vault)", code="config_error")
        return self.vault

    def prepare(self, action: Action, content: Content, decision: Decision) -> Any:
        if content.data is None:
            return None
        # the scan hashed the bytes already; a sha256 the platform sent is not trusted for it
        sha = None
        if not any(s.type == "sha256" for s in content.signals):
            sha = next((s.value for s in decision.signals if s.type == "sha256"), None)
        return self._vault().spool(content.data, sha256=sha)

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        vault = self._vault()
        content = ctx.content
        sealed: Sealed | None = ctx.prepared.get(self.name)
        if sealed is None and content.data is not None:  # recorded without a prepare step
            sealed = vault.seal(content.data)
        case_id = (ctx.results.get("case") or {}).get("case_id", ctx.decision.case_id)
        sha = None
        if sealed is None:
            sha = next((s.value for s in (*ctx.decision.signals, *content.signals) if s.type == "sha256"), None)
        row = vault.row(
            sealed,
            decision_id=ctx.decision.id,
            case_id=case_id,
            media_type=content.media_type or (sniff_media_type(content.data) if content.data else None),
            file_name=content.filename,
            sha256=sha,
            note=STREAM_NOTE if content.kind is ContentKind.STREAM else HASH_ONLY_NOTE,
        )
        _INSERT_ITEM.executemany(connection_of(ctx.session), [row])
        out: dict[str, Any] = {"item_id": row["id"], "preserved": sealed is not None, "sha256": row["sha256"]}
        if sealed is None:
            out["note"] = row["note"]
        else:
            out |= {"size": sealed.size, "key_id": sealed.key_id}
            if sealed.blob is not None:
                out["blob"] = sealed.blob
        return out
