"""Foreign architectures in the arena (foreign.py, submission_checks.py, submissions.py), with the real
huggingface_hub client against the loopback Hub (tests/fake_hub.py): small randomly initialised
models of three spandrel architectures of different kinds, Real-ESRGAN's compact CNN, SPAN and a
light SwinIR (tests/support.tiny_spandrel), submitted, detected, checked, scored on their
family's quick set, shown in their family's Compare, approved, judged and counted, in both stores;
one test per refusal; `check` on folders; the runner's windows for a model of the low-resolution
image; the scene renderer's child process rebuilding one."""

import dataclasses
import json
import time

import pytest
import torch

from restoration.arena.store import VoteStore
from restoration.arena.submission_checks import Rules, check_folder
from restoration.arena.submission_scores import QUICK_SETS
from restoration.arena.submissions import APPROVED, load_submitted_restorers, review, submit
from restoration.inference.runner import Restorer
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from restoration.models.foreign import LICENCES, ForeignModel
from tests.submission_support import refused
from tests.support import safetensors_bytes, tiny_spandrel, write_photos

KINDS = {  # kind → (architecture as spandrel names it, its code's licence)
    "compact": ("RealESRGAN Compact", "BSD-3-Clause"),
    "span": ("SPAN", "Apache-2.0"),
    "swinir": ("SwinIR", "Apache-2.0"),
}


def weights(kind: str, scale: int = 2, seed: int = 0) -> dict:
    return {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel(kind, scale, seed)), "README.md": b"# a foreign model\n"}


@pytest.fixture
def photos(tmp_path):
    """Two photos as small as a photo may be (320 pixels on the long side): the photo family's quick
    set, and its Judge scenes are cut from them (a smaller picture is a thumbnail, the lesson's)."""
    return write_photos(tmp_path / "photos", 2)


@pytest.fixture
def arena(settings, tiny_imagenet, photos):
    """Settings with both families' quick sets: the miniature Tiny ImageNet and two small photos."""
    return dataclasses.replace(settings, val_dir=tiny_imagenet, photo_val_dir=photos)


# -------------------------------------------------------------------------------------------- end to end


def test_three_architectures_end_to_end(votes_target, arena, fake_hub, tiny_models, small_examples):
    """Submitted, detected, checked, scored (its family's set), in its family's Compare; approved,
    judged in its family's pairs, counted on the leaderboard: SQLite and PostgreSQL alike."""
    from restoration.arena.app_state import ArenaApp

    families = {"compact": "lesson", "span": "photo", "swinir": "photo"}
    app_store = VoteStore(votes_target)
    try:
        names, titles, commits = {}, {}, {}
        for kind, (architecture, licence) in KINDS.items():
            repo = f"{kind}-author/{kind}-x2"
            commit = commits[kind] = fake_hub.seed(repo, weights(kind))
            s, loaded = submit(app_store, f"{repo}@{commit}", arena, family=families[kind], client=kind)
            assert (s.facts["model_type"], s.facts["architecture"], s.facts["licence"], s.facts["scale"]) == \
                ("spandrel", architecture, licence, 2)
            assert s.facts["input"] == "the low-resolution image" and s.facts["gflops_per_megapixel"] > 0
            assert list(s.evaluation) == [QUICK_SETS[families[kind]]]  # its family's quick set, and only it
            scores = s.evaluation[QUICK_SETS[families[kind]]]["degradations"]
            assert set(scores) == {"lesson", "bicubic", "jpeg75"}
            assert all(torch.isfinite(torch.tensor(r["model"]["psnr_pooled"])) for r in scores.values())
            assert s.title == f"{repo} @ {commit[:7]} · {architecture} ({licence}) · community, unreviewed"
            assert loaded.entry.architecture == architecture and loaded.entry.licence == licence
            names[kind], titles[kind] = s.name, s.title
        # No config.json in these repos: only the weights were downloaded, at their commits.
        resolved = {path for method, path in fake_hub.requests if method == "GET" and "/resolve/" in path}
        assert resolved == {f"/{kind}-author/{kind}-x2/resolve/{commits[kind]}/{WEIGHTS_NAME}" for kind in KINDS}

        community, problems = load_submitted_restorers(app_store)  # a new start: from the cache, checked again
        assert not problems and sorted(m.entry.name for m in community) == sorted(names.values())
        app = ArenaApp(arena, tiny_models + community, store=app_store)
        try:
            for family in ("photo", "lesson"):
                table = list(app.compare(str(small_examples / "noise.png"), "degrade", family=family))[-1]["table"]
                for kind in KINDS:
                    assert (titles[kind] in table) == (families[kind] == family), (family, kind)
            assert not set(names.values()) & set(app.arena.contenders)  # pending: Compare only
        finally:
            app.close()

        for name in names.values():
            review(app_store, name, APPROVED, "clean", arena)
        community, _ = load_submitted_restorers(app_store)
        app = ArenaApp(arena, tiny_models + community, store=app_store)
        try:
            assert set(names.values()) <= set(app.arena.contenders)
            family_of = {m.entry.name: m.entry.family for m in app.models}
            deadline = time.monotonic() + 120
            while app.scenes.ready() < 2 and time.monotonic() < deadline:  # a scene of each family (they alternate)
                time.sleep(0.1)
            voted = set()
            for _ in range(400):  # pairs are drawn at random: until each has been judged once
                pair = app.next_pair(None, None)
                battle = app.arena.pending(pair["session"])
                pair_names = {battle.a.name, battle.b.name}
                wanted = (pair_names & set(names.values())) - voted
                if not wanted:
                    continue
                assert len({family_of.get(n, "bicubic") for n in pair_names} - {"bicubic"}) == 1  # one family
                assert app.vote("A", pair["session"], pair["token"])["reveal"].startswith("**Your last pair**")
                voted |= wanted
                if voted == set(names.values()):
                    break
            assert voted == set(names.values()), "not every architecture appeared in a judge's pair"
            counted = {side for _j, _d, a, b, _o, _n, _f in app_store.judge_outcomes(3.0) for side in (a, b)}
            assert set(names.values()) <= counted
            for kind, title in titles.items():  # on its family's leaderboard, with its architecture and licence
                ranked = [row[1] for row in app.leaderboard(family=families[kind])["ranking"].value["data"]]
                assert title.replace(", unreviewed", "") in ranked
        finally:
            app.close()
    finally:
        app_store.close()


