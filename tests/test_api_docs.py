"""/docs and /redoc work on a server without Internet access: every asset they load is
served by gradecast itself (app/static/vendor/), and a browser with the network cut renders
both."""

import re
from html.parser import HTMLParser

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect

from tests.conftest import LiveServer
from tests.test_ui_browser import browser, ui_server  # noqa: F401  (fixtures)

DOC_PAGES = ("/docs", "/redoc")


class _References(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("path", DOC_PAGES)
def test_docs_pages_reference_no_outside_url(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    # Not only src and href: a URL in the inline script (a validator, a font) counts too.
    assert re.findall(r"(?:https?:)?//[\w.-]+", response.text) == []
    parser = _References()
    parser.feed(response.text)
    assert len(parser.urls) >= 2
    for url in parser.urls:
        asset = anonymous.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


def test_docs_render_with_the_network_cut(
    browser: Browser,  # noqa: F811
    ui_server: LiveServer,  # noqa: F811
) -> None:
    outside: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(ui_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context = browser.new_context()
    context.route("**/*", only_the_server)
    page = context.new_page()
    page.goto(f"{ui_server.url}/docs")
    # Swagger UI has drawn the operations of the schema it fetched from /openapi.json.
    expect(page.locator(".opblock-summary-path", has_text="/predict").first).to_be_visible()
    page.goto(f"{ui_server.url}/redoc")
    # ReDoc has drawn the schema: its title, and the operations in its menu.
    expect(page.get_by_role("heading", name="gradecast (0.1.0)")).to_be_visible()
    expect(page.get_by_role("menuitem", name="predict")).to_be_visible()
    context.close()
    assert outside == []
