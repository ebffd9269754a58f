"""The app: its handlers called as plain functions, then the real server launched in-process and
driven through gradio_client (compare, judge, vote, leaderboard, export)."""

import csv
import dataclasses
import gc
import json
import os
import signal
import struct
import subprocess
import sys
import time
import weakref
import zlib
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from PIL import Image

import app as app_module
from app import build_app, launch, served_copies
from restoration.arena.app_state import JUDGE_OUTPUTS, JUDGE_VIEW, ArenaApp, Refusal, Update, freeze_heap
from restoration.arena.scene_crops import display_zoom
from restoration.arena.store import VoteStore
from restoration.data import degrade
from restoration.hub.provenance import header_markdown
from tests.support import free_port, make_two_family_weights, make_weights_dir, write_photos

# Gradio's queue calls pandas in ways pandas 3 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture
def arena_app(settings, tiny_models):
    a = ArenaApp(settings, tiny_models)
    yield a
    a.close()


def photo(tmp_path, w=60, h=44, name="photo.png"):
    rng = np.random.default_rng(0)
    coarse = Image.fromarray((rng.random((h // 8 + 1, w // 8 + 1, 3)) * 255).astype(np.uint8))
    path = tmp_path / name
    coarse.resize((w, h), Image.Resampling.BICUBIC).save(path)
    return path


def bomb(path, side=100_000):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------ handlers


def last(outputs):
    """The final outputs of a streaming handler (a generator)."""
    *_, final = outputs
    return final


def page(steps) -> dict:
    """What the page shows once a streaming handler's steps have come: an `Update` replaces an
    output, a plain value only its value (Compare sends unchanged panels as plain values)."""
    shown = {}
    for step in steps:
        for k, v in step.items():
            before = shown.get(k)
            shown[k] = (dataclasses.replace(before, value=v) if isinstance(before, Update) and not isinstance(v, Update)
                        else v)
    return shown


def panels(arena_app, out) -> list:
    """Compare's panels, in `panel_keys` order."""
    return [out[f"panel-{k}"] for k in arena_app.panel_keys]


def test_compare_handler_gives_every_panel(arena_app, tmp_path):
    out = page(arena_app.compare({"path": str(photo(tmp_path)), "orig_name": "my photo.png"}, "degrade"))
    images, table = panels(arena_app, out), out["table"]
    assert arena_app.panel_keys == ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"]
    assert all(img.visible for img in images)
    assert images[2].label.startswith("MSE U-Net · ") and images[2].label.endswith(" dB")  # one figure
    assert images[-1].label == "Original" and "| 0." in table  # the rest (SSIM, ...) is in the table
    assert "| Bicubic |" in table and "| Cross-conv U-Net |" in table
    assert all(Image.open(img.value).format == "WEBP" for img in images)  # lossless: test_compare.py
    assert "zoom" not in out and "files" not in out  # the zoom and the PNG downloads come when asked for
    left, right = out["left"], out["right"]
    assert left.value == "bicubic" and right.value == "unet-mse" and ("Original", "original") in left.choices
    assert set(out["compared"]["files"]) == set(arena_app.panel_keys)
    assert "degrade" in arena_app.last_compare.ms and "encode: original" in arena_app.last_compare.ms
    files = arena_app.downloads(out["compared"])["files"]
    assert [f.rsplit("/", 1)[1] for f in files][:2] == ["my photo-input.png", "my photo-bicubic.png"]
    assert all(Image.open(f).format == "PNG" for f in files) and len(files) == len(arena_app.panel_keys)
    with pytest.raises(Refusal, match="Run a comparison first"):
        arena_app.downloads(None)


def test_compare_streams_panels_as_they_are_ready(arena_app, tmp_path):
    n = len(arena_app.panel_keys)
    steps = list(arena_app.compare(str(photo(tmp_path)), "degrade", "jpeg75"))
    first = panels(arena_app, steps[0])  # every panel, with its caption
    assert first[0].value and first[1].value and first[-1].value  # input, bicubic, original at once
    assert all(img.value is None and "restoring" in img.label for img in first[2:-1])
    assert "*Scoring" in steps[0]["table"] and "zoom" not in steps[0]
    so_far = [page(steps[:i + 1]) for i in range(len(steps))]
    shown = [sum(img.value is not None for img in panels(arena_app, out)) for out in so_far]
    assert shown == sorted(shown) and shown[-1] == n and len(steps) >= 2 + len(arena_app.models)
    files = [{k: img.value for k, img in zip(arena_app.panel_keys, panels(arena_app, out)) if img.value}
             for out in so_far]
    # Only a caption or visibility that changes is an Update; a panel the page already shows as it is
    # comes as its plain value (what Gradio handles cheaply), and every step sends every output.
    assert all(set(step) == set(steps[0]) for step in steps)
    updates = sum(isinstance(v, Update) for step in steps[1:-1] for k, v in step.items() if k.startswith("panel-"))
    assert updates <= 2 * (len(arena_app.models) + 1)
    assert all(isinstance(steps[-1][f"panel-{k}"], Update) for k in arena_app.panel_keys)  # the last step: whole
    assert all(a == {k: b[k] for k in a} for a, b in zip(files, files[1:]))  # each panel is written once, then kept
    assert "…" not in steps[-1]["table"] and "| Cross-conv U-Net | " in steps[-1]["table"]


def test_compare_degradation_choice_and_what_the_classifier_sees(settings, tiny_models, tmp_path):
    """The degradation picked in Compare makes the low-resolution input (a JPEG input differs from
    the lesson's); a bad name is refused clearly; with the fidelity classifier, each panel says what
    it sees."""
    from restoration.models.classifier import Classifier

    fidelity = Classifier(nfs=(8, 16, 32), nbks=(1, 1), labels=[f"thing {i}" for i in range(200)]).eval()
    a = ArenaApp(settings, tiny_models, fidelity=fidelity)
    try:
        n = len(a.panel_keys)
        lesson = page(a.compare(str(photo(tmp_path)), "degrade", "lesson"))
        jpeg = page(a.compare(str(photo(tmp_path)), "degrade", "jpeg75", True))
        inputs = [Image.open(out["panel-input"].value) for out in (lesson, jpeg)]
        assert inputs[0].tobytes() != inputs[1].tobytes()
        assert "Tiny ImageNet class" not in lesson["table"] and "“thing" not in lesson["table"]  # off unless asked
        header, _rule, *rows = jpeg["table"].splitlines()
        assert "Tiny ImageNet class (fidelity classifier)" in header and len(rows) == n
        assert all("| “thing " in row and "%" in row for row in rows)  # a class and its probability per panel
        assert all("thing" not in img.label for img in panels(a, jpeg))  # captions keep to a title and one figure
        with pytest.raises(Refusal, match="Unknown degradation"):
            next(a.compare(str(photo(tmp_path)), "degrade", "sideways"))
    finally:
        a.close()


def test_compare_clears_the_page_first_and_after_a_failure(arena_app, tmp_path, monkeypatch):
    """The Restore button first shows `cleared` (empty panels, table, files and zoom), so a refusal
    leaves nothing of the last image; a run that fails half-way ends on it too."""
    empty = arena_app.cleared()
    assert len(empty) == len(arena_app.panel_keys) + 6
    assert all(img.value is None for img in panels(arena_app, empty))
    assert [img.label for img in panels(arena_app, empty)] == [arena_app.titles[k] for k in arena_app.panel_keys]
    assert (empty["table"], empty["files"], empty["zoom"].value) == ("", None, None)
    assert empty["left"].choices == [] and empty["compared"] is None
    demo = build_app(arena_app)
    [run] = [d for d in demo.config["dependencies"] if d.get("api_name") == "compare"]
    [clear] = [d for d in demo.config["dependencies"] if d["id"] == run["trigger_after"]]
    assert run["targets"] == [(None, "then")] and clear["targets"][0][1] == "click"  # Restore: clear, then run
    assert set(run["outputs"]) < set(clear["outputs"]) and len(clear["outputs"]) - len(run["outputs"]) == 2
    assert not clear["queue"]  # the downloads and the zoom: cleared, and set only when asked for

    import restoration.arena.compare_tab as arena_module
    import restoration.inference.compare as compare_module

    def failing(*args, **kwargs):
        yield from list(compare_module.compare_stream(*args, **kwargs))[:2]
        raise ValueError("the models failed")

    monkeypatch.setattr(arena_module, "compare_stream", failing)
    steps = arena_app.compare(str(photo(tmp_path)), "degrade")
    assert next(steps)["panel-input"].value  # a first panel was shown
    with pytest.raises(ValueError, match="the models failed"):
        for out in steps:
            shown = out
    assert all(img.value is None for img in panels(arena_app, shown)) and shown["table"] == ""
    assert "files" not in shown and "zoom" not in shown  # not outputs of the Compare event: the click clears them


def test_compare_serves_while_the_warm_up_runs(arena_app, tmp_path, monkeypatch):
    """The warm-up runs in a background thread; requests meanwhile are served (eagerly). Here the
    compiler is made to look absent, so the warm-up is quick and ends in the one-line notice."""
    import threading

    import restoration.inference.runner as runner

    release, notices, done = threading.Event(), [], []
    monkeypatch.setattr(runner, "compiler_available", lambda: release.wait(30) and False)
    for r in arena_app.restorers.values():
        r.notice = notices.append
    thread = arena_app.warm_up(done.append)
    out = page(arena_app.compare(str(photo(tmp_path)), "degrade"))  # while the warm-up waits
    assert thread.is_alive() and not done and out["compared"]["files"]
    release.set()
    thread.join(30)
    assert len(done) == 1 and len(notices) == len(arena_app.models)
    assert all("no C++ compiler" in r.status for r in arena_app.restorers.values())


def test_upscale_mode_hides_the_original(arena_app, tmp_path):
    out = page(arena_app.compare(str(photo(tmp_path, 30, 20)), "upscale"))
    images = panels(arena_app, out)
    assert images[-1].visible is False and all(img.visible for img in images[:-1])
    assert Image.open(out["panel-unet-crossconv"].value).size == (60, 40)
    assert "PSNR" not in out["table"]


def test_zoom_handler(arena_app, tmp_path):
    state = page(arena_app.compare(str(photo(tmp_path)), "degrade"))["compared"]
    slider = arena_app.zoom(state, "input", "unet-crossconv")["zoom"]
    assert "Low-resolution input" in slider.label and "Cross-conv U-Net" in slider.label
    left, right = slider.value  # files: the input enlarged once, the panel itself
    assert right == state["files"]["unet-crossconv"] and left.endswith("-input-enlarged.webp")
    assert Image.open(left).size == Image.open(right).size
    assert arena_app.zoom(state, "bicubic", "original")["zoom"].value == (
        state["files"]["bicubic"], state["files"]["original"])
    assert arena_app.zoom(None, "input", "bicubic")["zoom"].value is None
    for f in state["files"].values():
        Path(f).unlink()  # as the sweep of old outputs does
    with pytest.raises(Refusal, match="no longer kept"):
        arena_app.zoom(state, "bicubic", "unet-mse")


def bad_uploads(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    data = photo(tmp_path, name="whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    return {"notes.png": "not an image", "empty.png": "not an image", "cut.jpg": "truncated or corrupt",
            "dot.png": "at least 2×2", "bomb.png": "too large", "huge.png": "megapixels"}


def test_bad_uploads_give_clear_errors_and_the_app_goes_on(arena_app, tmp_path):
    cases = bad_uploads(tmp_path)
    bomb(tmp_path / "bomb.png")
    bomb(tmp_path / "huge.png", side=3000)  # 9 megapixels: over our limit, under Pillow's
    for name, message in cases.items():
        with pytest.raises(Refusal, match=message):
            page(arena_app.compare(str(tmp_path / name), "degrade"))
    with pytest.raises(Refusal, match="Upload an image"):
        page(arena_app.compare(None, "degrade"))
    with pytest.raises(Refusal, match="Unknown degradation .*sharpen"):
        page(arena_app.compare(str(photo(tmp_path)), "degrade", "sharpen"))
    assert len(page(arena_app.compare(str(photo(tmp_path)), "degrade"))) == len(arena_app.panel_keys) + 4


def test_odd_but_valid_images_work(arena_app, tmp_path):
    Image.new("I;16", (20, 16), 30000).save(tmp_path / "deep.png")
    Image.new("RGBA", (20, 16), (255, 0, 0, 128)).save(tmp_path / "alpha.png")
    Image.new("CMYK", (20, 16), (0, 255, 0, 0)).save(tmp_path / "print.jpg")
    frames = [Image.new("P", (20, 16), i) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    img = Image.new("RGB", (24, 16))
    exif = Image.Exif()
    exif[0x0112] = 8
    img.save(tmp_path / "turned.jpg", exif=exif)
    for name in ["deep.png", "alpha.png", "print.jpg", "anim.gif"]:
        assert page(arena_app.compare(str(tmp_path / name), "degrade"))["compared"]["files"]
    files = page(arena_app.compare(str(tmp_path / "turned.jpg"), "degrade"))["compared"]["files"]
    assert Image.open(files["original"]).size == (16, 24)


def pair(app, session, browser=None) -> tuple[str, str]:
    """(session, token) of a new pair for this judge."""
    out = app.next_pair(session, None, browser)
    return out["session"], out["token"]


def judged(out) -> dict:
    """A Judge handler's outputs by name: a new pair sets every one of JUDGE_OUTPUTS."""
    assert set(out) == set(JUDGE_OUTPUTS)
    return out


def test_judge_and_vote_handlers(arena_app):
    first = judged(arena_app.next_pair(None, None))
    session, token = first["session"], first["token"]
    low, a, b = (Image.open(first[k].value) for k in ("low", "side_a", "side_b"))
    assert session.startswith("s-") and token and low.size[0] * 2 == a.size[0] and a.size == b.size
    assert first["original"].value is None and "**0**" in first["progress"] and first["reveal"] == ""
    assert first["judged_a"].visible is False and first["judged_b"].visible is False  # nothing judged yet
    assert first["shown"] == {"token": token, "A": first["side_a"].value, "B": first["side_b"].value}
    # Shown at an integer zoom (thumbnails: enough for 320 pixels), the input at the same scale.
    zoom = display_zoom(a.size)
    assert first["side_a"].elem_classes == first["side_b"].elem_classes == [JUDGE_VIEW, f"zoom-{zoom}"]
    assert first["low"].elem_classes == [JUDGE_VIEW, f"zoom-{2 * zoom}"] and a.size[0] * zoom >= 320
    assert first["side_a"].label == f"A · {zoom}× (each pixel a square)" and first["side_b"].label.startswith("B · ")
    assert arena_app.start_judging(session, token) == {}  # one waits: nothing changes

    out = judged(arena_app.vote("A is better", session, token, None, first["shown"]))
    assert out["session"] == session and out["token"] != token and "**1**" in out["progress"]
    assert "you said A is better" in out["reveal"] and "A was **" in out["reveal"] and "degraded by" in out["reveal"]
    # The reveal sits with the pair it describes: the judged pictures, named, above the new pair.
    with arena_app.store.engine.connect() as conn:
        battle = tuple(conn.execute(sa.text("SELECT model_a, model_b FROM votes")).one())
    titles = [arena_app.titles.get(n, "Bicubic") for n in battle]
    assert out["judged_a"].value == first["side_a"].value
    assert out["judged_b"].value == first["side_b"].value
    assert [out["judged_a"].label, out["judged_b"].label] == [f"A: {titles[0]}", f"B: {titles[1]}"]
    assert out["judged_a"].visible and out["side_a"].value != first["side_a"].value  # a new pair below
    assert f"A was **{titles[0]}**, B was **{titles[1]}**" in out["reveal"]
    again = arena_app.vote("B is better", session, token, None, first["shown"])
    assert "already been judged" in again.pop("warning")  # shown as a warning too
    again = judged(again)
    assert again["reveal"].startswith("This pair has already been judged") and again["judged_a"].visible is False
    forged = arena_app.vote("Tie", session, "forged")
    assert "did not issue" in forged["warning"] and forged["reveal"].startswith("This vote is for a pair")
    for answer in [["A"], {"answer": "A"}, "sideways"]:  # what an API client can send
        refused = arena_app.vote(answer, session, out["token"])
        assert refused["reveal"].startswith("Unknown answer") and "Unknown answer" in refused["warning"]
    assert arena_app.store.count() == 1
    with arena_app.store.engine.connect() as conn:
        vote = tuple(conn.execute(sa.text("SELECT degradation, client, judge, image, family, crop FROM votes")).one())
    assert vote[0] in degrade.STANDARD and len(vote[1]) == len(vote[2]) == 32  # keys, not addresses
    with Image.open(arena_app.image_files[vote[3]]) as im:  # the scene: its family and its box in the image
        assert vote[4] == "lesson" and vote[5] == f"0 0 {im.width - im.width % 2} {im.height - im.height % 2}"


def test_a_judge_sees_no_image_again_within_their_last_ten_pairs(settings, tiny_models, tmp_path):
    """With 12 images in the pool, all ready, 24 pairs in a row never repeat an image within 11
    pairs, though each scene serves 6 pairs; another judge is not held back."""
    examples = tmp_path / "examples"
    examples.mkdir()
    for i in range(12):
        photo(examples, 40, 32, name=f"p{i:02d}.png")  # the same picture: only the id matters here
    a = ArenaApp(dataclasses.replace(settings, examples_dir=examples, scene_pool=12, scene_uses=6), tiny_models)
    deadline = time.monotonic() + 60
    while a.scenes.ready() < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        images, session = [], None
        for _ in range(24):
            session = judged(a.next_pair(session, None, "b-judge-one"))["session"]
            images.append(a.arena.pending(session).image_id)
        assert all(len(set(images[i:i + 11])) == len(images[i:i + 11]) for i in range(len(images)))
        other = [a.arena.pending(judged(a.next_pair(None, None, "b-judge-two"))["session"]).image_id
                 for _ in range(3)]
        assert len(set(other)) == 3
    finally:
        a.close()


def test_served_pictures_name_no_model(arena_app):
    """Every served picture has a fresh random file name and fresh bytes (so Gradio's
    content-hash URL is new too), and no metadata but a random nonce."""
    seen_names, seen_bytes = set(), set()
    for _ in range(6):
        out = arena_app.next_pair("s-same", None)
        for path in (out["low"].value, out["side_a"].value, out["side_b"].value):
            assert Path(path).name not in seen_names
            seen_names.add(Path(path).name)
            data = Path(path).read_bytes()
            assert data not in seen_bytes
            seen_bytes.add(data)
            with Image.open(path) as im:
                assert set(im.info) <= {"nonce", "dpi", "gamma"} and len(im.info.get("nonce", "")) == 32
    assert len(seen_names) == 18


def test_a_new_session_from_the_same_browser_or_without_one_is_the_same_judge(settings, tiny_models):
    a = ArenaApp(dataclasses.replace(settings, votes_per_minute=2, address_votes_per_minute=100), tiny_models)
    remembered = a.remember_browser(None)
    browser = remembered["browser"]
    assert remembered["stored_browser"] == browser and browser.startswith("b-")
    assert a.remember_browser(browser) == {"browser": browser, "stored_browser": browser}
    assert a.remember_browser(["not", "an", "id"])["browser"] != browser
    results = []
    for _ in range(3):  # a fresh session for every vote, as a script would
        pair = a.next_pair(None, None, browser)
        results.append(a.vote("A", pair["session"], pair["token"], browser))
    assert [r["reveal"].startswith("**Your last pair**") for r in results] == [True, True, False]
    assert "at most 2 a minute per judge" in results[2]["reveal"] and a.store.count() == 2
    # a client that keeps no browser id is, at its address, one judge across its sessions too
    results = []
    for _ in range(3):
        pair = a.next_pair(None, None)
        results.append(a.vote("B", pair["session"], pair["token"]))
    assert [r["reveal"].startswith("**Your last pair**") for r in results] == [True, True, False]
    assert "at most 2 a minute per judge" in results[2]["reveal"] and a.store.count() == 4
    a.close()


def test_too_fast_votes_keep_the_pair(settings, tiny_models):
    a = ArenaApp(dataclasses.replace(settings, min_vote_seconds=60), tiny_models)
    pair = a.next_pair(None, None)
    out = a.vote("Both bad", pair["session"], pair["token"])
    assert "too fast" in out["warning"] and "too fast" in out["reveal"] and a.store.count() == 0
    assert "token" not in out and "side_a" not in out  # the pair on screen stays
    a.close()


def test_show_original_setting(settings, tiny_models):
    a = ArenaApp(dataclasses.replace(settings, show_original=True), tiny_models)
    pair = a.next_pair(None, None)
    original, side_a = pair["original"].value, pair["side_a"].value
    assert original is not None and Image.open(original).size == Image.open(side_a).size
    a.close()


def test_leaderboard_and_export_handlers(settings, tiny_models, tmp_path):
    arena_app = ArenaApp(dataclasses.replace(settings, export_every=3), tiny_models)
    summary, ranking, matrix = arena_app.leaderboard().values()
    assert "**0** valid votes" in summary and "No evaluation figures yet" in summary
    assert "**0** votes left out" in summary
    assert len(ranking.value["data"]) == 4  # three U-Nets and the bicubic anchor
    assert all(r[0] == r[2] == "—" for r in ranking.value["data"])  # no votes: no rank, no rating
    bicubic = [r for r in ranking.value["data"] if r[1] == "Bicubic"][0]
    assert bicubic[3] == "pinned (anchor)"
    session = None
    for answer in ["A", "A", "B", "tie", "both_bad"]:
        session, token = pair(arena_app, session)
        assert arena_app.vote(answer, session, token)["reveal"].startswith("**Your last pair**")
    summary, ranking, matrix = arena_app.leaderboard().values()
    rows = ranking.value["data"]
    assert "**5** valid votes" in summary and sum(r[4] for r in rows) == 10  # each vote counts for both models
    assert "**5** votes on this family's pairs: 5 valid + 0 left out" in summary and "(together 5)" in summary
    assert {r[1] for r in rows} == {"MSE U-Net", "Perceptual U-Net", "Cross-conv U-Net", "Bicubic"}
    assert matrix.value["headers"][0] == "Model (row) beats (column)" and len(matrix.value["data"]) == 4
    per = [arena_app.leaderboard(d)["summary"] for d in degrade.STANDARD]
    assert sum(int(text.split("**")[1]) for text in per) == 5
    with pytest.raises(Refusal, match="Unknown degradation"):
        arena_app.leaderboard("sideways")

    file = arena_app.export_votes()["csv"]
    text = Path(file).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 5 and list(rows[0]) == [*VoteStore.PUBLIC_COLUMNS, "repo_a", "repo_b"]
    assert session not in text
    assert all(r[f"repo_{s}"] == ("" if r[f"model_{s}"] == "bicubic" else f"test-org/{r[f'model_{s}']}")
               for r in rows for s in "ab")  # who published each side (community models: their repo)
    assert {r["family"] for r in rows} == {"lesson"}  # each vote's family (the tiny catalogue has one)
    for r in rows:  # and its scene's box in the image, to re-analyse the votes per image and crop
        with Image.open(arena_app.image_files[r["image"]]) as im:
            assert r["crop"] == f"0 0 {im.width - im.width % 2} {im.height - im.height % 2}"
    session, token = pair(arena_app, session)
    arena_app.vote("A", session, token)
    assert arena_app.export_votes()["csv"] == file  # cached until export_every new votes
    for _ in range(2):
        session, token = pair(arena_app, session)
        arena_app.vote("B", session, token)
    again = arena_app.export_votes()["csv"]
    assert again != file and len(list(csv.DictReader(Path(again).read_text().splitlines()))) == 8
    arena_app.close()
    assert not arena_app.outputs.exists()  # close removes every file we wrote


def replicas_on(url, settings, tiny_models, n=2):
    """`n` apps on one PostgreSQL database, as replicas behind a load balancer are."""
    shared = dataclasses.replace(settings, votes_db=url, arena_secret="the same secret on every replica")
    return [ArenaApp(shared, tiny_models) for _ in range(n)]


def test_replicas_on_one_postgresql_are_one_arena(postgres_url, settings, tiny_models):
    """A pair from one replica is voted on through the other (no sticky sessions), the leaderboard
    and the public CSV are the same from both, and a judge's caps count across both."""
    one, other = replicas_on(postgres_url, dataclasses.replace(settings, votes_per_minute=3), tiny_models)
    try:
        session, token = pair(one, None, "b-browser")
        for i in range(3):
            out = (other if i % 2 == 0 else one).vote("A is better", session, token, "b-browser")
            assert "you said A is better" in out["reveal"], out["reveal"]
            session, token = out["session"], out["token"]
        refused = other.vote("Tie", session, token, "b-browser")
        assert "at most 3 a minute per judge" in refused["warning"] and "at most 3" in refused["reveal"]
        summary = one.leaderboard()["summary"]
        assert summary == other.leaderboard()["summary"] and "**3** valid votes" in summary
        assert Path(one.export_votes()["csv"]).read_text() == Path(other.export_votes()["csv"]).read_text()
    finally:
        one.close()
        other.close()


def test_a_store_that_goes_down_gives_judges_a_message_and_compare_serves_on(postgres, postgres_url, settings,
                                                                             tiny_models, tmp_path):
    (app,) = replicas_on(postgres_url, settings, tiny_models, n=1)
    try:
        session, token = pair(app, None)
        postgres.stop("fast")
        try:
            for handler in (lambda: app.vote("A", session, token), lambda: app.next_pair(session, token),
                            app.leaderboard, app.export_votes):
                with pytest.raises(Refusal, match="vote store cannot be reached") as e:
                    handler()
                assert "nothing was recorded" in str(e.value)
            out = page(app.compare({"path": str(photo(tmp_path)), "orig_name": "p.png"}, "degrade"))
            assert all(img.visible for img in panels(app, out))  # Compare needs no database
        finally:
            postgres.start()
        out = app.vote("A", session, token)  # the same pair, the same app: no restart needed
        assert "you said A is better" in out["reveal"] and app.store.count() == 1
    finally:
        app.close()


def test_votes_on_a_degradation_this_version_does_not_know_still_show(arena_app):
    from restoration.arena.pairs import Battle, Client, Contender

    old = Battle("t-old", "s-old", "x.png", "gaussian-blur", Contender("unet-mse", "MSE U-Net", "r"),
                 Contender("bicubic", "Bicubic", "r"), 0.0, Client("c", "j"))
    arena_app.store.add(old, "A", 5.0)
    summary = arena_app.leaderboard()["summary"]
    assert "**1** valid votes" in summary and "gaussian-blur: 1" in summary


def test_flagged_judges_are_left_out_of_the_leaderboard(settings, tiny_models):
    a = ArenaApp(settings, tiny_models)
    session = None
    for _ in range(25):  # one judge who always says A: implausible, left out
        session, token = pair(a, session)
        a.vote("A", session, token)
    summary, ranking, _ = a.leaderboard().values()
    assert "**0** valid votes" in summary and "**25** votes left out: 1 judge(s)" in summary
    assert sum(r[4] for r in ranking.value["data"]) == 0
    a.close()


def test_compare_checks_the_mode_and_caps_requests_per_client(arena_app, tmp_path):
    with pytest.raises(Refusal, match="Unknown mode .*sideways.*choose one of degrade, upscale"):
        page(arena_app.compare(str(photo(tmp_path)), "sideways"))
    key = arena_app.client(None).address_key
    arena_app.lane._held[key] = arena_app.settings.compare_per_client  # two already running or waiting
    with pytest.raises(Refusal, match="limit is 2 per client"):
        page(arena_app.compare(str(photo(tmp_path)), "degrade"))
    other = ArenaApp.client(arena_app, None, "b-x")  # the same address: the cap is the address's
    assert other.address_key == key
    del arena_app.lane._held[key]
    assert len(page(arena_app.compare(str(photo(tmp_path)), "degrade"))) == len(arena_app.panel_keys) + 4


def test_the_compare_lane_is_held_until_the_last_panel(arena_app, tmp_path):
    """Compare streams its panels: its slot in the lane is held until the last one, then freed."""
    key = arena_app.client(None).address_key
    held = [dict(arena_app.lane._held) for _ in arena_app.compare(str(photo(tmp_path)), "degrade")]
    assert len(held) >= 2 and all(h == {key: 1} for h in held)
    assert arena_app.lane._held == {}


def test_old_outputs_and_their_served_copies_are_removed_while_running_and_all_at_exit(arena_app, tmp_path):
    old = arena_app.outputs / "judge" / "old.png"
    old.parent.mkdir(exist_ok=True)
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    served = [tmp_path / "gradio" / name / "copy.png" for name in ("old", "new")]  # Gradio's cache copies
    for copy in served:
        copy.parent.mkdir(parents=True)
        copy.write_bytes(b"x")
    os.utime(served[0], (0, 0))
    arena_app.files.served = lambda: [str(c) for c in served]
    fresh = Path(arena_app.next_pair(None, None)["low"].value)
    arena_app.files.sweep(arena_app.settings.output_max_age)
    assert not old.exists() and fresh.exists() and not served[0].parent.exists() and served[1].exists()
    arena_app.close()
    assert not arena_app.outputs.exists() and not served[1].exists()  # nothing survives exit


def test_leaderboard_columns_with_a_synthetic_vote_set(settings, tiny_models, tmp_path):
    """Human rating, PSNR, SSIM and semantic fidelity side by side, each with its rank; votes where
    people prefer what keeps the picture make the summary say they side with semantic fidelity."""
    weights = make_weights_dir(tmp_path / "w")
    figures = {"nearest": (24.0, 0.70, 0.25), "bicubic": (25.0, 0.75, 0.27), "unet-mse": (28.0, 0.85, 0.49),
               "unet-perceptual": (27.0, 0.83, 0.75), "unet-crossconv": (27.5, 0.84, 0.74)}
    results = {n: {"psnr_pooled": p, "psnr_mean": p, "ssim": s, "sharpness": 1, "ms_per_image": 1, "fidelity_top1": f / 2,
                   "fidelity": f} for n, (p, s, f) in figures.items()}
    (weights / "evaluation.json").write_text(json.dumps({
        "data": "val", "images": 10000, "command": "python -m restoration.inference.evaluate --json e.json",
        "degradations": {d: {"results": results} for d in ("lesson", "bicubic", "jpeg75")}}))
    a = ArenaApp(dataclasses.replace(settings, weights_dir=weights), tiny_models)
    preference = ["unet-perceptual", "unet-crossconv", "unet-mse", "bicubic"]  # people's order
    rows, k = [], 0
    for i, better in enumerate(preference):
        for worse in preference[i + 1:]:
            for _ in range(15):  # 15 votes per pair, each from its own judge, at a human pace
                rows.append(("2025-01-01T00:00:00+00:00", f"s{k}", "img", "lesson", better, "r", worse, "r", "A",
                             6.0, f"t{k}", "c", f"j{k}"))
                k += 1
    a.store.add_many(rows)
    summary, ranking, _ = a.leaderboard("lesson").values()
    a.close()
    headers = ranking.headers if hasattr(ranking, "headers") else ranking.value["headers"]
    assert headers[5:] == ["PSNR (dB)", "SSIM", "Semantic fidelity"]  # each figure with its rank in brackets
    by_model = {r[1]: r for r in ranking.value["data"]}
    assert by_model["MSE U-Net"][5:] == ["28.00 (1)", "0.8500 (1)", "49.0% (3)"]
    assert by_model["Perceptual U-Net"][5:] == ["27.00 (3)", "0.8300 (3)", "75.0% (1)"]
    # The human rank: the places its interval allows, the best first.
    assert by_model["Perceptual U-Net"][0] in ("1", "1–2") and by_model["MSE U-Net"][0][0] in "23"
    assert "on 10000 images" in summary and "side more with semantic fidelity" in summary


def test_main_refuses_to_start_without_a_restorer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESTORATION_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("RESTORATION_VOTES_DB", str(tmp_path / "votes.db"))
    with pytest.raises(SystemExit, match="models.json: missing"):
        app_module.main()
    (tmp_path / "models.json").write_text(json.dumps({"models": [
        {"name": "unet-mse", "title": "MSE U-Net", "folder": "unet-mse", "role": "restorer"}]}))
    with pytest.raises(SystemExit, match="no restorer .* could be loaded(.|\n)*MSE U-Net: not loaded"):
        app_module.main()


def test_the_header_names_the_catalogue_models(arena_app):
    demo = build_app(arena_app)
    [header] = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "header"]
    assert "MSE U-Net, Perceptual U-Net and Cross-conv U-Net" in header and "Three" not in header
    assert "from fast.ai lesson 23: Solo U-Net." in header_markdown("Arena", ["Solo U-Net"])
    [provenance] = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "provenance"]
    lines = provenance.splitlines()  # one per catalogue entry: the three U-Nets and the classifier
    assert [line.split("**")[1] for line in lines] == ["MSE U-Net", "Perceptual U-Net", "Cross-conv U-Net",
                                                       "Tiny ImageNet classifier"]
    assert all("card [test-org/" in line and "Hub commit" in line for line in lines)


def test_app_needs_a_model(settings):
    with pytest.raises(ValueError, match="at least one restorer"):
        ArenaApp(settings, [])


# ------------------------------------------------------------------------------ the real server


@pytest.fixture
def served(settings, tiny_models):
    a = ArenaApp(settings, tiny_models, outputs_in=get_upload_folder())  # as app.main makes it
    demo = build_app(a)
    a.files.served = lambda: served_copies(demo)
    port = free_port()
    launch(demo, settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
    yield a, client
    client.close()
    demo.close()
    a.close()


def test_the_benchmark_voter_opens_the_page_as_a_browser_a_judge_of_its_own(served):
    """bench/voter.py runs the page's load event with a browser id of its own: two voters from one
    address are two judges (as two people's browsers are), one browser id in two sessions one."""
    from bench.voter import VoterClient

    a, client = served
    url = client.src
    voters = [VoterClient(url), VoterClient(url), VoterClient(url, browser="b-same"), VoterClient(url, browser="b-same")]
    try:
        for voter in voters:
            voter.predict(api_name="/judge")
            assert "you said A is better" in voter.predict("A", api_name="/vote")[4]
    finally:
        for voter in voters:
            voter.close()
    with a.store.engine.connect() as conn:
        judges = [row[0] for row in conn.execute(sa.text("SELECT judge FROM votes ORDER BY id"))]
    assert len(judges) == 4 and len(set(judges[:3])) == 3 and judges[2] == judges[3]


def test_through_gradio_client(served, tmp_path):
    a, client = served
    api = client.view_api(return_format="dict", print_info=False)
    assert {"/compare", "/judge", "/vote", "/leaderboard", "/export_votes"} <= set(api["named_endpoints"])

    out = client.predict(handle_file(str(photo(tmp_path))), "degrade", api_name="/compare")
    n = len(a.panel_keys)
    panels = out[:n]  # each an update: the image and its caption with the scores
    assert all(Image.open(p["value"]).format == "WEBP" for p in panels)  # lossless panels
    assert panels[2]["label"].startswith("MSE U-Net · ") and panels[2]["label"].endswith(" dB")
    assert "| MSE U-Net |" in out[n]
    zoom = client.predict("input", "unet-mse", api_name="/zoom")  # the zoom slider, when asked, at full resolution
    left, right = zoom["value"] if isinstance(zoom, dict) else zoom
    assert Image.open(left).size == Image.open(right).size == Image.open(panels[-1]["value"]).size
    files = client.predict(api_name="/downloads")
    assert len(files) == n and all(Image.open(f).format == "PNG" for f in files)

    with pytest.raises(Exception, match="not an image"):
        (tmp_path / "text.png").write_text("hello")
        client.predict(handle_file(str(tmp_path / "text.png")), "degrade", api_name="/compare")

    _low, _original, side_a, side_b, _reveal, progress, _judged_a, _judged_b = client.predict(api_name="/judge")
    side_a, side_b = side_a["value"], side_b["value"]  # updates: the picture and its label and zoom
    assert Image.open(side_a).size == Image.open(side_b).size and "**0**" in progress
    result = client.predict("B is better", api_name="/vote")
    assert "you said B is better" in result[4] and "**1**" in result[5]
    assert Image.open(result[6]["value"]).tobytes() == Image.open(side_a).tobytes()  # the judged pair, shown again
    assert result[6]["label"].startswith("A: ") and result[6]["visible"] is True
    result = client.predict("tie", api_name="/vote")
    assert "you said a tie" in result[4] and "**2**" in result[5]
    result = client.predict("sideways", api_name="/vote")
    assert "Unknown answer" in result[4] and "**2**" in result[5]
    for answer in (["A"], {"answer": "A"}):  # the raw protocol lets a script send anything
        result = client.predict(answer, api_name="/vote")
        assert "Unknown answer" in result[4] and "**2**" in result[5]
    with pytest.raises(Exception, match="Unknown mode"):
        client.predict(handle_file(str(photo(tmp_path))), "sideways", api_name="/compare")

    summary, ranking, matrix = client.predict(api_name="/leaderboard")
    assert "**2** valid votes" in summary and len(ranking["value"]["data"]) == 4
    assert matrix["value"]["headers"][0] == "Model (row) beats (column)"
    csv_file = client.predict(api_name="/export_votes")
    assert len(list(csv.DictReader(Path(csv_file).read_text().splitlines()))) == 2


def test_the_benchmark_client_streams_a_compare_as_the_page_does(served, tmp_path):
    """bench/voter.py follows a streaming call step by step (diffs applied, new files downloaded):
    what bench.speed times as the first panel and every panel through the API."""
    from bench.speed_report import api_compare
    from bench.voter import VoterClient

    a, client = served
    voter = VoterClient(client.src)
    try:
        upload = voter.upload(photo(tmp_path))
        steps = list(voter.stream(upload, "degrade", "lesson", False, None, api_name="/compare"))
        n = len(a.panel_keys)
        shown = [sum(isinstance(o, str) and o.endswith(".webp") for o in out[:n]) for out, _ in steps]
        assert shown == sorted(shown) and shown[0] >= 2 and shown[-1] == n
        assert [done for _, done in steps] == [False] * (len(steps) - 1) + [True]
        first, last, files = api_compare(voter, photo(tmp_path, name="again.png"))
        assert 0 < first <= last and files == n
    finally:
        voter.close()


def test_gradio_serves_our_panel_files_as_they_are(served, tmp_path):
    """Our files are written inside Gradio's cache folder, so Gradio serves them where they are:
    no hash and copy of every panel at every streamed step of a Compare."""
    a, client = served
    client.predict(handle_file(str(photo(tmp_path, name="as-they-are.png"))), "degrade", api_name="/compare")
    panels = [f for f in a.files.served() if "as-they-are-" in f]
    assert len(panels) == len(a.panel_keys) and all(Path(f).is_relative_to(a.outputs) for f in panels)


def test_the_tests_keep_gradios_files_in_their_own_temp_folder(served, tmp_path):
    """conftest points GRADIO_TEMP_DIR at a folder of the test session: an upload, the panels
    served back and the client's downloads land there, and nothing in the machine's shared
    /tmp/gradio (other runs may write there meanwhile: only this test's unique name is looked for)."""
    import secrets
    import tempfile

    ours = Path(os.environ["GRADIO_TEMP_DIR"])
    shared = Path(tempfile.gettempdir()) / "gradio"
    assert ours.resolve() != shared.resolve() and ours.name.startswith("pytest-gradio-")
    a, client = served
    name = f"probe-{secrets.token_hex(6)}"
    out = client.predict(handle_file(str(photo(tmp_path, name=f"{name}.png"))), "degrade", api_name="/compare")
    assert Path(out[0]["value"]).is_relative_to(ours)  # the client's download of a panel
    mine = lambda folder: [p for p in folder.rglob(f"*{name}*") if p.is_file()] if folder.exists() else []
    assert len(mine(ours)) >= 2 * len(a.panel_keys)  # served by the app and downloaded by the client
    assert mine(shared) == []


def test_user_errors_are_one_log_line_not_a_traceback(served, tmp_path, capfd, caplog):
    a, client = served
    caplog.set_level("INFO", logger="app")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(str(tmp_path / "text.png")), "degrade", api_name="/compare")
    with pytest.raises(Exception, match="Unknown mode"):
        client.predict(handle_file(str(photo(tmp_path))), "sideways", api_name="/compare")
    client.predict(api_name="/judge")
    client.predict(["A"], api_name="/vote")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    refused = [r.getMessage() for r in caplog.records if r.name == "app"]
    assert len(refused) == 3 and all("\n" not in m and m.startswith("refused: ") for m in refused)
    assert "not an image" in refused[0] and "Unknown mode" in refused[1] and "Unknown answer" in refused[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_app_removes_its_temporary_files(sig, tiny_weights, small_examples, tmp_path):
    """`python app.py` stopped with SIGTERM (a Space, a service manager) or Ctrl-C leaves nothing in
    its temporary folder and exits cleanly."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp / "gradio"), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "RESTORATION_WEIGHTS_DIR": str(tiny_weights),
           "RESTORATION_EXAMPLES_DIR": str(small_examples), "RESTORATION_VAL_DIR": str(tmp_path / "none"),
           "RESTORATION_VOTES_DB": str(tmp_path / "votes.db"), "RESTORATION_THREADS": "1",
           # No compile warm-up: torch's compile cache (kept under TMPDIR on purpose, for the next
           # start) is not a file of ours.
           "RESTORATION_FAST": "0"}
    # As from a terminal: a suite started in the background (`cmd &`) inherits SIGINT ignored, and
    # so would the app.
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=app_module.__file__.rsplit("/", 1)[0], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False).predict(api_name="/judge")
                break
            except Exception:  # noqa: BLE001 (not up yet)
                time.sleep(0.5)
        assert list(tmp.glob("gradio/restoration-app-*/judge/*.png"))  # it served a pair: there were files
        proc.send_signal(sig)
        output = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert not list(tmp.rglob("restoration-app-*")) and "Traceback" not in output
    assert [p for p in tmp.rglob("*") if p.is_file()] == []  # nor in Gradio's cache


# ------------------------------------------------------------------------------ model families


@pytest.fixture
def two_families(settings, tmp_path):
    """A catalogue with a lesson family and a photo family of tiny U-Nets, an evaluation of the
    photo family (with the grid and flat figures), and photos to cut the photo family's scenes from."""
    from restoration.hub.catalogue import load_available_restorers

    models, problems = load_available_restorers(make_two_family_weights(tmp_path / "weights-families"))
    assert not problems
    a = ArenaApp(dataclasses.replace(settings, weights_dir=tmp_path / "weights-families",
                                     photo_val_dir=write_photos(tmp_path / "photos-val", 3)), models)
    yield a
    a.close()


def test_compare_shows_one_family_photos_by_default(two_families, tmp_path):
    app = two_families
    assert list(app.families) == ["photo", "lesson"] and app.default_family == "photo"
    shown = lambda out: [k for k in app.panel_keys if out[f"panel-{k}"].visible]  # noqa: E731
    default = page(app.compare(str(photo(tmp_path)), "degrade"))
    assert shown(default) == ["input", "bicubic", "photo-mse", "photo-crossconv", "original"]
    assert "| MSE U-Net · photos |" in default["table"] and "lesson" not in default["table"]
    lesson = page(app.compare(str(photo(tmp_path)), "degrade", "lesson", False, "lesson"))
    assert shown(lesson) == ["input", "bicubic", "unet-mse", "unet-crossconv", "original"]
    assert lesson["right"].value == "unet-mse"  # the zoom's right side: the family's first model
    with pytest.raises(Refusal, match="Unknown model family"):
        page(app.compare(str(photo(tmp_path)), "degrade", "lesson", False, "cartoons"))


def test_thumbnails_suggest_the_lesson_family(two_families, tmp_path):
    from restoration.inference.compare import family_for_image

    small, large = photo(tmp_path, 64, 64, "thumb.png"), photo(tmp_path, 300, 200, "big.png")
    assert family_for_image(small, ["photo", "lesson"]) == "lesson"
    assert family_for_image(large, ["photo", "lesson"]) == "photo"
    assert family_for_image(small, ["photo"]) == "photo"  # only what loaded
    assert two_families.suggest_family(str(small)) == {"family": "lesson"}
    assert two_families.suggest_family(str(large)) == {"family": "photo"}
    assert two_families.suggest_family(None) == {}  # Compare itself says what is missing


def test_an_upload_that_is_no_image_is_taken_off_the_input_with_one_line(two_families, tmp_path):
    text = tmp_path / "notes.png"  # a text file renamed .png
    text.write_text("not an image\n")
    payload = {"path": str(text), "orig_name": "my notes.png"}  # Gradio's, not preprocessed
    assert two_families.suggest_family(payload) == {
        "upload": None, "warning": "my notes.png is not an image that can be read (PNG, JPEG, WebP, GIF, BMP, TIFF, ...)"}
    with pytest.raises(Refusal, match="notes.png is not an image"):  # Restore pressed meanwhile: the same words
        page(two_families.compare(str(text), "degrade"))


def test_a_catalogue_family_must_be_known(tmp_path):
    from restoration.hub.catalogue import read_catalog
    from restoration.models.checkpoint import CheckpointError

    (tmp_path / "models.json").write_text(json.dumps({"models": [
        {"name": "m", "title": "M", "folder": "m", "role": "restorer", "family": "cartoons"}]}))
    with pytest.raises(CheckpointError, match="family 'cartoons'"):
        read_catalog(tmp_path)


def test_judge_pairs_stay_within_a_family_and_the_leaderboard_splits_by_family(two_families):
    """Photo pairs are cut from the photos, lesson pairs are thumbnails; each family's board counts
    its own votes (valid + left out = its votes; by degradation = its valid votes), photos first,
    with its own witnesses, and no column of rank "1" while the votes are few."""
    app = two_families
    families = {f: {m.entry.name for m in ms} | {"bicubic"} for f, ms in app.families.items()}
    deadline = time.monotonic() + 120
    while (app.scenes.ready("photo") < 1 or app.scenes.ready("lesson") < 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    session, token = pair(app, None)
    seen = {"photo": 0, "lesson": 0}
    for _ in range(16):
        battle = app.arena.pending(session)
        shown = {battle.a.name, battle.b.name}
        family = next(f for f, names in families.items() if shown <= names)  # one family (and bicubic)
        assert battle.family == family and battle.image_id.startswith("photos/" if family == "photo" else "examples/")
        with Image.open(app.image_files[battle.image_id]) as im:
            assert max(im.size) >= 320 if family == "photo" else max(im.size) < 320
        seen[family] += 1
        out = app.vote("A is better", session, token)
        session, token = out["session"], out["token"]
    assert seen["photo"] >= 1 and seen["lesson"] >= 1
    assert app.boards == ["photo", "lesson"]  # photos first
    boards = {f: app.leaderboard("all", f) for f in app.boards}
    assert app.leaderboard()["summary"] == boards["photo"]["summary"]  # the photo board by default
    for f, board in boards.items():
        valid = int(board["summary"].split("**")[1])
        assert valid == seen[f] and f"**{seen[f]}** votes on this family's pairs: {seen[f]} valid + 0 left out" in \
            board["summary"] and f"(together {seen[f]})" in board["summary"]
        rows = board["ranking"].value["data"]
        assert sum(r[4] for r in rows) == 2 * seen[f]  # each vote counts for both its models
        assert [r[0] for r in rows if r[4]] != ["1"] * len([r for r in rows if r[4]])  # few votes: ranges
    photos = boards["photo"]["ranking"].value
    assert {row[1] for row in photos["data"]} == {"MSE U-Net · photos", "Cross-conv U-Net · photos", "Bicubic"}
    assert photos["headers"][5:] == ["Y-PSNR (dB)", "Y-SSIM", "Sharpness", "Grid", "Flat"]
    mse = next(r for r in photos["data"] if r[1] == "MSE U-Net · photos")
    assert mse[5:] == ["31.00 (1)", "0.9000 (1)", "0.45 (2)", "0.80 (2)", "0.70 (2)"]  # sharpness: nearest 1
    assert all("—" not in cell for r in photos["data"] for cell in r[5:])  # every one evaluated
    assert "Grid and Flat (each with its rank in brackets)" in boards["photo"]["summary"]
    assert "No evaluation figures yet" in boards["lesson"]["summary"]  # no evaluation.json in this folder
    with pytest.raises(Refusal, match="Unknown model family"):
        app.leaderboard("all", "cartoons")


def test_the_scene_pool_waits_while_a_judge_or_a_compare_is_answered(arena_app, tmp_path):
    assert not arena_app._people_waiting()
    assert arena_app.scenes.busy == arena_app._people_waiting  # what the pool asks before each window
    with arena_app.judging:
        assert arena_app._people_waiting()
    assert arena_app._people_waiting()  # and a moment after: with many judges the next request is coming
    time.sleep(arena_app.judging.linger)
    assert not arena_app._people_waiting()
    steps = arena_app.compare(str(photo(tmp_path)), "degrade")
    next(steps)
    assert arena_app._people_waiting()  # a Compare holds its lane until its last panel
    list(steps)
    assert not arena_app.lane.busy()


def test_freeze_heap_collects_the_garbage_then_puts_what_lives_out_of_the_collectors_walks():
    class Node:
        pass

    garbage, alive = Node(), Node()
    garbage.me, alive.me = garbage, alive  # cycles: only the collector frees them
    gone = weakref.ref(garbage)
    del garbage
    try:
        freeze_heap()
        assert gone() is None  # collected before the freeze, not kept forever
        assert gc.get_freeze_count() > 0 and all(o is not alive for o in gc.get_objects())  # frozen: not walked
    finally:
        gc.unfreeze()
    assert any(o is alive for o in gc.get_objects())


def test_a_committed_vote_is_never_reported_lost_when_the_next_pair_fails(arena_app, monkeypatch):
    """The vote commits, then the store fails while the next pair is issued: the judge reads that
    the vote counts (and how to go on), not "nothing was recorded"."""
    from restoration.arena.store import VoteStoreError

    session, token = pair(arena_app, None)

    def down(*args, **kwargs):
        raise VoteStoreError("the vote store postgresql://… did not answer")

    monkeypatch.setattr(arena_app.arena, "issue", down)
    out = arena_app.vote("A", session, token)
    assert "Your vote was recorded" in out["reveal"] and "nothing was recorded" not in out["reveal"]
    assert "the vote store cannot be reached right now" in out["warning"] and out["token"] is None
    assert arena_app.store.count() == 1
    monkeypatch.undo()
    assert arena_app.next_pair(session, None)["token"]  # "Skip this pair" goes on


def test_the_submit_tab_defaults_to_photos_and_links_its_doc(settings, tiny_models, tmp_path):
    """As Compare, photos first; the doc a link to the Space's copy (the catalogue names the Space)."""
    import shutil

    from restoration.settings import REPO

    weights = tmp_path / "weights"
    shutil.copytree(settings.weights_dir, weights)
    catalog = json.loads((weights / "models.json").read_text())
    space = json.loads((REPO / "weights" / "models.json").read_text())["space"]
    (weights / "models.json").write_text(json.dumps({"space": space, **catalog}))
    a = ArenaApp(dataclasses.replace(settings, weights_dir=weights), tiny_models)
    try:
        demo = build_app(a)
        by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
        assert by_id["submit-family"].value == "photo"
        link = f"[docs/submitting.md](https://huggingface.co/spaces/{space}/blob/main/docs/submitting.md)"
        assert link in by_id["submit-help"].value
    finally:
        a.close()
