"""The moderator console in the browser (``/console``): see app.py; the rules live in service.py."""

from safeguard.web import reports as _reports  # noqa: F401  (adds the law-enforcement report pages)
from safeguard.web import sharing as _sharing  # noqa: F401  (adds the Sharing page)
from safeguard.web.app import extra_routers, install, router
from safeguard.web.service import ConsoleService, render_image

__all__ = ["ConsoleService", "extra_routers", "install", "render_image", "router"]