# -------------------------------------------------------------------------------------------- refusals


def test_refuses_a_x4_model(settings, app_store, fake_hub):
    commit = fake_hub.seed("eve/span-x4", weights("span", scale=4))
    assert "SPAN (8nf) upscales ×4; the arena compares ×2 models" in refused(app_store, f"eve/span-x4@{commit}", settings,
                                                                              "scale")


def test_refuses_a_model_that_is_not_super_resolution(settings, app_store, fake_hub):
    commit = fake_hub.seed("eve/denoiser", weights("compact", scale=1))
    assert "is a Restoration model (×1), not super-resolution" in refused(app_store, f"eve/denoiser@{commit}", settings,
                                                                          "task")


def test_refuses_a_pickle_before_downloading_anything(settings, app_store, fake_hub):
    commit = fake_hub.seed("eve/esrgan", {"RealESRGAN_x2plus.pth": b"\x80\x04K\x01.", "README.md": b"#\n"})
    assert "'RealESRGAN_x2plus.pth'" in refused(app_store, f"eve/esrgan@{commit}", settings, "no pickles")
    assert not any(method == "GET" and "/resolve/" in path for method, path in fake_hub.requests)
    disguised = fake_hub.seed("eve/disguised", {WEIGHTS_NAME: b"\x80\x04\x95" + b"\x00" * 64})  # a pickle, renamed
    assert "not a safetensors file" in refused(app_store, f"eve/disguised@{disguised}", settings, "header")


def test_refuses_too_many_flops(settings, app_store, fake_hub):
    commit = fake_hub.seed("eve/span", weights("span"))
    message = refused(app_store, f"eve/span@{commit}", settings, "FLOPs", rules=Rules(max_gflops=1.0))
    assert "GFLOPs per output megapixel (limit 1: Compare must stay interactive on 2 cores)" in message


def test_refuses_a_header_that_lies(settings, app_store, fake_hub):
    good = weights("compact")[WEIGHTS_NAME]
    n = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [s * 2 for s in header[name]["shape"]]  # more values than its bytes hold
    text = json.dumps(header).encode()
    lying = len(text).to_bytes(8, "little") + text + good[8 + n:]
    commit = fake_hub.seed("eve/lying", {WEIGHTS_NAME: lying})
    assert f"tensor {name!r}" in refused(app_store, f"eve/lying@{commit}", settings, "header")


def test_refuses_shapes_that_describe_a_huge_model_before_it_is_built(settings, app_store, fake_hub):
    """SwinIR's window is read off one tensor's length: a 150² window would make its position index
    150⁴ values. The build is stopped by the allocation cap, not by the machine's memory."""
    state = tiny_spandrel("swinir").state_dict()
    state = {k: (torch.zeros(150 * 150, 1, dtype=torch.long) if k.endswith("relative_position_index") else v)
             for k, v in state.items()}
    from safetensors.torch import save

    commit = fake_hub.seed("eve/window", {WEIGHTS_NAME: save({k: v.contiguous() for k, v in state.items()})})
    assert "would allocate over 1 GiB" in refused(app_store, f"eve/window@{commit}", settings, "build size")


def test_refuses_tensors_of_no_known_architecture_and_a_config_that_names_another(settings, app_store, fake_hub):
    from safetensors.torch import save

    commit = fake_hub.seed("eve/unknown", {WEIGHTS_NAME: save({"mystery.weight": torch.zeros(4, 3, 3, 3)})})
    assert "no architecture of spandrel's main package" in refused(app_store, f"eve/unknown@{commit}", settings,
                                                                   "architecture")
    commit = fake_hub.seed("eve/named", weights("span") | {CONFIG_NAME: b'{"model_type": "spandrel", "architecture": '
                                                                       b'"SwinIR"}'})
    assert "config.json says 'SwinIR', the tensors are SPAN's" in refused(app_store, f"eve/named@{commit}", settings,
                                                                           "architecture")


