"""Screenshots of the Compare tab for the README, and of the Judge and the Leaderboard for
docs/arena.md, from the shipped weights and the scene images this machine has (examples, the val
photos, Tiny ImageNet val), in Chromium 1280 pixels wide.

    python -m docs.make_screenshots            # → docs/screenshot-compare.png, -judge-photo.png,
                                               #   -judge-thumbnail.png, -leaderboard.png

The app runs in-process with its default settings, except a throwaway vote store and the fast path
off (the pictures are the same; it only saves the compile). It first restores the astronaut
example in Compare (its defaults: degrade, then restore; the photo family). Then it judges as a person would
not: it votes A, B, tie, both bad in turn, 3.2 s after each pair appears (under the cap of 20 votes
a minute), until it has shown a photo pair and a thumbnail pair and cast `--votes` votes; the
leaderboard shown counts those votes and no others. Each shot is cut to the tab's content and
reduced to 256 colours (dithered), to keep the PNGs small.
"""

import socket
import tempfile
import time
from pathlib import Path

from PIL import Image

from restoration.cli import parser
from restoration.settings import Settings

DOCS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1280


def shrink(path: Path):
    """The PNG at `path` in 256 colours (Floyd–Steinberg dithered), saved over it."""
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    small.save(path, optimize=True)


def shot(page, path: Path, top: str | None, bottom: str):
    """A screenshot of the page from the top of `top` (None: of the page) to the bottom of `bottom`
    (CSS selectors)."""
    page.evaluate("window.scrollTo(0, 0)")  # bounding boxes are in the viewport's coordinates
    y0 = page.locator(top).bounding_box()["y"] - 16 if top else 0
    last = page.locator(bottom).bounding_box()
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": 0, "y": max(0, y0), "width": WIDTH, "height": last["y"] + last["height"] + 16 - y0})
    shrink(path)


def main(argv=None):
    p = parser("python -m docs.make_screenshots", __doc__)
    p.add_argument("--votes", type=int, default=24)
    p.add_argument("--out", type=Path, default=DOCS)
    args = p.parse_args(argv)

    from gradio.utils import get_upload_folder
    from playwright.sync_api import expect, sync_playwright

    from app import build_app, launch
    from restoration.arena.app_state import ArenaApp
    from restoration.hub.catalogue import load_available_restorers

    with tempfile.TemporaryDirectory(prefix="screenshots-") as work:
        settings = Settings.from_env(votes_db=Path(work) / "votes.db", fast=False)
        models, problems = load_available_restorers(settings.weights_dir, settings.model_source)
        app = ArenaApp(settings, models, problems, outputs_in=get_upload_folder())  # where Gradio serves files from
        deadline = time.monotonic() + 900
        while (app.scenes.ready("photo") < 3 or app.scenes.ready("lesson") < 1) and time.monotonic() < deadline:
            time.sleep(1)
        demo = build_app(app)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        launch(demo, settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("button.gallery-item", has=page.locator("img[src$='astronaut.png']")).click()
                page.locator("#run").click()
                last = [m.entry.title for m in models if m.entry.family == "photo"][-1]  # Compare's default family
                expect(page.locator("#scores")).to_contain_text(last, timeout=300_000)
                page.wait_for_timeout(2000)  # the last panel's picture loads after its row
                shot(page, args.out / "screenshot-compare.png", None, "#scores")
                page.get_by_role("tab", name="Judge").click()
                taken, answers, votes, previous = set(), ["A", "B", "tie", "both_bad"], 0, ""
                while votes < args.votes or len(taken) < 2:
                    page.wait_for_function("""previous => { const i = document.querySelector('#side-a img');
                        return i && i.complete && i.naturalWidth > 0 && i.src !== previous; }""", arg=previous)
                    previous = page.locator("#side-a img").get_attribute("src")
                    page.wait_for_timeout(3200)  # past the 2 s a vote needs, and under 20 votes a minute
                    width = page.evaluate("document.querySelector('#side-a img').naturalWidth")
                    kind = "photo" if width >= 320 else "thumbnail"
                    if kind not in taken:
                        shot(page, args.out / f"screenshot-judge-{kind}.png", "#judge-help", "#vote-A")
                        taken.add(kind)
                    page.locator(f"#vote-{answers[votes % 4]}").click()
                    votes += 1
                page.get_by_role("tab", name="Leaderboard").click()
                page.locator("#ranking [role=gridcell]").first.wait_for()
                page.wait_for_timeout(1000)
                shot(page, args.out / "screenshot-leaderboard.png", "#board-family", "#win-rates-toggle")
                browser.close()
        finally:
            demo.close()
            app.close()
    for name in ("compare", "judge-photo", "judge-thumbnail", "leaderboard"):
        path = args.out / f"screenshot-{name}.png"
        print(f"{path}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
