"""Loading checkpoints from the Hugging Face Hub at a pinned revision, with the real huggingface_hub
client against a loopback Hub (tests/fake_hub.py, never the real Hub), and the fallback to the local
copy, saying why, when the Hub is not asked, unreachable or answers with something unusable."""

import json
import os
import subprocess
import sys

import pytest

from restoration.hub.catalogue import NOT_PUBLISHED, UNREACHABLE, load_available_restorers, load_model, read_catalog
from restoration.hub.transfer import HubUnreachable, NotPublished, download_checkpoint
from restoration.models.auto import load_checkpoint
from restoration.models.checkpoint import CheckpointError
from restoration.settings import REPO as REPO_ROOT
from tests.conftest import closed_port_url
from tests.support import REVISION, make_weights_dir, same_weights, tiny_unet


def hub_files(folder) -> dict:
    return {f.name: f.read_bytes() for f in folder.iterdir()}


@pytest.fixture
def weights(tmp_path):
    return make_weights_dir(tmp_path / "weights")


@pytest.fixture
def published(tmp_path):
    """What the Hub holds: a model whose weights differ from the local copy, so the test can tell
    which one was loaded."""
    return tiny_unet(seed=99).save_pretrained(tmp_path / "published")


@pytest.fixture
def unreachable(monkeypatch, tmp_path):
    """HF_ENDPOINT at a closed port; records any sleep of the client's retry loop."""
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub import constants

    url = closed_port_url()
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    sleeps = []
    monkeypatch.setattr(hf_http.time, "sleep", sleeps.append)
    return sleeps


def entry(weights, name="unet-mse"):
    return next(e for e in read_catalog(weights) if e.name == name)


def test_downloads_the_pinned_revision(weights, published, fake_hub):
    fake_hub.seed("test-org/unet-mse", hub_files(published), commit=REVISION)
    loaded = load_model(entry(weights), weights, source="hub")
    assert loaded.source == "hub" and loaded.revision == REVISION and loaded.fallback is None
    assert loaded.note == f"MSE U-Net: Hugging Face Hub test-org/unet-mse @ {REVISION[:10]}"
    assert same_weights(loaded.model, load_checkpoint(published))
    assert not same_weights(loaded.model, load_checkpoint(weights / "unet-mse"))
    paths = {path for _, path in fake_hub.requests if "/resolve/" in path}
    assert paths == {f"/test-org/unet-mse/resolve/{REVISION}/config.json",
                     f"/test-org/unet-mse/resolve/{REVISION}/model.safetensors"}


def test_a_second_load_comes_from_the_cache(weights, published, fake_hub):
    fake_hub.seed("test-org/unet-mse", hub_files(published), commit=REVISION)
    load_model(entry(weights), weights, source="hub")
    fake_hub.close()
    again = load_model(entry(weights), weights, source="hub")  # server gone: a pinned commit needs no call
    assert again.source == "hub"


def test_falls_back_to_local_when_the_hub_has_no_such_file(weights, fake_hub):
    loaded = load_model(entry(weights), weights, source="hub")
    assert loaded.source == "local" and loaded.revision.startswith("local:")
    assert loaded.fallback == "the Hub failed" and "RepositoryNotFoundError" in loaded.note
    assert any("/resolve/" in path for _, path in fake_hub.requests)  # it did ask


def test_a_download_that_is_not_the_checkpoint_it_claims_is_refused(weights, published, fake_hub):
    files = hub_files(published)
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps(config | {"nfs": [8, 16, 48]}).encode()  # weights no longer fit it
    fake_hub.seed("test-org/unet-mse", files, commit=REVISION)
    with pytest.raises(CheckpointError, match="not a usable checkpoint.*wrong shapes"):
        download_checkpoint("test-org/unet-mse", REVISION)
    truncated = hub_files(published) | {"model.safetensors": hub_files(published)["model.safetensors"][:-100]}
    commit = fake_hub.seed("test-org/unet-mse", truncated)
    with pytest.raises(CheckpointError, match="not a usable checkpoint.*truncated"):
        download_checkpoint("test-org/unet-mse", commit)
    loaded = load_model(entry(weights), weights, source="hub")
    assert loaded.source == "local" and loaded.fallback == "the Hub failed"


def test_an_unreachable_hub_fails_at_once_without_retries(weights, unreachable):
    with pytest.raises(HubUnreachable, match="did not answer"):
        download_checkpoint("test-org/unet-mse", REVISION)
    assert unreachable == []  # the client never slept in its retry loop
    models, problems = load_available_restorers(weights, source="hub")
    assert not problems and [m.source for m in models] == ["local"] * 3
    assert all(m.fallback == UNREACHABLE for m in models)
    assert "the Hub is unreachable: HubUnreachable" in models[0].note
    assert all("the Hub was not asked: it was unreachable for an earlier model" in m.note for m in models[1:])
    assert unreachable == []


def test_an_unpinned_revision_is_not_published_and_never_asked(weights, fake_hub):
    catalog = json.loads((weights / "models.json").read_text())
    for row in catalog["models"]:
        row["revision"] = None
    (weights / "models.json").write_text(json.dumps(catalog))
    with pytest.raises(NotPublished):
        download_checkpoint("test-org/unet-mse", None)
    models, _ = load_available_restorers(weights, source="hub")
    assert all(m.source == "local" and m.fallback == NOT_PUBLISHED for m in models)
    assert "no pinned revision" in models[0].note
    assert fake_hub.requests == []


def test_a_branch_name_is_not_a_pin(weights, fake_hub):
    with pytest.raises(CheckpointError, match="pin a revision"):
        download_checkpoint("test-org/unet-mse", "main")
    assert fake_hub.requests == []


def test_the_app_says_where_each_model_came_from(weights, published, fake_hub, tmp_path):
    from restoration.arena.app_state import ArenaApp
    from restoration.hub.provenance import source_label
    from restoration.settings import Settings

    fake_hub.seed("test-org/unet-mse", hub_files(published), commit=REVISION)
    models, problems = load_available_restorers(weights, source="hub")
    assert [m.source for m in models] == ["hub", "local", "local"] and not problems
    app = ArenaApp(Settings(weights_dir=weights, votes_db=tmp_path / "v.db", val_dir=tmp_path / "none",
                            photo_val_dir=tmp_path / "none"), models)
    notes = [m.note for m in models]  # what `python app.py` prints at start
    assert notes[0].startswith("MSE U-Net: Hugging Face Hub test-org/unet-mse")
    assert source_label(models[0]) == f"Hub test-org/unet-mse @ {REVISION[:10]}"
    assert source_label(models[1]).endswith("(the Hub failed)") and "RepositoryNotFoundError" in notes[1]
    assert "RepositoryNotFoundError" in app.provenance()  # and the page, in its provenance
    app.close()


def test_hf_endpoint_from_the_environment(weights, published, fake_hub, tmp_path):
    """As on a Space: HF_ENDPOINT and RESTORATION_MODEL_SOURCE set before anything is imported."""
    fake_hub.seed("test-org/unet-mse", hub_files(published), commit=REVISION)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"HF_ENDPOINT": fake_hub.url, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "home"),
            "RESTORATION_MODEL_SOURCE": "hub", "RESTORATION_WEIGHTS_DIR": str(weights), "PYTHONPATH": str(REPO_ROOT)}
    script = ("from restoration.settings import Settings; from restoration.hub.catalogue import load_available_restorers; "
              "s = Settings.from_env(); ms, _ = load_available_restorers(s.weights_dir, s.model_source); "
              "print('|'.join(m.source for m in ms))")
    out = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hub|local|local"
