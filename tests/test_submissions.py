"""Community submissions, with the real huggingface_hub client against the loopback Hub
(tests/fake_hub.py): the round trip from submission to a counted vote, one test per refusal, the
caps, and the bar: a copy of a shipped U-Net is scored exactly as the evaluation command scores it."""

import dataclasses
import json

import pytest
import torch

from restoration.arena.store import SCHEMA_VERSION, VoteStore
from restoration.arena.submissions import (
    APPROVED,
    PENDING,
    REJECTED,
    Refused,
    Rules,
    list_submissions,
    load_submitted_restorers,
    review,
    submission_name,
    submit,
)
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from restoration.settings import REPO
from tests.submission_support import hub_files, refused, refused_after
from tests.support import tiny_unet


@pytest.fixture
def good(tmp_path):
    """A small U-Net's folder as a submitter's training run leaves it."""
    return tiny_unet(seed=7).save_pretrained(tmp_path / "good")


@pytest.fixture
def subset(settings, tiny_imagenet):
    """Settings whose val set is the miniature Tiny ImageNet (12 images; no photos)."""
    return dataclasses.replace(settings, val_dir=tiny_imagenet)


# -------------------------------------------------------------------------------------------- round trip


def test_round_trip_submit_compare_approve_judge_vote(subset, app_store, good, fake_hub, tiny_models, small_examples,
                                                       tmp_path):
    from restoration.arena.app_state import ArenaApp

    commit = fake_hub.seed("alice/sharp-unet", hub_files(good))
    submission, _ = submit(app_store, f"alice/sharp-unet@{commit}", subset, family="lesson", client="alice-key")
    name = submission_name("alice/sharp-unet", commit)
    assert submission.name == name and submission.status == PENDING
    scored = submission.evaluation["tiny-imagenet"]
    assert scored["images"] == 12 and set(scored["degradations"]) == {"lesson", "bicubic", "jpeg75"}
    assert all(torch.isfinite(torch.tensor(r["model"]["psnr_pooled"])) for r in scored["degradations"].values())
    # Only the two checkpoint files were downloaded, at the commit; the README was never read.
    resolved = {path for method, path in fake_hub.requests if method == "GET" and "/resolve/" in path}
    assert resolved == {f"/alice/sharp-unet/resolve/{commit}/{CONFIG_NAME}",
                        f"/alice/sharp-unet/resolve/{commit}/{WEIGHTS_NAME}"}

    # A new start: loaded from the store like the shipped models; in Compare, not in the Judge.
    community, problems = load_submitted_restorers(app_store)
    assert not problems and [m.entry.name for m in community] == [name]
    assert community[0].entry.title == f"alice/sharp-unet @ {commit[:7]} · community, unreviewed"
    app = ArenaApp(subset, tiny_models + community, store=app_store)
    try:
        assert name in app.panel_keys and name not in app.arena.contenders
        table = list(app.compare(str(small_examples / "noise.png"), "degrade"))[-1]["table"]
        assert "alice/sharp-unet @ " + commit[:7] + " · community, unreviewed" in table
        assert not any("community" in row[1] for row in app.leaderboard()["ranking"].value["data"])
    finally:
        app.close()

    review(app_store, name, APPROVED, "sharp and clean", subset)
    community, _ = load_submitted_restorers(app_store)
    assert community[0].entry.title == f"alice/sharp-unet @ {commit[:7]} · community"
    app = ArenaApp(subset, tiny_models + community, store=app_store)
    try:
        assert name in app.arena.contenders
        for _ in range(200):  # pairs are drawn at random: until one shows the community model
            pair = app.next_pair(None, None)
            session, token = pair["session"], pair["token"]
            battle = app.arena.pending(session)
            if name in (battle.a.name, battle.b.name):
                break
        else:
            pytest.fail("the approved community model never appeared in a judge pair")
        side = "A" if battle.a.name == name else "B"
        assert app.vote(side, session, token)["reveal"].startswith("**Your last pair**")
        assert any(name in (a, b) for _j, _d, a, b, _, n, _f in app_store.judge_outcomes(3.0) if n == 1)
        titles = [row[1] for row in app.leaderboard()["ranking"].value["data"]]
        assert f"alice/sharp-unet @ {commit[:7]} · community" in titles  # marked on the leaderboard
        with open(app.export_votes()["csv"]) as f:
            exported = f.read()
        assert "alice/sharp-unet" in exported and commit in exported  # repo id and commit per vote
    finally:
        app.close()
    assert [s.reason for s in list_submissions(app_store)] == ["sharp and clean"]


