"""Real-browser runs: Playwright drives Debian's headless Chromium through the app — an example
restored in both modes, a refused upload that clears the page, votes whose reveal sits with the
pair it describes, the leaderboard changing; and, 1280 pixels wide, photo pairs shown at their own
pixels (thumbnails at an integer zoom), a leaderboard per family whose counts add up, nothing
wider than the page.

Skipped when /usr/bin/chromium is missing, unless REQUIRE_BROWSER=1 (CI sets it), which makes a
missing browser a failure.
"""

import dataclasses
import os
import re
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from tests.support import free_port, make_two_family_weights, write_photos

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


def served(a):
    """The app `a` served on a free loopback port: yields its URL, then stops it and `a`."""
    from app import build_app, launch

    demo = build_app(a)
    port = free_port()
    launch(demo, a.settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    a.close()


def browsing(url, width):
    """A Chromium page at `url`, `width` pixels wide."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        yield page
        browser.close()


@pytest.fixture
def app_url(settings, tiny_models):
    from gradio.utils import get_upload_folder

    from restoration.arena.app_state import ArenaApp

    yield from served(ArenaApp(dataclasses.replace(settings, min_vote_seconds=0.5), tiny_models,
                               outputs_in=get_upload_folder()))


@pytest.fixture
def page(app_url, tmp_path):
    yield from browsing(app_url, 1400)


@pytest.fixture
def two_family_app(settings, tmp_path):
    """Both families (tiny U-Nets), photos to cut the photo family's scenes from, default shares."""
    import time

    from gradio.utils import get_upload_folder

    from restoration.arena.app_state import ArenaApp
    from restoration.arena.leaderboard import FlagRules
    from restoration.hub.catalogue import load_available_restorers

    models, problems = load_available_restorers(make_two_family_weights(tmp_path / "weights"))
    assert not problems
    a = ArenaApp(dataclasses.replace(settings, weights_dir=tmp_path / "weights", min_vote_seconds=0.5,
                                     photo_val_dir=write_photos(tmp_path / "photos", 8)), models,
                 outputs_in=get_upload_folder())
    a.flag_rules = FlagRules(fast_seconds=0.5)  # the test votes faster than a person: not flagged for that
    deadline = time.monotonic() + 120
    while (a.scenes.ready("photo") < 4 or a.scenes.ready("lesson") < 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    return a


@pytest.fixture
def wide_page(two_family_app):
    """The two-family app in a Chromium page 1280 pixels wide."""
    for url in served(two_family_app):
        yield from browsing(url, 1280)


def shots(tmp_path) -> Path:
    return Path(os.environ.get("BROWSER_SCREENSHOTS", tmp_path))


def box(page, selector):
    return page.locator(selector).bounding_box()


def blank_under(page, panel) -> float:
    """The height of `panel` that neither its caption nor its picture fills (a picture fitted
    into its box, object-fit: contain, is shown smaller than the box)."""
    shown = page.locator(f"{panel} img").evaluate(
        "i => Math.min(i.getBoundingClientRect().height, i.getBoundingClientRect().width * i.naturalHeight / i.naturalWidth)")
    return box(page, panel)["height"] - shown


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
    for key in PANELS:
        assert blank_under(page, f"#panel-{key}") < 45, key
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
    page.wait_for_timeout(500)  # the last picture laid out
    for key in PANELS[:-1]:  # each panel as tall as its caption and picture: no blank band under it
        assert blank_under(page, f"#panel-{key}") < 45, key

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


def test_a_file_that_is_no_image_is_taken_off_the_input_with_one_message(page, tmp_path, capfd, caplog):
    from playwright.sync_api import expect

    caplog.set_level("INFO", logger="app")
    page.evaluate(WATCH_TOASTS)
    text = tmp_path / "notes.png"  # a text file renamed .png
    text.write_text("not an image\n")
    page.locator("#upload input[type=file]").set_input_files(str(text))
    page.wait_for_function("window.toasts.some(t => t.includes('notes.png is not an image'))")
    expect(page.locator("#upload img")).to_have_count(0)  # no broken picture left on the input
    page.locator("#run").click()
    page.wait_for_function("window.toasts.some(t => t.includes('Upload an image'))")
    out, err = capfd.readouterr()
    assert "notes.png" not in out + err  # no traceback, no warning of Gradio's: only our one line
    assert [r.getMessage() for r in caplog.records if "notes.png" in r.getMessage()] == [
        "refused: notes.png is not an image that can be read (PNG, JPEG, WebP, GIF, BMP, TIFF, ...)"]


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


# Each picture of the pair on screen: [id, natural width, natural height, displayed width, displayed height].
PAIR_SIZES = """() => ['judge-low', 'side-a', 'side-b'].map(id => {
    const img = document.querySelector('#' + id + ' img'), r = img.getBoundingClientRect();
    return [id, img.naturalWidth, img.naturalHeight, r.width, r.height]; })"""
PAIR_LOADED = """previous => { const imgs = ['judge-low', 'side-a', 'side-b'].map(id => document.querySelector('#' + id + ' img'));
    return imgs.every(i => i && i.complete && i.naturalWidth > 0) && imgs[1].src !== previous; }"""


def integer_zoom(natural_w, natural_h, shown_w, shown_h) -> int:
    """The whole number a picture is enlarged by on screen; fails if it is resampled otherwise."""
    zoom = round(shown_w / natural_w)
    assert zoom >= 1 and abs(shown_w - zoom * natural_w) < 0.01 and abs(shown_h - zoom * natural_h) < 0.01, \
        (natural_w, natural_h, shown_w, shown_h)
    return zoom


def test_photo_pairs_at_their_own_pixels_and_a_board_per_family_whose_counts_add_up(wide_page, two_family_app,
                                                                                     tmp_path):
    """20 judged pairs of the photo family: each restoration at least 320 pixels on its long side and
    shown 1:1 (a thumbnail pair at 4× or 5×, never resampled otherwise), the input at the same
    scale, fullscreen at a larger whole-number zoom; nothing wider than 1280 pixels; then each
    family's leaderboard counts exactly the votes on its pairs."""
    from playwright.sync_api import expect

    page, app = wide_page, two_family_app
    page.get_by_role("tab", name="Judge").click()
    expect(page.locator("#judge-help")).to_contain_text("1:1")
    previous, photo_pairs, thumbnail_pairs, answers = "", 0, 0, ["A", "B", "tie", "both_bad"]
    while photo_pairs < 20:
        assert photo_pairs + thumbnail_pairs < 40, "too few photo pairs"
        page.wait_for_function(PAIR_LOADED, arg=previous)
        previous = page.locator("#side-a img").get_attribute("src")
        (_, lw, lh, lsw, lsh), (_, aw, ah, asw, ash), (_, bw, bh, bsw, bsh) = page.evaluate(PAIR_SIZES)
        zoom = integer_zoom(aw, ah, asw, ash)
        assert integer_zoom(bw, bh, bsw, bsh) == zoom and (aw, ah) == (bw, bh)
        assert integer_zoom(lw, lh, lsw, lsh) == 2 * zoom and (2 * lw, 2 * lh) == (aw, ah)  # the same scale
        if max(aw, ah) >= 320:  # a photo crop: its own pixels
            assert zoom == 1
            expect(page.locator("#side-a")).to_contain_text("1:1")
            if photo_pairs == 0:  # fullscreen: the largest whole-number zoom that fits the window
                page.locator("#side-a").hover()
                page.locator("#side-a button[aria-label=Fullscreen]").click()
                page.wait_for_function("document.querySelector('#side-a').classList.contains('fullscreen')")
                page.wait_for_timeout(500)
                (_, _, _, fw, fh), *_ = page.evaluate(PAIR_SIZES.replace("'judge-low', ", ""))
                assert integer_zoom(aw, ah, fw, fh) == min(1280 // aw, (1000 - 60) // ah) > 1
                page.screenshot(path=str(shots(tmp_path) / "judge-fullscreen.png"))
                page.locator("#side-a button[aria-label*=ullscreen]").click()
                page.wait_for_function("!document.querySelector('#side-a').classList.contains('fullscreen')")
            photo_pairs += 1
        else:  # a thumbnail, enlarged 4× or 5× with its pixels as squares
            assert zoom in (4, 5) and max(aw, ah) * zoom >= 320
            expect(page.locator("#side-a")).to_contain_text(f"{zoom}×")
            thumbnail_pairs += 1
        assert page.evaluate("getComputedStyle(document.querySelector('#side-a img')).imageRendering") == "pixelated"
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.wait_for_timeout(600)  # more than min_vote_seconds
        page.locator(f"#vote-{answers[(photo_pairs + thumbnail_pairs) % 4]}").click()
    page.wait_for_function(PAIR_LOADED, arg=previous)
    assert 0 < thumbnail_pairs <= photo_pairs // 2  # photos in 3 of 4 pairs, within one or two
    db = sqlite3.connect(app.settings.votes_db)
    votes = db.execute("SELECT family, image, crop FROM votes").fetchall()
    db.close()
    assert sum(f == "photo" for f, _, _ in votes) == photo_pairs and len(votes) == photo_pairs + thumbnail_pairs
    for family, image, crop in votes:  # each vote keeps its scene: photo crops of photos
        left, top, right, bottom = map(int, crop.split())
        assert image.startswith("photos/") == (family == "photo") and (max(right - left, bottom - top) >= 320) == (
            family == "photo")

    # Each family's board counts the votes on its own pairs, and the counts add up.
    page.get_by_role("tab", name="Leaderboard").click()
    for family, title, judged_pairs in (("photo", "Photos", photo_pairs), ("lesson", "Tiny ImageNet", thumbnail_pairs)):
        if family == "lesson":
            page.locator("#board-family").get_by_label(re.compile("Tiny ImageNet")).check()
        summary = page.locator("#board-summary")
        expect(summary).to_contain_text(f"{judged_pairs} votes on this family's pairs")
        text = summary.inner_text()
        valid, left_out = map(int, re.search(r"(\d+) valid \+ (\d+) left out", text).groups())
        assert valid + left_out == judged_pairs and re.search(r"^(\d+) valid votes", text).group(1) == str(valid)
        assert valid > 0 and left_out == 0  # its answers vary, at a pace the rules take for a person's
        by_degradation = re.search(r"Valid votes by degradation: (.*) \(together (\d+)\)", text)
        assert sum(int(n) for n in re.findall(r": (\d+)", by_degradation.group(1))) == int(by_degradation.group(2)) \
            == valid
        votes_column = page.locator("#ranking [role=gridcell][data-col='4']").all_inner_texts()
        assert sum(int(v) for v in votes_column) == 2 * valid
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        if family == "photo":
            headers = page.locator("#ranking thead th").all_inner_texts()
            assert any("Grid" in h for h in headers) and any("Flat" in h for h in headers)
            page.locator("#win-rates-toggle").get_by_text("Win rates").click()
            expect(page.locator("#win-rates")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            page.screenshot(path=str(shots(tmp_path) / "leaderboard-photos.png"), full_page=True)
