"""HTTP API (FastAPI): routers per resource, API-key auth with roles, JSON errors with stable codes."""

from safeguard.api.app import create_app

__all__ = ["create_app"]
