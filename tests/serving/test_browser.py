"""End to end in a real headless browser: the page, the API and a trained run together.

Drives Debian's chromium (``apt-get install -y chromium``) with Playwright; skipped when
``/usr/bin/chromium`` is absent. ``MOVIEREC_BROWSER_RUN=runs/demo`` serves that run instead of a
tiny synthetic one, and ``MOVIEREC_SCREENSHOT=docs/screenshot.png`` saves a screenshot.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from movierec.serving import create_app
from tests.serving import make_run

CHROMIUM = Path("/usr/bin/chromium")
# A user with at least ten unrated items: 196 in ml-100k; a light user of the synthetic run.
USER = "196" if os.environ.get("MOVIEREC_BROWSER_RUN") else "55"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    import uvicorn

    run = os.environ.get("MOVIEREC_BROWSER_RUN")
    run_dir = Path(run) if run else make_run(tmp_path_factory.mktemp("browser") / "run")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held by us until uvicorn takes the socket
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(run_dir), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def page(base_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def test_a_person_uses_the_page(page, base_url):
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Any 4xx/5xx the page's own requests get (a missing favicon was a 404 on every visit).
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.goto(base_url + "/")
    expect(page.get_by_test_id("model-info")).to_contain_text("users")

    # A known user: type the ID (keyboard only), see ten titles.
    page.get_by_label("User ID").fill(USER)
    page.get_by_label("User ID").press("Enter")
    recs = page.get_by_test_id("rec-item")
    expect(recs).to_have_count(10)
    expect(page.get_by_test_id("recs-status")).to_contain_text(f"Top 10 for user {USER}")
    titles = page.get_by_test_id("rec-item-title").all_inner_texts()
    assert all(t.strip() for t in titles)
    # Each recommendation says which of the user's movies it came from.
    expect(page.get_by_test_id("because")).to_have_count(10)
    assert all(
        t.startswith("because you liked ") and len(t) > len("because you liked ")
        for t in page.get_by_test_id("because").all_inner_texts()
    )

    # Click a movie: similar movies appear.
    first = titles[0]
    page.get_by_test_id("rec-item-title").first.click()
    expect(page.get_by_test_id("similar-item")).to_have_count(10)
    expect(page.get_by_test_id("similar-status")).to_contain_text(first)

    # A new visitor rates three movies found by the title search.
    page.get_by_test_id("tab-visitor").click()
    for query, stars in (("toy", "5"), ("golden", "4"), ("shorty", "2")):
        page.get_by_label("Title").fill(query)
        page.get_by_label("Title").press("Enter")
        result = page.get_by_test_id("search-result").first
        expect(result).to_contain_text(query, ignore_case=True)
        result.get_by_test_id("rating-select").select_option(stars)
        result.get_by_test_id("rate-button").click()
    expect(page.get_by_test_id("rated-item")).to_have_count(3)
    page.get_by_test_id("visitor-submit").click()
    expect(page.get_by_test_id("visitor-item")).to_have_count(10)
    expect(page.get_by_test_id("visitor-status")).to_contain_text("from 3 ratings")
    rated = " ".join(page.get_by_test_id("rated-item").all_inner_texts())
    for title in page.get_by_test_id("visitor-item-title").all_inner_texts():
        assert title not in rated

    screenshot = os.environ.get("MOVIEREC_SCREENSHOT")
    if screenshot:
        page.get_by_test_id("tab-user").click()
        page.screenshot(path=screenshot, full_page=True)
    assert errors == []


def test_the_page_fits_a_phone(page, base_url):
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(base_url + "/")
    page.get_by_label("User ID").fill(USER)
    page.get_by_role("button", name="Recommend").click()
    from playwright.sync_api import expect

    expect(page.get_by_test_id("rec-item")).to_have_count(10)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px wide)"
