"""Pages tested as people use them: Debian's Chromium, driven by Playwright, against the live
server (pytest-django's `live_server`, so each test has a transactional database).

    pytestmark = pytest.mark.browser

    def test_the_admin_greets_staff(staff_page, browser_problems):
        staff_page.goto("/admin/")
        expect(staff_page.locator("#site-name")).to_have_text("chatai staff")
        assert browser_problems.collect(staff_page) == []

`page` is a fresh, logged-out browser tab on the live server (relative URLs work); `staff_page`
is one logged in as a superuser through the real admin login form. `browser_problems` records
what a person would not see but should never happen: Content-Security-Policy violations, console
errors, uncaught exceptions and failed requests.

Without /usr/bin/chromium the tests skip, unless CHATAI_REQUIRE_BROWSER=1 (CI sets it): then
they fail, so CI never passes with the browser tests silently skipped.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    sync_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STAFF_USERNAME = "browser-admin"
STAFF_PASSWORD = "browser-pass-1234"

# Runs in every document before its own scripts; the listener records each CSP violation where
# `BrowserProblems.collect` reads it.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"}` +
      ` at ${event.sourceFile || event.documentURI}:${event.lineNumber}`
  );
}, true);
"""


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium, started once for the browser tests and stopped after them.

    Package scope, not session scope, on purpose: Playwright's sync API keeps an asyncio loop
    running in this thread until it stops, and Django refuses ORM calls while a loop runs
    (SynchronousOnlyOperation). DJANGO_ALLOW_ASYNC_UNSAFE lifts that for these tests only (the
    ORM calls here are in the test's own thread, never inside the loop); every other test keeps
    the check."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
        if os.environ.get("CHATAI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CHATAI_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class BrowserProblems:
    """What went wrong in the tabs it watches: console errors, uncaught exceptions, failed
    requests (as they happen) and CSP violations (read from the page by `collect`)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.seen.append(f"uncaught: {error}"))
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

    @staticmethod
    def _is_favicon(url: str) -> bool:
        """The browser asks for /favicon.ico by itself on pages that name no icon (the admin's);
        its 404 is not the page's doing."""
        return urlsplit(url).path == "/favicon.ico"

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not self._is_favicon(message.location.get("url", "")):
            self.seen.append(f"console error: {message.text} ({message.location.get('url')})")

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 and not self._is_favicon(response.url):
            self.seen.append(f"{response.status} from {response.url}")

    def _on_request_failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # cancelled by the page going elsewhere (a click, a redirect): not a failure
        self.seen.append(f"request failed: {request.url} ({request.failure})")

    def collect(self, page: Page) -> list[str]:
        """Everything recorded since the last call, including the CSP violations of the
        document `page` shows now (call it before leaving a page)."""
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__cspViolations || []")
        page.evaluate("window.__cspViolations = []")
        problems = [f"{page.url}: CSP violation: {v}" for v in violations]
        problems += [f"{page.url}: {problem}" for problem in self.seen]
        self.seen.clear()
        return problems


@pytest.fixture
def browser_problems() -> BrowserProblems:
    return BrowserProblems()


@pytest.fixture
def page(browser: Browser, live_server, browser_problems: BrowserProblems) -> Iterator[Page]:
    """A new tab in a new browser context (no cookies) on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    browser_problems.watch(tab)
    yield tab
    context.close()


@pytest.fixture
def staff_user_in_browser(django_user_model):
    return django_user_model.objects.create_superuser(
        username=STAFF_USERNAME, email="browser-admin@example.com", password=STAFF_PASSWORD
    )


@pytest.fixture
def staff_page(page: Page, staff_user_in_browser) -> Page:
    """`page`, logged in as a superuser by filling in the admin's login form."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", STAFF_USERNAME)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page