def test_a_submission_that_no_longer_loads_is_skipped_in_one_line(subset, app_store, good, fake_hub, tmp_path,
                                                                  monkeypatch):
    from huggingface_hub import constants

    from tests.conftest import closed_port_url

    commit = fake_hub.seed("alice/sharp-unet", hub_files(good))
    submit(app_store, f"alice/sharp-unet@{commit}", subset, family="lesson")
    gone = closed_port_url()  # (closing the fake Hub would leave the client's kept-alive connection serving)
    monkeypatch.setattr(constants, "ENDPOINT", gone)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", gone + "/{repo_id}/resolve/{revision}/{filename}")
    models, problems = load_submitted_restorers(app_store, cache_dir=tmp_path / "empty-cache")  # Hub gone, no cache
    assert models == [] and len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("alice/sharp-unet @ ") and "not loaded (HubUnreachable" in problems[0]


# -------------------------------------------------------------------------------------------- refusals


def test_refuses_an_unknown_model_type(settings, app_store, good, fake_hub):
    files = hub_files(good)
    files[CONFIG_NAME] = json.dumps(json.loads(files[CONFIG_NAME]) | {"model_type": "esrgan"}).encode()
    commit = fake_hub.seed("eve/x", files)
    assert "'esrgan' is not one of unet, autoencoder" in refused(app_store, f"eve/x@{commit}", settings, "model type")


def test_refuses_a_classifier(settings, app_store, tiny_weights, fake_hub, tmp_path):
    from restoration.models.classifier import Classifier

    folder = Classifier(nfs=(8, 16, 32), nbks=(1, 1)).save_pretrained(tmp_path / "classifier")
    commit = fake_hub.seed("eve/x", hub_files(folder))
    assert "a classifier, not a restorer" in refused(app_store, f"eve/x@{commit}", settings, "model type")


@pytest.mark.parametrize("change, rule, value", [
    ({"nfs": [8, 16, 4096]}, "width", "nfs = [8, 16, 4096]"),
    ({"nfs": [8] * 9, "nbks": [1] * 8}, "depth", "9 levels"),
    ({"nbks": [1, 50]}, "blocks", "nbks = [1, 50]"),
    ({"nfs": "wide"}, "config", "nfs = 'wide'"),
    ({"dropout": 0.5}, "config", "unexpected keyword argument 'dropout'"),
    ({"act": "gelu_new"}, "config", "config.json: does not describe a UNet (unknown activation 'gelu_new'"),
    ({"mean": [0.5, 0.5]}, "config", "the model it describes does not run"),
])
def test_refuses_an_out_of_bound_config(settings, app_store, good, fake_hub, change, rule, value):
    files = hub_files(good)
    files[CONFIG_NAME] = json.dumps(json.loads(files[CONFIG_NAME]) | change).encode()
    commit = fake_hub.seed("eve/x", files)
    message = refused(app_store, f"eve/x@{commit}", settings, rule)
    assert value in message and "hf-cache" not in message  # no path of this server's


@pytest.mark.parametrize("extra, rule", [("pytorch_model.bin", "no pickles"), ("weights/model.pt", "no pickles"),
                                         ("train.py", "only our files")])
def test_refuses_extra_or_pickle_files_before_downloading_anything(settings, app_store, good, fake_hub, extra, rule):
    commit = fake_hub.seed("eve/x", hub_files(good) | {extra: b"\x80\x04K\x01."})
    assert extra in refused(app_store, f"eve/x@{commit}", settings, rule)
    assert not any(method == "GET" and "/resolve/" in path for method, path in fake_hub.requests)


def test_refuses_a_header_that_does_not_match_the_config(settings, app_store, good, fake_hub, tmp_path):
    other = tiny_unet(seed=1, cross_conv=True).save_pretrained(tmp_path / "other")
    files = hub_files(good) | {WEIGHTS_NAME: (other / WEIGHTS_NAME).read_bytes()}  # cross-conv weights, plain config
    commit = fake_hub.seed("eve/x", files)
    assert "weights do not match config.json" in refused(app_store, f"eve/x@{commit}", settings, "header")