def test_a_config_may_name_the_architecture(settings, app_store, fake_hub):
    commit = fake_hub.seed("alice/named", weights("span") | {CONFIG_NAME: b'{"model_type": "spandrel", '
                                                                           b'"architecture": "SPAN"}'})
    s, _ = submit(app_store, f"alice/named@{commit}", settings)
    assert s.facts["architecture_id"] == "SPAN" and s.family == "photo"  # photos by default, as the app


def test_every_architecture_of_the_main_package_has_a_licence():
    from spandrel import MAIN_REGISTRY

    assert {str(a.architecture.id) for a in MAIN_REGISTRY} <= set(LICENCES)


# -------------------------------------------------------------------------------------------- check FOLDER


@pytest.mark.parametrize("kind", list(KINDS))
def test_check_accepts_a_folder_of_each_architecture_naming_it_and_its_scale(kind, tmp_path, settings, monkeypatch,
                                                                              capsys):
    from restoration.arena.submit import main

    monkeypatch.setenv("RESTORATION_VOTES_DB", str(tmp_path / "v.db"))
    folder = tmp_path / kind
    folder.mkdir()
    (folder / WEIGHTS_NAME).write_bytes(weights(kind)[WEIGHTS_NAME])
    main(["check", str(folder)])
    captured = capsys.readouterr()
    architecture, licence = KINDS[kind]
    assert f"passes every check: {architecture} ×2 (code: {licence}; takes the low-resolution image)" in captured.out
    assert captured.err == ""


@pytest.mark.parametrize("files, message", [
    ({WEIGHTS_NAME: weights("compact", scale=4)[WEIGHTS_NAME]}, "refused: scale: RealESRGAN Compact (8nf, 2nc) upscales ×4"),
    ({"model.pth": b"\x80\x04K\x01."}, "refused: no pickles: the folder holds 'model.pth'"),
    ({WEIGHTS_NAME: b"\x80\x04\x95" + b"\x00" * 64}, "refused: header: model.safetensors: not a safetensors file"),
])
def test_check_refuses_a_x4_folder_and_a_pickle_in_one_line(files, message, tmp_path, monkeypatch, capsys):
    from restoration.arena.submit import main

    monkeypatch.setenv("RESTORATION_VOTES_DB", str(tmp_path / "v.db"))
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(folder)])
    assert str(exit_.value).startswith(message) and "\n" not in str(exit_.value)
    assert "Traceback" not in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- running them


@pytest.mark.parametrize("kind", ["compact", "swinir"])
def test_windows_of_a_model_of_the_low_resolution_image_match_the_whole_image(kind, tmp_path):
    """Windows cut on the low-resolution image with their overlap, padded to the sizes the
    architecture asks for (SwinIR: at least 16 a side): the output of the whole image."""
    model = check_and_load(kind, tmp_path)
    low = torch.rand(3, 45, 38)
    restorer = Restorer(model, window=48, overlap=16, fast=False)
    assert restorer.window >= model.minimum and restorer.scale == 2
    tiled = restorer(low)
    with torch.inference_mode():
        whole = model.restore(low[None])[0]
    assert tiled.shape == whole.shape == (3, 90, 76)
    assert (tiled - whole).abs().max().item() < (1e-4 if kind == "compact" else 0.02)
    eight_bit = restorer((low * 255).round().to(torch.uint8))
    assert eight_bit.dtype == torch.uint8 and eight_bit.shape == (3, 90, 76)


def check_and_load(kind: str, tmp_path) -> ForeignModel:
    folder = tmp_path / kind
    folder.mkdir()
    (folder / WEIGHTS_NAME).write_bytes(weights(kind)[WEIGHTS_NAME])
    check_folder(folder)
    from safetensors.torch import load_file

    return ForeignModel.from_state_dict(load_file(folder / WEIGHTS_NAME))


def test_the_scene_renderers_child_rebuilds_a_foreign_model_from_its_tensors(settings, tmp_path):
    """render_process.ModelSpec sends safetensors bytes: spandrel detects the model again there."""
    from restoration.arena.render_process import ModelSpec
    from restoration.hub.catalogue import LoadedModel, ModelEntry

    model = check_and_load("span", tmp_path)
    loaded = LoadedModel(ModelEntry("span", "SPAN", ""), model, "hub", "0" * 40, "")
    rebuilt, restorer = ModelSpec.of(loaded, Restorer.from_settings(model, settings, fast=False)).build(settings)
    low = torch.rand(3, 20, 24)
    assert isinstance(rebuilt.model, ForeignModel) and torch.equal(restorer(low), Restorer(model, fast=False)(low))
