"""Uploaded files are closed when the request is done, not when the garbage collector gets to them.

Starlette spools each multipart file to a temporary file; a route that reads ``request.form()`` without
closing it leaves one open file per recent upload (a ``ResourceWarning`` when it is finally collected).
"""

from __future__ import annotations

import gc
import warnings

from fastapi.testclient import TestClient

from tests.helpers.api import auth, make_bank_with
from tests.media_factory import image_bytes


def _unclosed_after(fn: object) -> list[str]:
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()  # type: ignore[operator]
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_scan_bank_and_user_report_uploads_close_their_files(app_client: TestClient, keys: dict[str, str]) -> None:
    data = image_bytes(5)

    def calls() -> None:
        make_bank_with(app_client, keys, data)
        for _ in range(3):
            r = app_client.post(
                "/v1/scan",
                headers=auth(keys["platform"]),
                files={"file": ("x.jpg", data, "image/jpeg")},
                data={"content_id": "c-1", "user_id": "u-1"},
            )
            assert r.status_code == 200, r.text
        r = app_client.post(
            "/v1/user-reports",
            headers=auth(keys["platform"]),
            files={"file": ("x.jpg", data, "image/jpeg")},
            data={"reporter_id": "r-1", "reason": "other"},
        )
        assert r.status_code in (200, 201), r.text

    assert _unclosed_after(calls) == []
