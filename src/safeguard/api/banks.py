"""Banks and their entries: create, configure, fill (hashes, files, hash lists), export, opinions."""

from __future__ import annotations

import io
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safeguard import registry
from safeguard.api.deps import Services, require, services
from safeguard.api.jsonbody import inline_schema, json_body
from safeguard.api.multipart import read_upload
from safeguard.api.params import AfterId, PathId
from safeguard.banks.sources.base import HashListFormat, signal_rows
from safeguard.errors import InvalidInput
from safeguard.keys import Principal
from safeguard.signals import compute_signals

router = APIRouter(prefix="/v1", tags=["banks"])
READERS = ("moderator", "auditor")


class BankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100)
    kind: Literal["csam", "ncii", "terror", "other", "negative"] = "csam"
    description: str = Field(default="", max_length=10_000)
    default_category: str | None = Field(default=None, max_length=64)
    thresholds: dict[str, int] = Field(default_factory=dict)
    review_thresholds: dict[str, int] = Field(default_factory=dict)
    dihedral: bool = False
    shareable: bool = False


class BankPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(default=None, max_length=10_000)
    kind: Literal["csam", "ncii", "terror", "other", "negative"] | None = None
    default_category: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    shareable: bool | None = None
    dihedral: bool | None = None
    thresholds: dict[str, int] | None = None
    review_thresholds: dict[str, int] | None = None


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signal_type: str = Field(max_length=32)
    value: str = Field(max_length=512)
    category: str | None = Field(default=None, max_length=64)
    source: str = Field(default="", max_length=200)
    provenance: dict[str, Any] = Field(default_factory=dict)


class EntryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool
    reason: str = Field(default="", max_length=2000)


class OpinionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opinion: Literal["confirmed", "disputed", "none"]
    note: str = Field(default="", max_length=10_000)


@router.get("/banks")
def list_banks(svc: Services = Depends(services), _: Principal = Depends(require(*READERS))) -> dict[str, Any]:
    return {"banks": [b.to_dict() for b in svc.banks.list_banks()]}


@router.post("/banks", status_code=201)
def create_bank(body: BankIn, svc: Services = Depends(services), who: Principal = Depends(require())) -> dict[str, Any]:
    return svc.banks.create(
        body.name,
        actor=who.actor,
        kind=body.kind,
        description=body.description,
        default_category=body.default_category,
        thresholds=body.thresholds,
        review_thresholds=body.review_thresholds,
        dihedral=body.dihedral,
        shareable=body.shareable,
    ).to_dict()


@router.get("/banks/{bank}")
def get_bank(bank: str, svc: Services = Depends(services), _: Principal = Depends(require(*READERS))) -> dict[str, Any]:
    return svc.banks.describe(bank).to_dict()


@router.patch("/banks/{bank}")
def patch_bank(
    bank: str, body: BankPatch, svc: Services = Depends(services), who: Principal = Depends(require())
) -> dict[str, Any]:
    return svc.banks.update(bank, actor=who.actor, **body.model_dump(exclude_none=True)).to_dict()


@router.get("/banks/{bank}/entries")
def list_entries(
    bank: str,
    after_id: AfterId = 0,
    limit: int = Query(100, ge=1, le=1000),
    svc: Services = Depends(services),
    _: Principal = Depends(require(*READERS)),
) -> dict[str, Any]:
    entries = svc.banks.list_entries(bank, limit=limit, after_id=after_id)
    return {
        "entries": [e.to_dict() for e in entries],
        "next_after_id": entries[-1].id if len(entries) == limit else None,
    }


ENTRY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_schema(EntryIn)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, "category": {"type": "string"}},
                }
            },
        },
    }
}
IMPORT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


@router.post("/banks/{bank}/entries", status_code=201, openapi_extra=ENTRY_OPENAPI)
async def add_entries(
    bank: str, request: Request, svc: Services = Depends(services), who: Principal = Depends(require("moderator"))
) -> dict[str, Any]:
    """JSON: one entry (signal_type, value, ...). Multipart: a ``file`` to hash; every signal it yields is added."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        upload = await read_upload(
            request, limit=svc.engine.settings.max_upload_bytes, require_file="multipart body needs a 'file' field"
        )
        data = upload.data or b""
        category = upload.text("category", 64)
        media = svc.engine.media_for(data, upload.content_type, reference=True)
        sigs = await run_in_threadpool(compute_signals, media)
        rows = signal_rows(sigs, category=category, source="upload", provenance={"filename": upload.filename or ""})
        res = await run_in_threadpool(lambda: svc.banks.import_rows(bank, rows, actor=who.actor, source="upload"))
        return {"added": [s.to_dict() for s in sigs], "result": res.to_dict()}
    body = EntryIn.model_validate(await json_body(request))
    return await run_in_threadpool(
        lambda: svc.banks.add_entry(
            bank,
            signal_type=body.signal_type,
            value=body.value,
            actor=who.actor,
            category=body.category,
            source=body.source,
            provenance=body.provenance,
        ).to_dict()
    )


def _format(name: str) -> HashListFormat:
    fmt = registry.sources.get(name)()
    assert isinstance(fmt, HashListFormat)
    return fmt


@router.post("/banks/{bank}/import", openapi_extra=IMPORT_OPENAPI)
async def import_list(
    bank: str,
    request: Request,
    format: str = Query("csv", description="csv or jsonl"),
    source: str = Query("", max_length=200),
    svc: Services = Depends(services),
    who: Principal = Depends(require()),
) -> dict[str, Any]:
    """The request body is the hash list itself (text/csv or application/x-ndjson)."""
    fmt = _format(format)
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("hash list is not valid UTF-8", code="invalid_encoding") from exc
    res = await run_in_threadpool(
        lambda: svc.banks.import_rows(bank, fmt.parse(io.StringIO(text)), actor=who.actor, source=source)
    )
    return res.to_dict()


@router.get("/banks/{bank}/export")
def export_bank(
    bank: str,
    format: str = Query("jsonl", description="csv or jsonl"),
    include_disabled: bool = False,
    svc: Services = Depends(services),
    _: Principal = Depends(require(*READERS)),
) -> StreamingResponse:
    fmt = _format(format)
    svc.banks.describe(bank)  # 404 before streaming starts

    def gen() -> Any:
        buf = io.StringIO()
        fmt.write(svc.banks.export(bank, include_disabled=include_disabled), buf)
        yield buf.getvalue()

    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        gen(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{bank}.{format}"'}
    )


@router.get("/entries/{entry_id}")
def get_entry(
    entry_id: PathId, svc: Services = Depends(services), _: Principal = Depends(require(*READERS))
) -> dict[str, Any]:
    return svc.banks.get_entry(entry_id).to_dict()


@router.patch("/entries/{entry_id}")
def patch_entry(
    entry_id: PathId,
    body: EntryPatch,
    svc: Services = Depends(services),
    who: Principal = Depends(require("moderator")),
) -> dict[str, Any]:
    return svc.banks.set_enabled(entry_id, body.enabled, actor=who.actor, reason=body.reason).to_dict()


@router.post("/entries/{entry_id}/opinions", status_code=201)
def add_opinion(
    entry_id: PathId, body: OpinionIn, svc: Services = Depends(services), who: Principal = Depends(require("moderator"))
) -> dict[str, Any]:
    return svc.banks.add_opinion(entry_id, body.opinion, actor=who.actor, note=body.note).to_dict()
