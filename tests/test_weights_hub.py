"""Loading checkpoints from the Hugging Face Hub at a pinned revision, against a loopback server
that answers the way the Hub's resolve endpoint does (never the real Hub), and the fallback to the
local copy when the Hub fails."""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from restoration.settings import REPO as REPO_ROOT
from restoration.weights import load_available_restorers, load_model, read_catalog
from tests.app_support import REVISION, make_weights_dir, tiny_unet


class FakeHub(http.server.ThreadingHTTPServer):
    """Serves `files[(repo_id, revision, filename)]` at /{repo_id}/resolve/{revision}/{filename},
    with the headers huggingface_hub reads: X-Repo-Commit (the commit the revision resolves to),
    ETag / X-Linked-Etag (the blob's hash, which names it in the cache) and Content-Length.
    Unknown files get the Hub's 404 with X-Error-Code."""

    def __init__(self, files: dict):
        self.files, self.requests = files, []
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class FakeHubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def _answer(self, body: bool):
        self.server.requests.append((self.command, self.path))
        parts = self.path.split("?")[0].strip("/").split("/")
        # /{org}/{name}/resolve/{revision}/{filename}
        if len(parts) == 5 and parts[2] == "resolve":
            key = (f"{parts[0]}/{parts[1]}", parts[3], parts[4])
            data = self.server.files.get(key)
            if data is not None:
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", key[1])
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound")
        self.send_header("X-Error-Message", "Entry not found")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)


def hub_files(model_folder: Path, repo_id: str, revision: str) -> dict:
    return {(repo_id, revision, f.name): f.read_bytes() for f in model_folder.iterdir()}


@pytest.fixture
def weights(tmp_path):
    return make_weights_dir(tmp_path / "weights")


@pytest.fixture
def published(tmp_path):
    """What the Hub holds: a model whose weights differ from the local copy, so the test can tell
    which one was loaded."""
    folder = tiny_unet(seed=99).save_pretrained(tmp_path / "published")
    return folder


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """Point huggingface_hub at `url` with a fresh cache. HF_ENDPOINT is read when the library is
    imported, so its constants are patched as well as the environment."""
    from huggingface_hub import constants

    def point_at(url: str):
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return point_at


def entry(weights, name="unet-mse"):
    return next(e for e in read_catalog(weights) if e.name == name)


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_downloads_the_pinned_revision(weights, published, hub_env):
    hub = FakeHub(hub_files(published, "test-org/unet-mse", REVISION))
    hub_env(hub.url)
    loaded = load_model(entry(weights), weights, source="hub")
    hub.shutdown()
    assert loaded.source == "hub" and loaded.revision == REVISION
    assert loaded.note == f"MSE U-Net: Hugging Face Hub test-org/unet-mse @ {REVISION[:10]}"
    from restoration.checkpoint import load_checkpoint

    assert same_weights(loaded.model, load_checkpoint(published))
    assert not same_weights(loaded.model, load_checkpoint(weights / "unet-mse"))
    paths = {path for _, path in hub.requests if "/resolve/" in path}  # (the library may ask /api/... too)
    assert paths == {f"/test-org/unet-mse/resolve/{REVISION}/config.json",
                     f"/test-org/unet-mse/resolve/{REVISION}/model.safetensors"}


def test_a_second_load_comes_from_the_cache(weights, published, hub_env):
    hub = FakeHub(hub_files(published, "test-org/unet-mse", REVISION))
    hub_env(hub.url)
    load_model(entry(weights), weights, source="hub")
    hub.shutdown()
    hub.server_close()
    again = load_model(entry(weights), weights, source="hub")  # server gone: a pinned commit needs no call
    assert again.source == "hub"


def test_falls_back_to_local_when_the_hub_has_no_such_file(weights, hub_env):
    hub = FakeHub({})
    hub_env(hub.url)
    loaded = load_model(entry(weights), weights, source="hub")
    hub.shutdown()
    assert loaded.source == "local" and loaded.revision.startswith("local:")
    assert "the Hub was asked for but failed" in loaded.note and str(weights / "unet-mse") in loaded.note
    assert any("/resolve/" in path for _, path in hub.requests)  # it did ask


@pytest.mark.filterwarnings("ignore")
def test_falls_back_when_the_hub_is_unreachable(weights, hub_env, monkeypatch, caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub_env(f"http://127.0.0.1:{port}")
    # huggingface_hub retries a refused connection five times with backoff (about 23 s in all);
    # the test skips the waiting, not the retries.
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    caplog.set_level("ERROR", logger="huggingface_hub")  # its retry warnings are expected here
    loaded = load_model(entry(weights), weights, source="hub")
    assert loaded.source == "local" and "the Hub was asked for but failed" in loaded.note


def test_an_unpinned_revision_is_never_downloaded(weights, hub_env):
    hub = FakeHub({})
    hub_env(hub.url)
    catalog = json.loads((weights / "models.json").read_text())
    catalog["models"][0]["revision"] = None
    (weights / "models.json").write_text(json.dumps(catalog))
    loaded = load_model(entry(weights), weights, source="hub")
    hub.shutdown()
    assert loaded.source == "local" and "pin a revision" in loaded.note
    assert not any("/resolve/" in path for _, path in hub.requests)


def test_the_app_shows_where_each_model_came_from(weights, published, hub_env, tmp_path):
    from app import ArenaApp
    from restoration.settings import Settings

    hub = FakeHub(hub_files(published, "test-org/unet-mse", REVISION))
    hub_env(hub.url)
    models, problems = load_available_restorers(weights, source="hub")
    hub.shutdown()
    assert [m.source for m in models] == ["hub", "local", "local"] and not problems
    app = ArenaApp(Settings(weights_dir=weights, votes_db=tmp_path / "v.db", val_dir=tmp_path / "none"), models)
    assert app.notes[0].startswith("MSE U-Net: Hugging Face Hub test-org/unet-mse")
    assert "the Hub was asked for but failed" in app.notes[1]
    app.close()


def test_hf_endpoint_from_the_environment(weights, published, tmp_path):
    """As on a Space: HF_ENDPOINT and RESTORATION_MODEL_SOURCE set before anything is imported."""
    hub = FakeHub(hub_files(published, "test-org/unet-mse", REVISION))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "home"),
            "RESTORATION_MODEL_SOURCE": "hub", "RESTORATION_WEIGHTS_DIR": str(weights), "PYTHONPATH": str(REPO_ROOT)}
    script = ("from restoration.settings import Settings; from restoration.weights import load_available_restorers; "
              "s = Settings.from_env(); ms, _ = load_available_restorers(s.weights_dir, s.model_source); "
              "print('|'.join(m.source for m in ms))")
    out = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True,
                         timeout=120)
    hub.shutdown()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hub|local|local"


@pytest.mark.filterwarnings("ignore")
def test_an_unreachable_hub_is_asked_once(weights, hub_env, monkeypatch, caplog):
    from restoration.weights import load_available_restorers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub_env(f"http://127.0.0.1:{port}")
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    caplog.set_level("ERROR", logger="huggingface_hub")
    models, problems = load_available_restorers(weights, source="hub")
    assert not problems and len(models) == 3 and all(m.source == "local" for m in models)
    assert "the Hub was asked for but failed" in models[0].note
    assert all("the Hub was not asked" in m.note for m in models[1:])
