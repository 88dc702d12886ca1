"""``/docs`` (Swagger UI) and ``/redoc``, from assets shipped in the package.

FastAPI's own pages load their JavaScript, CSS, favicon and fonts from CDNs, so they are
blank on a school server without Internet access. These pages load everything from
``app/static/vendor/`` (served under ``/ui/vendor/``); each vendored folder notes its
version, source and licence in ``SOURCE.txt``. A Content-Security-Policy keeps the pages
from fetching anything elsewhere: ReDoc hard-codes a logo on a CDN, which is then not
requested (ReDoc hides the image when it does not load).
"""

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse

VENDOR_URL = "/ui/vendor"
FAVICON_URL = f"{VENDOR_URL}/swagger-ui/favicon-32x32.png"
# FastAPI's pages start the viewers with an inline script (Swagger UI) and both viewers
# set inline styles; ReDoc runs its search index in a worker made from a blob.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def mount_api_docs(app: FastAPI) -> None:
    """Serve the interactive docs at ``/docs`` and ``/redoc``; the app must be created with
    ``docs_url=None, redoc_url=None`` so that FastAPI's CDN pages are not mounted too."""
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=title,
                swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=FAVICON_URL,
                # Swagger UI would otherwise show a badge fetched from validator.swagger.io.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _same_origin_only(
            get_redoc_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=title,
                redoc_js_url=f"{VENDOR_URL}/redoc/redoc.standalone.js",
                redoc_favicon_url=FAVICON_URL,
                with_google_fonts=False,
            )
        )
