"""One real-browser run: Playwright drives Debian's headless Chromium through the app — upload an
image, see the panels, cast a vote, see the leaderboard change.

Skipped when /usr/bin/chromium is missing, unless REQUIRE_BROWSER=1 (CI sets it), which makes a
missing browser a failure.
"""

import dataclasses
import os
import re
import socket
import sqlite3
from pathlib import Path

import pytest


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def chromium_or_skip():
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (or set REQUIRE_BROWSER=1 to make this fail)")


@pytest.fixture
def app_url(settings, tiny_models):
    from app import ArenaApp, build_app, launch

    a = ArenaApp(dataclasses.replace(settings, min_vote_seconds=0.5), tiny_models)
    demo = build_app(a)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(demo, a.settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    a.close()


def test_upload_compare_vote_and_leaderboard(app_url, small_examples, tmp_path, settings):
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("BROWSER_SCREENSHOTS", tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app_url)

        # Compare: upload an image, restore it, see every panel with its scores.
        page.locator("#upload input[type=file]").set_input_files(str(small_examples / "noise.png"))
        expect(page.locator("#upload img")).to_be_visible()
        page.locator("#run").click()
        expect(page.locator("#scores")).to_contain_text("Cross-conv U-Net")
        for key in ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"]:
            expect(page.locator(f"#panel-{key} img")).to_be_visible()
        expect(page.locator("#panel-unet-mse")).to_contain_text(re.compile(r"MSE U-Net · [\d.]+ dB · SSIM"))
        page.screenshot(path=str(shots / "compare.png"), full_page=True)

        # The leaderboard before any vote.
        page.get_by_role("tab", name="Leaderboard").click()
        expect(page.locator("#board-summary")).to_contain_text("0 valid votes")

        # Judge: a blind pair, a vote, the reveal and the next pair.
        page.get_by_role("tab", name="Judge").click()
        expect(page.locator("#side-a img")).to_be_visible()
        expect(page.locator("#side-b img")).to_be_visible()
        expect(page.locator("#judge-progress")).to_contain_text("Votes you have cast this session: 0")
        page.wait_for_timeout(800)  # more than min_vote_seconds: a human looks before voting
        page.locator("#vote-A").click()
        expect(page.locator("#reveal")).to_contain_text("You said A is better")
        expect(page.locator("#reveal")).to_contain_text(re.compile(r"A was (.*U-Net|Bicubic), B was (.*U-Net|Bicubic)"))
        expect(page.locator("#judge-progress")).to_contain_text("Votes you have cast this session: 1")
        page.screenshot(path=str(shots / "judge.png"), full_page=True)

        # The leaderboard now counts the vote.
        page.get_by_role("tab", name="Leaderboard").click()
        expect(page.locator("#board-summary")).to_contain_text("1 valid votes")
        expect(page.locator("#ranking")).to_contain_text("MSE U-Net")
        page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)

        # A reload is a new session but the same judge: the browser keeps its id in localStorage.
        page.reload()
        page.get_by_role("tab", name="Judge").click()
        expect(page.locator("#judge-progress")).to_contain_text("Votes you have cast this session: 0")
        page.wait_for_timeout(800)
        page.locator("#vote-B").click()
        expect(page.locator("#reveal")).to_contain_text("You said B is better")
        browser.close()
    db = sqlite3.connect(settings.votes_db)
    votes = db.execute("SELECT session, judge FROM votes ORDER BY id").fetchall()
    db.close()
    assert len(votes) == 2 and votes[0][0] != votes[1][0] and votes[0][1] == votes[1][1]