def test_refuses_nan_outputs(settings, app_store, fake_hub, tmp_path):
    model = tiny_unet(seed=2)
    with torch.no_grad():
        model.to_rgb[0].bias[0] = float("nan")
    commit = fake_hub.seed("eve/x", hub_files(model.save_pretrained(tmp_path / "nan")))
    assert "NaN or infinite" in refused(app_store, f"eve/x@{commit}", settings, "finite outputs")


def test_refuses_outputs_out_of_range(settings, app_store, fake_hub, tmp_path):
    model = tiny_unet(seed=2)
    with torch.no_grad():
        model.to_rgb[0].bias.fill_(50.0)
    commit = fake_hub.seed("eve/x", hub_files(model.save_pretrained(tmp_path / "bright")))
    refused(app_store, f"eve/x@{commit}", settings, "output range")


def test_refuses_a_checkpoint_over_the_size_limit(settings, app_store, good, fake_hub):
    commit = fake_hub.seed("eve/x", hub_files(good))
    size = len(hub_files(good)[WEIGHTS_NAME])
    message = refused(app_store, f"eve/x@{commit}", settings, "size", rules=Rules(max_bytes=size - 1))
    assert f"{size:,} bytes (limit {size - 1:,})" in message
    assert not any(method == "GET" and "/resolve/" in path for method, path in fake_hub.requests)


def test_refuses_a_model_over_the_flop_limit(settings, app_store, good, fake_hub):
    commit = fake_hub.seed("eve/x", hub_files(good))
    assert "GFLOPs per output megapixel (limit 1: " in refused(app_store, f"eve/x@{commit}", settings, "FLOPs",
                                                              rules=Rules(max_gflops=1.0))
    refused(app_store, f"eve/x@{commit}", settings, "parameters", rules=Rules(max_params=1000))


def test_refuses_a_tag_and_a_commit_the_repo_does_not_have(settings, app_store, good, fake_hub, tmp_path):
    commit = fake_hub.seed("eve/x", hub_files(good))
    fake_hub.tag("eve/x", "v1", commit)
    assert "'v1' is not a 40-character commit" in refused(app_store, "eve/x@v1", settings, "pinned commit")
    assert "'main' is not" in refused(app_store, "eve/x@main", settings, "pinned commit")
    assert fake_hub.requests == []  # refused before asking the Hub
    assert "is not a commit of eve/x" in refused(app_store, f"eve/x@{'f' * 40}", settings, "pinned commit")


def test_a_moved_tag_does_not_move_a_submission(subset, app_store, good, fake_hub, tmp_path):
    """Submitted at a commit, a model stays those weights when its repo's tag (or main) moves on."""
    first = fake_hub.seed("alice/x", hub_files(good))
    fake_hub.tag("alice/x", "v1", first)
    submit(app_store, f"alice/x@{first}", subset)
    later = tiny_unet(seed=3)
    with torch.no_grad():
        later.to_rgb[0].bias[0] = float("nan")
    second = fake_hub.seed("alice/x", hub_files(later.save_pretrained(tmp_path / "later")))
    fake_hub.tag("alice/x", "v1", second)
    models, problems = load_submitted_restorers(app_store, cache_dir=tmp_path / "fresh-cache")  # downloaded again
    assert not problems and models[0].revision == first
    assert all(torch.equal(a, b) for a, b in zip(models[0].model.state_dict().values(),
                                                  tiny_unet(seed=7).state_dict().values()))


# -------------------------------------------------------------------------------------------- caps and review


