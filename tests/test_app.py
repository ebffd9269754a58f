"""The app: its handlers called as plain functions, then the real server launched in-process and
driven through gradio_client (compare, judge, vote, leaderboard, export)."""

import csv
import dataclasses
import json
import socket
import struct
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app as app_module
from app import ArenaApp, build_app, launch
from tests.app_support import make_weights_dir


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


def test_compare_handler_gives_every_panel(arena_app, tmp_path):
    out = arena_app.compare({"path": str(photo(tmp_path)), "orig_name": "my photo.png"}, "degrade")
    n = len(arena_app.panel_keys)
    images, (table, files, slider, left, right, state) = out[:n], out[n:]
    assert arena_app.panel_keys == ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"]
    assert all(img.visible for img in images)
    assert images[2].label.startswith("MSE U-Net · ") and " dB · SSIM " in images[2].label
    assert "| Bicubic |" in table and "| Cross-conv U-Net |" in table
    assert [f.rsplit("/", 1)[1] for f in files][:2] == ["my photo-input.png", "my photo-bicubic.png"]
    assert all(Image.open(f).format == "PNG" for f in files)
    assert slider.label == "Bicubic  ◀ ▶  MSE U-Net"
    assert left.value == "bicubic" and right.value == "unet-mse" and ("Original", "original") in left.choices
    assert set(state["files"]) == set(arena_app.panel_keys)


def test_upscale_mode_hides_the_original(arena_app, tmp_path):
    out = arena_app.compare(str(photo(tmp_path, 30, 20)), "upscale")
    images = out[: len(arena_app.panel_keys)]
    assert images[-1].visible is False and all(img.visible for img in images[:-1])
    assert Image.open(out[len(arena_app.panel_keys) + 1][-1]).size == (60, 40)
    assert "PSNR" not in out[len(arena_app.panel_keys)]


def test_zoom_handler(arena_app, tmp_path):
    state = arena_app.compare(str(photo(tmp_path)), "degrade")[-1]
    slider = arena_app.zoom(state, "input", "unet-crossconv")
    assert "Low-resolution input" in slider.label and "Cross-conv U-Net" in slider.label
    assert arena_app.zoom(None, "input", "bicubic").value is None


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
        with pytest.raises(gr.Error, match=message):
            arena_app.compare(str(tmp_path / name), "degrade")
    with pytest.raises(gr.Error, match="Upload an image"):
        arena_app.compare(None, "degrade")
    assert len(arena_app.compare(str(photo(tmp_path)), "degrade")) == len(arena_app.panel_keys) + 6


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
        assert arena_app.compare(str(tmp_path / name), "degrade")[-1]["files"]
    files = arena_app.compare(str(tmp_path / "turned.jpg"), "degrade")[-1]["files"]
    assert Image.open(files["original"]).size == (16, 24)


def test_judge_and_vote_handlers(arena_app):
    session, token, low, original, a, b, _reveal, progress = arena_app.next_pair(None, None)
    assert session.startswith("s-") and token and low.size[0] * 2 == a.size[0] and a.size == b.size
    assert original is None and "**0**" in progress
    assert arena_app.start_judging(session, token) == (gr.skip(),) * 8  # a pair is already waiting

    out = arena_app.vote("A is better", session, token)
    assert out[0] == session and out[1] != token and "**1**" in out[-1]
    assert "You said A is better" in out[6] and "A was **" in out[6] and "U-Net**" in out[6]
    with pytest.warns(UserWarning, match="already been judged"):  # gr.Warning, outside a running app
        assert arena_app.vote("B is better", session, token)[6].startswith("This pair has already been judged")
    with pytest.warns(UserWarning, match="did not issue"):
        assert arena_app.vote("Tie", session, "forged")[6].startswith("This vote is for a pair")
    assert arena_app.store.count() == 1


def test_too_fast_votes_keep_the_pair(settings, tiny_models):
    a = ArenaApp(dataclasses.replace(settings, min_vote_seconds=60), tiny_models)
    session, token, *_ = a.next_pair(None, None)
    with pytest.warns(UserWarning, match="too fast"):
        out = a.vote("Both bad", session, token)
    assert out[1] == token and out[2] == gr.skip() and "too fast" in out[6] and a.store.count() == 0
    a.close()


def test_show_original_setting(settings, tiny_models):
    a = ArenaApp(dataclasses.replace(settings, show_original=True), tiny_models)
    original, side_a = a.next_pair(None, None)[3:5]
    assert original is not None and original.size == side_a.size
    a.close()


