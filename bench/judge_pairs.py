"""What a judge is shown: 40 consecutive pairs through the app's API, with the default settings.

    python -m bench.judge_pairs                 # 40 pairs
    python -m bench.judge_pairs --pairs 80

It starts `python app.py` as it ships (every setting at its default but the vote store, a file of
its own; bench/abuse.py's RunningApp), waits until the scene pool has said it is full (the line
"scene pool: 12 scenes ready (...)"), then one judge (bench/voter.py: a page with its own browser
id) asks `/judge` for `--pairs` pairs in a row, as fast as the app answers (the worst case for
repeats: no render comes in between). Each pair's scene (family, image, crop) is read from the vote
store's live pair, its restorations from the files the API served. Figures: the photo-family
pairs, the smallest long side of their restorations, whether each came from a photo, and the
scenes seen twice within 10 pairs in a row. The issue-29 bar: at least 25 of 40 photo pairs,
every one at least 320 pixels from a photo, no repeat. Not a test: it prints figures, as JSON.
"""

import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.abuse import REPO, RunningApp
from bench.voter import VoterClient
from restoration.cli import parser
from restoration.settings import Settings

JUDGE_OUTPUTS = ("low", "original", "side_a", "side_b", "reveal", "progress", "judged_a", "judged_b")  # not states


def wait_for_full_pool(app: RunningApp, timeout: float) -> float | None:
    """Seconds until the app said its scene pool is full, or None."""
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline and app.proc.poll() is None:
        if "scene pool:" in (app.work / "app.log").read_text(errors="replace"):
            return time.monotonic() - started
        time.sleep(1)
    return None


def main(argv=None):
    p = parser("python -m bench.judge_pairs", __doc__)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--pool-timeout", type=float, default=900.0, help="seconds to wait for the scene pool")
    args = p.parse_args(argv)
    from restoration.arena.scene_crops import is_photo  # after parse_args: --help needs no torch
    from restoration.arena.scenes import RECENT_PAIRS, scene_images

    images = scene_images(Settings())  # the app's scene images, with its default settings: id → file
    with tempfile.TemporaryDirectory(prefix="judge-pairs-") as work:
        app = RunningApp(REPO, Path(work), ready_timeout=600)
        try:
            filled = wait_for_full_pool(app, args.pool_timeout)
            if filled is None:
                sys.exit(f"the scene pool did not fill within {args.pool_timeout:.0f} s; see the app's log")
            log = (app.work / "app.log").read_text(errors="replace")
            pool_line = next(line for line in log.splitlines() if line.startswith("scene pool:"))
            judge = VoterClient(app.url)
            pairs, started = [], time.monotonic()
            for _ in range(args.pairs):
                out = dict(zip(JUDGE_OUTPUTS, judge.predict(api_name="/judge")))
                db = sqlite3.connect(app.db)
                (family, image, crop), = db.execute("SELECT family, image, crop FROM live_pairs").fetchall()
                db.close()
                with Image.open(out["side_a"]) as a, Image.open(out["side_b"]) as b:
                    sides = max(*a.size, *b.size), min(max(a.size), max(b.size))
                with Image.open(images[image]) as im:
                    from_photo = is_photo(im.size)
                pairs.append({"family": family, "image": image, "crop": crop, "long_side": sides[1],
                              "from_photo": from_photo})
            seconds = time.monotonic() - started
            judge.close()
        finally:
            app.stop()
    photo = [q for q in pairs if q["family"] == "photo"]
    keys = [(q["image"], q["crop"]) for q in pairs]
    repeats = [i for i in range(len(keys)) if keys[i] in keys[max(0, i - RECENT_PAIRS + 1):i]]
    report = {
        "pairs": len(pairs), "seconds": round(seconds, 1), "pool_full_after_s": round(filled), "pool": pool_line,
        "photo_pairs": len(photo), "lesson_pairs": sum(q["family"] == "lesson" for q in pairs),
        "photo_smallest_long_side": min((q["long_side"] for q in photo), default=None),
        "photo_pairs_from_photos": sum(q["from_photo"] for q in photo),
        "lesson_pairs_from_thumbnails": sum(not q["from_photo"] for q in pairs if q["family"] == "lesson"),
        "distinct_scenes": len(set(keys)), f"repeats_within_{RECENT_PAIRS}_pairs": len(repeats),
        "bar_met": (len(photo) >= 25 * len(pairs) / 40 and all(q["long_side"] >= 320 and q["from_photo"] for q in photo)
                    and not repeats),
        "sequence": [f"{q['family']}:{q['image']}@{q['crop']}" for q in pairs],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