def test_caps_a_client_a_day_and_the_pending_queue(subset, app_store, good, fake_hub):
    quick = dataclasses.replace(subset, submissions_per_day=2, max_pending=3, val_dir=subset.val_dir.parent / "none")
    commits = [fake_hub.seed(f"alice/m{i}", hub_files(good)) for i in range(5)]
    submit(app_store, f"alice/m0@{commits[0]}", quick, client="alice")
    submit(app_store, f"alice/m1@{commits[1]}", quick, client="alice")
    assert "2 downloads for this client's submissions in the last 24 hours (limit 2)" in refused_after(
        app_store, f"alice/m2@{commits[2]}", quick, "daily limit", client="alice")
    submit(app_store, f"alice/m2@{commits[2]}", quick, client="bob")
    assert "3 submissions await review (limit 3)" in refused_after(app_store, f"alice/m3@{commits[3]}", quick,
                                                                   "pending limit", client="carol")
    assert "is pending" in refused_after(app_store, f"alice/m0@{commits[0]}", quick, "already submitted", client="dan")
    # A day later the client may submit again (the pending queue still caps it).
    review(app_store, submission_name("alice/m0", commits[0]), REJECTED, "a copy", quick)
    submit(app_store, f"alice/m3@{commits[3]}", quick, client="alice", now=_tomorrow())


def test_downloads_count_against_the_daily_cap_and_refusals_before_them_do_not(subset, app_store, good, fake_hub,
                                                                              tmp_path):
    """A listing that breaks the rules is refused before any download and costs nothing; each
    download counts, refused or not; a client over the cap is refused before the Hub is asked."""
    quick = dataclasses.replace(subset, submissions_per_day=2, val_dir=subset.val_dir.parent / "none")
    pickled = fake_hub.seed("mallory/x", hub_files(good) | {"pytorch_model.bin": b"\x80\x04."})
    for _ in range(3):
        refused_after(app_store, f"mallory/x@{pickled}", quick, "no pickles", client="mallory")
    nan = tiny_unet(seed=2)
    with torch.no_grad():
        nan.to_rgb[0].bias[0] = float("nan")
    broken = fake_hub.seed("mallory/z", hub_files(nan.save_pretrained(tmp_path / "nan")))
    for _ in range(2):  # downloaded, then refused: each counts
        refused_after(app_store, f"mallory/z@{broken}", quick, "finite outputs", client="mallory")
    good_commit = fake_hub.seed("mallory/y", hub_files(good))
    asked = len(fake_hub.requests)
    refused_after(app_store, f"mallory/y@{good_commit}", quick, "daily limit", client="mallory")
    assert len(fake_hub.requests) == asked  # over the cap: the Hub is not asked
    submit(app_store, f"mallory/y@{good_commit}", quick, client="someone-else")


def _tomorrow() -> float:
    import time

    return time.time() + 86_400 + 60


def test_review_keeps_the_reason_and_caps_approved_contenders(subset, app_store, good, fake_hub):
    quick = dataclasses.replace(subset, max_approved=1, val_dir=subset.val_dir.parent / "none")
    names = []
    for i in range(2):
        commit = fake_hub.seed(f"alice/m{i}", hub_files(good))
        names.append(submit(app_store, f"alice/m{i}@{commit}", quick, client=f"c{i}")[0].name)
    with pytest.raises(Refused, match="^reason: "):
        review(app_store, names[0], REJECTED, "  ", quick)
    review(app_store, names[0], APPROVED, "fine", quick)
    with pytest.raises(Refused, match=r"^approved limit: 1 community models are contenders \(limit 1\)"):
        review(app_store, names[1], APPROVED, "", quick)
    review(app_store, names[1], REJECTED, "too similar to m0", quick)
    assert {s.name: (s.status, s.reason) for s in list_submissions(app_store)} == {
        names[0]: (APPROVED, "fine"), names[1]: (REJECTED, "too similar to m0")}
    assert [m.entry.name for m in load_submitted_restorers(app_store)[0]] == [names[0]]  # rejected ones are not loaded


def test_the_command_line(subset, good, fake_hub, monkeypatch, capsys):
    from restoration.arena.submit import main

    monkeypatch.setenv("RESTORATION_VOTES_DB", str(subset.votes_db))
    monkeypatch.setenv("RESTORATION_VAL_DIR", str(subset.val_dir.parent / "none"))
    monkeypatch.setenv("RESTORATION_PHOTO_VAL_DIR", str(subset.val_dir.parent / "none"))
    monkeypatch.setenv("RESTORATION_WEIGHTS_DIR", str(subset.weights_dir))
    commit = fake_hub.seed("alice/x", hub_files(good))
    main([f"alice/x@{commit}"])
    name = submission_name("alice/x", commit)
    assert f"approve {name}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="^refused: pinned commit: 'v2' is not"):
        main(["alice/x@v2"])
    main(["show", name])
    assert "checks: {'model_type': 'unet'" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="^refused: no such submission: nobody"):
        main(["approve", "nobody"])
    main(["reject", name, "--reason", "blurry"])
    out = capsys.readouterr().out
    assert out.startswith(f"{name}  rejected  alice/x@{commit}") and out.rstrip().endswith("— blurry")


