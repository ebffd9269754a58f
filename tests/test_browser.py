"""Real-browser runs: Playwright drives Debian's headless Chromium through the app — an example
restored in both modes, a refused upload that clears the page, votes whose reveal sits with the
pair it describes, the leaderboard changing.

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
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PANELS = ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"]
# Every toast the page shows, as it appears (a toast that comes twice is counted twice).
WATCH_TOASTS = """() => { window.toasts = []; new MutationObserver(changes => { for (const c of changes)
    for (const n of c.addedNodes) if (n.nodeType === 1 && (n.matches(".toast-body") || n.querySelector(".toast-body")))
        window.toasts.push(n.innerText); }).observe(document.body, {childList: true, subtree: true}); }"""

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def chromium_or_skip():
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (or set REQUIRE_BROWSER=1 to make this fail)")


@pytest.fixture
def app_url(settings, tiny_models):
    from app import build_app, launch
    from restoration.arena_app import ArenaApp

    from gradio.utils import get_upload_folder

    a = ArenaApp(dataclasses.replace(settings, min_vote_seconds=0.5), tiny_models, outputs_in=get_upload_folder())
    demo = build_app(a)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(demo, a.settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    a.close()


@pytest.fixture
def page(app_url, tmp_path):
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app_url)
        yield page
        browser.close()


def shots(tmp_path) -> Path:
    return Path(os.environ.get("BROWSER_SCREENSHOTS", tmp_path))


def box(page, selector):
    return page.locator(selector).bounding_box()


def test_an_example_in_both_modes_then_a_refused_upload_clears_the_page(page, small_examples, settings, tmp_path):
    from playwright.sync_api import expect

    page.evaluate(WATCH_TOASTS)
    # An example, Degrade mode: every panel, captioned with its title and one figure above the picture.
    page.locator("button.gallery-item", has=page.locator("img[src$='noise.png']")).click()
    expect(page.locator("#upload img")).to_be_visible()
    page.locator("#run").click()
    expect(page.locator("#scores")).to_contain_text("Cross-conv U-Net")
    expect(page.locator("#scores")).to_contain_text("PSNR (dB)")
    for key in PANELS:
        expect(page.locator(f"#panel-{key} img")).to_be_visible()
    label = page.locator("#panel-unet-mse label[data-testid=block-label]")
    expect(label).to_have_text(re.compile(r"^\s*MSE U-Net · [\d.]+ dB\s*$"))
    assert box(page, "#panel-unet-mse label[data-testid=block-label]")["y"] + 20 <= box(page, "#panel-unet-mse img")["y"]
    for row in (["input", "bicubic", "original"], ["unet-mse", "unet-perceptual", "unet-crossconv"]):
        tops = {round(box(page, f"#panel-{k} img")["y"]) for k in row}
        assert len(tops) == 1, row  # the panels of a row align (the inputs and the original; a family's models)
    expect(page.locator("#scores")).not_to_contain_text("Tiny ImageNet class")  # the classifier is off
    # The zoom and the PNG downloads are made when asked for, not with every Compare.
    expect(page.locator("#zoom img")).to_have_count(0)
    expect(page.get_by_role("cell", name="noise-input.png")).to_have_count(0)
    page.locator("#zoom-in").click()
    expect(page.locator("#zoom img").first).to_be_visible()
    page.locator("#downloads").click()
    expect(page.get_by_role("cell", name="noise-input.png")).to_be_visible()
    page.screenshot(path=str(shots(tmp_path) / "compare.png"), full_page=True)

    # The same example in Upscale mode: no original, no scores, the time as the figure.
    page.get_by_label("Upscale ×2").check()
    page.locator("#run").click()
    expect(page.locator("#scores")).to_contain_text("Time (ms)")
    expect(page.locator("#scores")).not_to_contain_text("PSNR")
    expect(page.locator("#panel-original")).to_be_hidden()
    expect(label).to_have_text(re.compile(r"^\s*MSE U-Net · \d+ ms\s*$"))
    for key in PANELS[:-1]:
        expect(page.locator(f"#panel-{key} img")).to_be_visible()

    # An upload over the pixel limit: refused with one message, and nothing of the last image stays.
    too_large = tmp_path / "too large.png"
    side = int(settings.max_pixels ** 0.5) + 100
    Image.new("RGB", (side, side), (90, 120, 200)).save(too_large)
    page.get_by_label("Degrade, then restore").check()
    page.locator("#upload input[type=file]").set_input_files(str(too_large))
    page.locator("#run").click()
    page.wait_for_function("window.toasts.some(t => t.includes('megapixels'))")
    page.wait_for_timeout(1500)  # a second toast would have come by now
    assert len([t for t in page.evaluate("window.toasts") if "megapixels" in t]) == 1
    for key in PANELS:
        expect(page.locator(f"#panel-{key} img")).to_have_count(0)
    expect(page.locator("#scores")).not_to_contain_text("Cross-conv U-Net")
    expect(page.get_by_text("too large-input.png")).to_have_count(0)  # no files of its own either
    page.screenshot(path=str(shots(tmp_path) / "refused.png"), full_page=True)


def test_votes_reveal_their_pair_above_the_next_and_reach_the_leaderboard(page, settings, tmp_path):
    from playwright.sync_api import expect

    # The leaderboard before any vote: no model has a figure.
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#board-summary")).to_contain_text("0 valid votes")

    # Judge: a blind pair, a vote; the judged pair comes back, named, above the next pair.
    page.get_by_role("tab", name="Judge").click()
    expect(page.locator("#side-a img")).to_be_visible()
    expect(page.locator("#side-b img")).to_be_visible()
    expect(page.locator("#judged-a")).to_be_hidden()
    expect(page.locator("#judge-progress")).to_contain_text("Votes you have cast this session: 0")
    judged = [Path(page.locator(f"#side-{s} img").get_attribute("src")).name for s in "ab"]
    page.wait_for_timeout(800)  # more than min_vote_seconds: a human looks before voting
    fetched = []
    page.on("request", lambda r: fetched.append(Path(r.url).name))
    page.locator("#vote-A").click()
    expect(page.locator("#reveal")).to_contain_text("you said A is better")
    expect(page.locator("#reveal")).to_contain_text(re.compile(r"A was (.*U-Net|Bicubic), B was (.*U-Net|Bicubic)"))
    expect(page.locator("#judge-progress")).to_contain_text("Votes you have cast this session: 1")
    expect(page.locator("#judged-a img")).to_be_visible()
    assert [Path(page.locator(f"#judged-{s} img").get_attribute("src")).name for s in "ab"] == judged
    # ... under the URLs the page has already shown, so it does not fetch them again (the
    # benchmark's voters, bench/voter.py, count on it).
    assert not set(judged) & set(fetched) and Path(page.locator("#side-a img").get_attribute("src")).name in fetched
    assert Path(page.locator("#side-a img").get_attribute("src")).name not in judged  # a new pair
    expect(page.locator("#judged-a")).to_contain_text(re.compile(r"A: (.*U-Net|Bicubic)"))
    for thumb in ("#judged-a", "#reveal"):
        assert box(page, thumb)["y"] + box(page, thumb)["height"] <= box(page, "#side-a")["y"]  # above the pair
    page.screenshot(path=str(shots(tmp_path) / "judge.png"), full_page=True)

    # The leaderboard now counts the vote.
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#board-summary")).to_contain_text("1 valid votes")
    expect(page.locator("#ranking")).to_contain_text("MSE U-Net")
    page.screenshot(path=str(shots(tmp_path) / "leaderboard.png"), full_page=True)

    # A reload is a new session but the same judge: the browser keeps its id in localStorage.
    page.reload()
    page.get_by_role("tab", name="Judge").click()
    expect(page.locator("#judge-progress")).to_contain_text("Votes you have cast this session: 0")
    page.wait_for_timeout(800)
    page.locator("#vote-B").click()
    expect(page.locator("#reveal")).to_contain_text("you said B is better")
    db = sqlite3.connect(settings.votes_db)
    votes = db.execute("SELECT session, judge FROM votes ORDER BY id").fetchall()
    db.close()
    assert len(votes) == 2 and votes[0][0] != votes[1][0] and votes[0][1] == votes[1][1]
