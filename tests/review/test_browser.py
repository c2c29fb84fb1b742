"""The review app in a real browser: headless Chromium from the distribution's packages
(`chromium`, `chromium-driver`, installed by scripts/setup.sh), driven by Selenium.

One walk through the app: the list shows the run, the conversation page shows its issues, the
model audio plays (the media element's time advances), one issue is confirmed with the keyboard
and one rejected with the mouse, a reload finds both decisions, the XSS payloads in a word and
in a reason are shown as text and never run, and `pairs` then makes no pair from the rejected
issue. Set REVIEW_SCREENSHOT=PATH to save a screenshot of the conversation page (docs/review.png).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runfix import XSS_REASON, XSS_WORD, make_run  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="browser test needs the Debian packages chromium and chromium-driver "
           "(scripts/setup.sh installs them with apt-get); not found on PATH")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """The review app over a fresh fixture run, served by uvicorn in a thread."""
    import uvicorn

    from duplexalign.review.app import create_app

    run = make_run(tmp_path / "run")
    port = _free_port()
    app = create_app(run, reviewer="tester", port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield run, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(cond, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Rewriter:
    """The rewriter `pairs` calls for the silence (no judge wrote a reply there)."""

    def rewrite(self, context, problems, bad_reply):
        return "let me answer that properly"

    def write_reply(self, context):
        return "yes i am here"


def test_review_in_chromium(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run, base = served
    browser.get(base + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=conversation]")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == ["conv-a", "conv-b"]
    rows[0].find_element(By.TAG_NAME, "a").click()

    issues = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=issue]"))
    assert [i.get_attribute("data-issue") for i in issues] == ["a-fact", "a-tone"]
    # the user lane is transcript only: this run dropped the user audio
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=user-transcript-only]")

    # click a word: the model audio plays from there and its time advances
    word = browser.find_elements(By.CSS_SELECTOR, ".lane.model .word")[0]
    word.click()
    t0 = _wait(lambda: browser.execute_script(
        "const a = document.getElementById('audio-model');"
        "return !a.paused && a.currentTime > 3.0 ? a.currentTime : 0;"))
    _wait(lambda: browser.execute_script(
        "return document.getElementById('audio-model').currentTime") > t0 + 0.2)
    browser.execute_script("document.getElementById('audio-model').pause()")

    # the first issue is selected: confirm it with the keyboard
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("c")
    _wait(lambda: issues[0].find_element(By.CSS_SELECTOR, "[data-testid=status]").text
          == "confirm")
    # next issue with the keyboard, then reject it with the mouse, with a reason
    body.send_keys("j")
    assert "selected" in issues[1].get_attribute("class")
    issues[1].find_element(By.CSS_SELECTOR, ".reject-reason").send_keys("tone is fine")
    issues[1].find_element(By.CSS_SELECTOR, "[data-testid=reject]").click()
    _wait(lambda: issues[1].find_element(By.CSS_SELECTOR, "[data-testid=status]").text
          == "reject: tone is fine")
    if os.environ.get("REVIEW_SCREENSHOT"):
        browser.save_screenshot(os.environ["REVIEW_SCREENSHOT"])

    browser.refresh()
    issues = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=issue]"))
    assert [i.find_element(By.CSS_SELECTOR, "[data-testid=status]").text for i in issues] == \
        ["confirm", "reject: tone is fine"]

    # the payloads are text on the page, and none of them ran
    words = [w.get_attribute("textContent") for w in
             browser.find_elements(By.CSS_SELECTOR, ".lane.model .word")]
    assert XSS_WORD in words
    assert XSS_REASON in issues[1].find_element(By.CSS_SELECTOR, ".reason").text
    assert browser.execute_script("return window.__xss === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, ".timeline img, .issues script")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ESCAPE)

    # the rejected issue makes no pair; the confirmed one does
    from duplexalign.manifest import read_manifest
    from duplexalign.pairs.config import PairsConfig
    from duplexalign.pairs.stage import run as run_pairs
    from duplexalign.records import PreferencePair

    stats = run_pairs(PairsConfig(), run, rewriter=Rewriter())
    made = {i for p in read_manifest(run / "pairs.jsonl.gz", PreferencePair) for i in p.issue_ids}
    assert "a-fact" in made and "a-tone" not in made
    assert stats.counts["dropped/review_rejected"] == 1