# -------------------------------------------------------------------------------------------- the bar


def test_a_copy_of_a_shipped_unet_scores_as_the_evaluation_command_scores_it(subset, app_store, fake_hub, tmp_path,
                                                                             monkeypatch):
    """The shipped MSE U-Net, submitted from another repo: its stored figures are those
    `python -m restoration.inference.evaluate` gives the shipped folder on the same images (to 1e-3 dB), on
    Tiny ImageNet with semantic fidelity and on photos."""
    from PIL import Image

    from restoration.inference.evaluate import main as evaluate_main
    from restoration.models.auto import load_checkpoint
    from restoration.models.classifier import Classifier

    shipped = REPO / "weights" / "unet-mse"
    torch.manual_seed(5)  # a fidelity classifier that gets some of the 3 classes right, so fidelity is a number
    fidelity = Classifier(nfs=(8, 16, 32), nbks=(1, 1), n_classes=3).save_pretrained(tmp_path / "fidelity")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, size in enumerate([(96, 80), (72, 64), (64, 90)]):
        Image.effect_noise(size, 30 + 10 * i).convert("RGB").resize(size).save(photos / f"p{i}.png")
    settings = dataclasses.replace(subset, photo_val_dir=photos)
    scored = {}  # each family's submission is scored on its family's quick set only
    for family, dataset in [("lesson", "tiny-imagenet"), ("photo", "photos")]:
        commit = fake_hub.seed(f"bob/copy-{family}", hub_files(shipped))
        submission, _ = submit(app_store, f"bob/copy-{family}@{commit}", settings, family=family,
                               fidelity=load_checkpoint(fidelity).eval())
        assert list(submission.evaluation) == [dataset]
        scored[dataset] = submission.evaluation[dataset]["degradations"]

    monkeypatch.setenv("RESTORATION_FAST", "0")
    for dataset, data, extra in [("tiny-imagenet", subset.val_dir, ["--fidelity-classifier", str(fidelity)]), ("photos", photos, [])]:
        out = tmp_path / f"{dataset}.json"
        evaluate_main(["--data", str(data), "--models", str(shipped), "--limit", "200", "--threads", "1",
                       "--json", str(out), *extra])
        command = json.loads(out.read_text())["degradations"]
        ours = scored[dataset]
        assert set(ours) == set(command) == {"lesson", "bicubic", "jpeg75"}
        for degradation, results in command.items():
            expected, got = results["results"]["unet-mse"], ours[degradation]["model"]
            for key in ("psnr_pooled", "psnr_mean", "psnr_y"):
                assert got[key] == pytest.approx(expected[key], abs=1e-3), (dataset, degradation, key)
            for key in ("ssim", "ssim_y", "sharpness") + (("fidelity_top1", "fidelity") if dataset == "tiny-imagenet"
                                                          else ()):
                assert got[key] == pytest.approx(expected[key], abs=1e-6), (dataset, degradation, key)
            assert got["images"] == expected["images"]


def test_the_lifecycle_in_either_store(votes_target, subset, good, fake_hub):
    """SQLite and PostgreSQL keep submissions, their state and reason the same way."""
    quick = dataclasses.replace(subset, val_dir=subset.val_dir.parent / "none")
    app_store = VoteStore(votes_target)
    try:
        commit = fake_hub.seed("alice/x", hub_files(good))
        name = submit(app_store, f"alice/x@{commit}", quick, client="c")[0].name
        review(app_store, name, REJECTED, "blurry", quick)
        [s] = list_submissions(app_store)
        assert (s.name, s.repo_id, s.revision, s.status, s.reason) == (name, "alice/x", commit, REJECTED, "blurry")
        assert s.facts["model_type"] == "unet" and s.reviewed_at is not None
        assert app_store.schema_version() == SCHEMA_VERSION
    finally:
        app_store.close()


