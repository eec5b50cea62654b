"""Reading a multipart upload: one ``file`` and a few text fields, bounded, and always closed.

Starlette spools uploaded files to temporary files; the form is read inside ``async with`` so they are
closed when the request has its bytes, not whenever the garbage collector runs (a busy server would
otherwise hold a file descriptor per recent upload).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request

from safeguard.errors import InvalidInput, PayloadTooLarge


@dataclass(frozen=True)
class Upload:
    """A multipart body: the ``file`` field's bytes (None when absent) and the text fields."""

    data: bytes | None
    filename: str | None = None
    content_type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def text(self, name: str, max_length: int | None = None) -> str | None:
        """A non-empty text field, or None; longer than ``max_length`` is ``invalid_field``."""
        value = self.fields.get(name) or None
        if value is not None and max_length is not None and len(value) > max_length:
            raise InvalidInput(f"{name} longer than {max_length} characters", code="invalid_field")
        return value


async def read_upload(request: Request, *, limit: int, max_fields: int = 20, require_file: str | None = None) -> Upload:
    """The body's ``file`` (at most ``limit`` bytes, else 413) and text fields; with ``require_file`` (the
    message), a body without a file is ``missing_file``."""
    async with request.form(max_files=1, max_fields=max_fields) as form:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            if require_file is not None:
                raise InvalidInput(require_file, code="missing_file")
            return Upload(None, fields=fields)
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"file over the limit of {limit} bytes", details={"max_bytes": limit})
        return Upload(data, upload.filename, upload.content_type, fields)
