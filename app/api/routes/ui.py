"""The dashboard: static files shipped in the package (``app/static``), served at ``/ui/``.

The page is plain HTML, CSS and JavaScript modules that call the public JSON API with the
key the user signs in with, so it can show nothing that key could not read itself. Its
responses carry a strict Content-Security-Policy: scripts, styles and requests only from
this origin, no inline script, no framing.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files that change with each release: revalidate rather than serve a stale page.
    "Cache-Control": "no-cache",
}


class DashboardFiles(StaticFiles):
    """StaticFiles that adds the security headers to every response, errors included."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui/`` (``/ui`` redirects there); mounts stay out of the
    OpenAPI schema."""

    @app.get("/ui", include_in_schema=False)
    def dashboard_redirect() -> RedirectResponse:
        response = RedirectResponse("/ui/", status_code=307)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.mount("/ui", DashboardFiles(directory=STATIC_DIR, html=True), name="ui")
