"""Shared fixtures: a miniature Tiny ImageNet in the published layout, generated on the fly, and
for the app a tiny weights folder, examples and Settings that point at them. The whole session
uses a Gradio temp folder of its own (`pytest_configure`)."""

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restoration.arena.store import VoteStore
from restoration.settings import REPO, Settings
from tests.support import free_port, make_weights_dir

WNIDS = ["n01443537", "n01629819", "n01641577"]
WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra salamandra",
         "n01641577": "bullfrog, Rana catesbeiana"}
TRAIN_PER_CLASS = 16
VAL_IMAGES = 12


def _picture(rng, size=64) -> np.ndarray:
    """A 64×64 RGB image with structure at several scales (smooth colour fields plus detail), so
    crops are distinguishable and restoration has something to do."""
    coarse = rng.random((8, 8, 3))
    smooth = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC))
    detail = rng.normal(0, 25, (size, size, 3))
    return np.clip(smooth + detail, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory):
    """3 classes × 16 train images and 12 val images, 64×64 JPEGs. The first train image of the
    second class (train[16] in sorted order) is grayscale, as some real Tiny ImageNet images are."""
    root = tmp_path_factory.mktemp("tiny-imagenet-200")
    rng = np.random.default_rng(0)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\t{name}\n" for w, name in WORDS.items())
                                    + "n00000000\tsomething else\n")
    for wnid in WNIDS:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(TRAIN_PER_CLASS):
            img = Image.fromarray(_picture(rng))
            if wnid == WNIDS[1] and i == 0:
                img = img.convert("L")
            img.save(folder / f"{wnid}_{i}.JPEG", quality=90)
    val = root / "val" / "images"
    val.mkdir(parents=True)
    rows = []
    for i in range(VAL_IMAGES):
        Image.fromarray(_picture(rng)).save(val / f"val_{i}.JPEG", quality=90)
        rows.append(f"val_{i}.JPEG\t{WNIDS[i % len(WNIDS)]}\t0\t0\t63\t63\n")
    (root / "val" / "val_annotations.txt").write_text("".join(rows))
    return root


def pytest_configure(config):
    """Gradio (uploads, served files) and gradio_client (downloads) write to GRADIO_TEMP_DIR, else
    to the machine's shared /tmp/gradio, where a test run's files would pile up. Both read it when
    imported, so it is set here, before any test module imports them, and removed at the end."""
    config.gradio_temp_dir = tempfile.mkdtemp(prefix="pytest-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = config.gradio_temp_dir


def pytest_unconfigure(config):
    folder = getattr(config, "gradio_temp_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return make_weights_dir(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def small_examples(tmp_path_factory) -> Path:
    """A few of the shipped examples (small ones, so the tests stay fast)."""
    folder = tmp_path_factory.mktemp("examples")
    for p in sorted((REPO / "examples").glob("tinyimagenet-*"))[:3]:
        shutil.copy(p, folder / p.name)
    Image.effect_noise((96, 80), 40).convert("RGB").save(folder / "noise.png")
    return folder


@pytest.fixture
def settings(tiny_weights, small_examples, tmp_path) -> Settings:
    return Settings(weights_dir=tiny_weights, examples_dir=small_examples, val_dir=tmp_path / "no-val",
                    photo_val_dir=tmp_path / "no-photos",
                    votes_db=tmp_path / "votes.db", threads=1, min_vote_seconds=0.0, votes_per_minute=1000,
                    address_votes_per_minute=1000, pairs_per_minute=10_000,
                    bootstrap_rounds=50, max_pixels=1 << 20, tile_size=128, tile_overlap=16,
                    scene_process=False)  # a thread: a child process costs seconds per app (test_render_process.py)


@pytest.fixture(scope="session")
def tiny_models(tiny_weights):
    from restoration.hub.catalogue import load_available_restorers

    models, problems = load_available_restorers(tiny_weights)
    assert not problems
    return models


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A loopback Hub (tests/fake_hub.py) that the real huggingface_hub client talks to, with a
    fresh cache and a token. HF_ENDPOINT is read when the library is imported, so its constants are
    patched as well as the environment. Xet is off: the client uploads through LFS (see fake_hub)."""
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub

    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_test_token")
    yield hub
    hub.close()


def closed_port_url() -> str:
    """An address on this machine where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on loopback for the session (bench/postgres.py), or a skip
    that says why there is none; with REQUIRE_POSTGRES=1 (CI) a missing PostgreSQL is a failure."""
    from bench.postgres import Cluster

    # fsync off: the tests kill app processes, never the server's machine
    cluster = cluster_or_skip(lambda: Cluster(fsync=False), required=os.environ.get("REQUIRE_POSTGRES") == "1")
    yield cluster
    cluster.remove()


def cluster_or_skip(start, required: bool):
    """`start()`'s cluster; when PostgreSQL is missing, a skip that says why, or with `required`
    (REQUIRE_POSTGRES=1, as in CI) a failure."""
    from bench.postgres import PostgresMissing

    try:
        return start()
    except PostgresMissing as e:
        if required:
            pytest.fail(f"REQUIRE_POSTGRES=1 but {e}")
        pytest.skip(f"no PostgreSQL here: {e}")


@pytest.fixture
def postgres_url(postgres) -> str:
    """A fresh, empty database in the session's cluster."""
    return postgres.create_database(f"t_{secrets.token_hex(6)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def votes_target(request, tmp_path):
    """What RESTORATION_VOTES_DB would say, for each backend: a SQLite file or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "votes.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(votes_target):
    """A vote store on each backend."""
    s = VoteStore(votes_target)
    yield s
    s.close()


@pytest.fixture
def app_store(settings):
    """The vote store `settings` names (SQLite), the one an ArenaApp on `settings` opens too."""
    s = VoteStore(settings.votes_db)
    yield s
    s.close()