def test_the_submit_tab(subset, good, fake_hub, tiny_models, small_examples):
    """The app's handler: a refusal is one line and the app serves on; an accepted submission is
    in this replica's Compare at once (its scores and zoom), beside our models in the tab."""
    from restoration.arena.app_state import ArenaApp

    app = ArenaApp(dataclasses.replace(subset, val_dir=subset.val_dir.parent / "none"), tiny_models)
    try:
        text, gallery = app.submit("alice/x@v1", "lesson").values()
        assert text == "**Refused** — pinned commit: 'v1' is not a 40-character commit hash (a tag or branch can " \
                       "move; pin the commit)" and gallery == []
        commit = fake_hub.seed("alice/x", hub_files(good))
        text, gallery = app.submit(f"alice/x@{commit}", "lesson").values()
        title = f"alice/x @ {commit[:7]} · community, unreviewed"
        assert text.startswith("**Accepted, pending review**") and title in text
        assert [caption.split(" · ")[0] for _, caption in gallery][:3] == ["Low-resolution input", "Bicubic", "MSE U-Net"]
        assert any(caption.startswith(title) for _, caption in gallery)
        table = list(app.compare(str(small_examples / "noise.png"), "degrade"))[-1]["table"]
        assert title in table and submission_name("alice/x", commit) not in app.arena.contenders
    finally:
        app.close()


def test_figures_are_shown_beside_ours(subset, app_store, tiny_models):
    """`show` and the Submit tab: per dataset and degradation, bicubic, our models and the submission,
    scored by the same call on the same images; ours computed once and kept in the vote store."""
    from restoration.arena.submission_scores import evaluation_markdown, quick_evaluation, reference_evaluation

    ours = tiny_models[:1]
    assert reference_evaluation(app_store, ours, subset, compute=False) == {}  # not scored yet: the page does not wait
    reference = reference_evaluation(app_store, ours, subset)
    assert reference_evaluation(app_store, ours, subset, compute=False) == reference  # kept
    evaluation = quick_evaluation(tiny_unet(seed=7), subset)
    text = evaluation_markdown(evaluation, "alice/x @ 0123456 · community", reference, {"unet-mse": "MSE U-Net"})
    assert text.count("| bicubic |") == text.count("| MSE U-Net |") == text.count("| alice/x @ 0123456 · community |") == 3
    psnr = reference["unet-mse"]["tiny-imagenet"]["degradations"]["lesson"]["model"]["psnr_pooled"]
    assert f"| MSE U-Net | {psnr:.3f} |" in text


def test_the_command_honours_hf_endpoint(subset, good, fake_hub, tmp_path):
    """`python -m restoration.arena.submit` in a fresh process, the loopback Hub named only by HF_ENDPOINT."""
    import os
    import subprocess
    import sys

    commit = fake_hub.seed("alice/x", hub_files(good))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "RESTORATION_"))}
    env |= {"HF_ENDPOINT": fake_hub.url, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "home"),
            "HF_HUB_DISABLE_XET": "1", "RESTORATION_VOTES_DB": str(tmp_path / "v.db"),
            "RESTORATION_WEIGHTS_DIR": str(subset.weights_dir), "RESTORATION_VAL_DIR": str(tmp_path / "none"),
            "RESTORATION_PHOTO_VAL_DIR": str(tmp_path / "none"), "RESTORATION_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "restoration.arena.submit", f"alice/x@{commit}"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert f"alice--x-{commit[:10]}  pending  alice/x@{commit}" in out.stdout
    assert any(path.startswith("/alice/x/resolve/") for _, path in fake_hub.requests)


def test_a_folder_can_be_checked_before_it_is_uploaded(good, tmp_path, capsys):
    from restoration.arena.submit import main

    main(["check", str(good)])
    out = capsys.readouterr().out
    assert "passes every check: U-Net ×2 (takes the ×2 nearest upscale)" in out
    assert "python -m train.ship" in out and "train.push" not in out  # the upload command that exists
    (good / "metrics.jsonl").write_text("{}\n")  # a training run's folder, checked as it is
    with pytest.raises(SystemExit, match=r"^refused: only our files: .* is a training run's folder \(it holds "
                                         r"metrics.jsonl\): ship it first, python -m train.ship .* --to FOLDER"):
        main(["check", str(good)])