def test_leaderboard_and_export_handlers(arena_app, settings, tmp_path):
    summary, ranking, matrix = arena_app.leaderboard()
    assert "**0** valid votes" in summary and "No evaluation figures yet" in summary
    assert len(ranking.value["data"]) == 3
    session = None
    for answer in ["A", "A", "B", "tie", "both_bad"]:
        session, token, *_ = arena_app.next_pair(session, None)
        assert arena_app.vote(answer, session, token)[6].startswith("**You said")
    summary, ranking, matrix = arena_app.leaderboard()
    rows = ranking.value["data"]
    assert "**5** valid votes" in summary and sum(r[4] for r in rows) == 10
    assert {r[1] for r in rows} == {"MSE U-Net", "Perceptual U-Net", "Cross-conv U-Net"}
    assert matrix.value["headers"][0] == "Model (row) beats (column)" and len(matrix.value["data"]) == 3
    file = arena_app.export_votes()
    rows = list(csv.DictReader(Path(file).read_text().splitlines()))
    assert len(rows) == 5 and {r["session"] for r in rows} == {session}


def test_leaderboard_shows_the_evaluation(settings, tiny_models, tmp_path):
    weights = make_weights_dir(tmp_path / "w")
    results = {n: {"psnr_pooled": p, "psnr_mean": p, "ssim": s, "sharpness": 1, "ms_per_image": 1} for n, p, s in
               [("nearest", 24.0, 0.7), ("bicubic", 25.0, 0.75), ("unet-mse", 28.0, 0.85),
                ("unet-perceptual", 27.0, 0.83), ("unet-crossconv", 27.5, 0.84)]}
    (weights / "evaluation.json").write_text(json.dumps({"data": "val", "images": 10000, "command": "python -m "
                                                         "restoration.evaluate --json e.json", "results": results}))
    a = ArenaApp(dataclasses.replace(settings, weights_dir=weights), tiny_models)
    summary, ranking, _ = a.leaderboard()
    a.close()
    assert "on 10000 images; bicubic scores 25.00 dB" in summary
    by_model = {r[1]: r for r in ranking.value["data"]}
    assert by_model["MSE U-Net"][5:] == ["28.00", 1, "0.8500"] and by_model["Perceptual U-Net"][6] == 3


def test_main_refuses_to_start_without_a_restorer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESTORATION_WEIGHTS_DIR", str(tmp_path))
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
    assert "from fast.ai lesson 23: Solo U-Net." in app_module.header_markdown(["Solo U-Net"])


def test_app_needs_a_model(settings):
    with pytest.raises(ValueError, match="at least one restorer"):
        ArenaApp(settings, [])


# ------------------------------------------------------------------------------ the real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(settings, tiny_models):
    a = ArenaApp(settings, tiny_models)
    demo = build_app(a)
    port = free_port()
    launch(demo, settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
    yield a, client
    client.close()
    demo.close()
    a.close()


def test_through_gradio_client(served, tmp_path):
    a, client = served
    api = client.view_api(return_format="dict", print_info=False)
    assert {"/compare", "/judge", "/vote", "/leaderboard", "/export_votes"} <= set(api["named_endpoints"])

    out = client.predict(handle_file(str(photo(tmp_path))), "degrade", api_name="/compare")
    n = len(a.panel_keys)
    panels = out[:n]  # each an update: the image and its caption with the scores
    assert all(Image.open(p["value"]).format == "PNG" for p in panels)  # lossless panels
    assert panels[2]["label"].startswith("MSE U-Net · ") and "SSIM" in panels[2]["label"]
    assert "| MSE U-Net |" in out[n] and len(out[n + 1]) == n
    left, right = out[n + 2]["value"]  # the zoom slider, at full resolution
    assert Image.open(left).size == Image.open(right).size == Image.open(panels[-1]["value"]).size

    with pytest.raises(Exception, match="not an image"):
        (tmp_path / "text.png").write_text("hello")
        client.predict(handle_file(str(tmp_path / "text.png")), "degrade", api_name="/compare")

    _low, _original, side_a, side_b, _reveal, progress = client.predict(api_name="/judge")
    assert Image.open(side_a).size == Image.open(side_b).size and "**0**" in progress
    result = client.predict("B is better", api_name="/vote")
    assert "You said B is better" in result[4] and "**1**" in result[5]
    result = client.predict("tie", api_name="/vote")
    assert "You said a tie" in result[4] and "**2**" in result[5]
    result = client.predict("sideways", api_name="/vote")
    assert "Unknown answer" in result[4] and "**2**" in result[5]

    summary, ranking, matrix = client.predict(api_name="/leaderboard")
    assert "**2** valid votes" in summary and len(ranking["value"]["data"]) == 3
    assert matrix["value"]["headers"][0] == "Model (row) beats (column)"
    csv_file = client.predict(api_name="/export_votes")
    assert len(list(csv.DictReader(Path(csv_file).read_text().splitlines()))) == 2
