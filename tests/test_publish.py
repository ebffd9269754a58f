"""Publishing, end to end, with the real huggingface_hub client against a loopback Hub
(tests/fake_hub.py): the shipped models → their repos → models.json pinned to the commits the
uploads returned → the app, started with RESTORATION_MODEL_SOURCE=hub, loads every model from the
Hub at exactly those commits (no fallback). Then the Space upload, and the cards."""

import re
import shutil

import pytest
import yaml

import app as app_module
from restoration.hub.catalogue import read_catalog
from restoration.hub.provenance import source_label
from restoration.hub.transfer import GITATTRIBUTES, download_checkpoint, space_files
from restoration.models.auto import load_checkpoint
from restoration.settings import REPO
from tests.support import same_weights
from train import publish

# huggingface_hub's LFS upload hands httpx2 raw bytes as `data=`: the client's to change, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
OWNER = "test-org"


@pytest.fixture
def root(tmp_path):
    """A copy of the repository's weights/ (the real shipped models, cards and catalogue)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "weights", root / "weights")
    return root


def test_publish_then_the_app_loads_every_model_from_the_hub(root, fake_hub, monkeypatch, capsys):
    weights = root / "weights"
    publish.main(["models", "--root", str(root), "--owner", OWNER])
    catalog = read_catalog(weights)
    assert all(e.hub_repo.startswith(f"{OWNER}/") and re.fullmatch(r"[0-9a-f]{40}", e.revision) for e in catalog)
    for e in catalog:  # what was uploaded is what is pinned, and the weights went through LFS
        repo = fake_hub.repo(e.hub_repo)
        assert repo.history[1:] == [e.revision]  # (after the repo's initial commit)
        files = repo.files(e.revision)
        assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
        assert files["model.safetensors"][1] and not files["config.json"][1]  # (content, stored with LFS)
        assert files["model.safetensors"][0] == (weights / e.folder / "model.safetensors").read_bytes()
        assert files[".gitattributes"][0].decode() == GITATTRIBUTES
        assert files["README.md"][0] == (weights / e.folder / "README.md").read_bytes()
    assert any(path.endswith("/info/lfs/objects/batch") for _, path in fake_hub.requests)

    # The app, as `python app.py` starts it, with the pinned catalogue and RESTORATION_MODEL_SOURCE=hub.
    started = {}
    monkeypatch.setattr(app_module, "launch", lambda demo, settings: started.update(demo=demo))
    monkeypatch.setattr(app_module.ArenaApp, "__init__", _recording_init(app_module.ArenaApp.__init__, started))
    monkeypatch.setenv("RESTORATION_MODEL_SOURCE", "hub")
    monkeypatch.setenv("RESTORATION_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("RESTORATION_VOTES_DB", str(root / "votes.db"))
    fake_hub.requests.clear()
    app_module.main()
    models = started["app"].models
    restorers = [e for e in catalog if e.role == "restorer"]
    assert [m.entry.name for m in models] == [e.name for e in restorers]
    for m, e in zip(models, restorers):
        assert (m.source, m.revision, m.fallback) == ("hub", e.revision, None)
        assert source_label(m) == f"Hub {e.hub_repo} @ {e.revision[:10]}"
        assert same_weights(m.model, load_checkpoint(weights / e.folder))
    fidelity = [e for e in catalog if e.role == "fidelity"]  # the app loads the fidelity classifier too
    resolved = {path for _, path in fake_hub.requests if "/resolve/" in path}
    assert resolved == {f"/{e.hub_repo}/resolve/{e.revision}/{f}" for e in restorers + fidelity
                        for f in ("config.json", "model.safetensors")}
    if fidelity:
        assert same_weights(started["app"].fidelity, load_checkpoint(weights / fidelity[0].folder))
    started["app"].close()
    classifier = next(e for e in catalog if e.role == "classifier")
    assert same_weights(load_checkpoint(download_checkpoint(classifier.hub_repo, classifier.revision)),
                        load_checkpoint(weights / classifier.folder))
    out = capsys.readouterr().out
    print(out)  # the report quotes it
    assert all(f"Hugging Face Hub {e.hub_repo} @ {e.revision[:10]}" in out for e in restorers)


def _recording_init(init, started):
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        started["app"] = self
    return wrapped


def test_republishing_moves_the_pins(root, fake_hub):
    weights = root / "weights"
    publish.set_owner(weights, OWNER)
    first = publish.publish_models(weights, names=["unet-mse"])
    (weights / "unet-mse" / "config.json").write_text((weights / "unet-mse" / "config.json").read_text() + "\n")
    second = publish.publish_models(weights, names=["unet-mse"])
    assert first["unet-mse"] != second["unet-mse"]
    entry = next(e for e in read_catalog(weights) if e.name == "unet-mse")
    assert entry.revision == second["unet-mse"]
    assert fake_hub.repo(entry.hub_repo).history[1:] == [first["unet-mse"], second["unet-mse"]]
    assert next(e for e in read_catalog(weights) if e.name == "unet-perceptual").revision is None  # untouched


def test_the_space_upload(fake_hub, tmp_path):
    space = f"{OWNER}/arena"
    files = space_files(REPO)
    assert {"app.py", "page_style.py", "restoration/hub/transfer.py", "weights/unet-mse/model.safetensors"} <= set(files)
    assert "pre-requirements.txt" in files and ".gitattributes" in files
    linked = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#\s]+)", (REPO / "README.md").read_text())
    assert linked and set(linked) <= set(files)  # the README's documents and pictures go up with it
    assert not [f for f in files if f.startswith(("tests/", "train/", ".venv/", "runs/", "cache/", ".git/"))
                or "__pycache__" in f or f.endswith((".pyc", ".db"))]
    publish.publish_space(REPO, space)
    repo = fake_hub.repo(space, "space")
    uploaded = repo.files()
    assert sorted(uploaded) == files
    readme = uploaded["README.md"][0].decode()
    meta = yaml.safe_load(readme.split("---\n")[1])
    gradio_pin = re.search(r"^gradio==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio_pin and meta["app_file"] == "app.py"
    assert meta["models"] == [e.hub_repo for e in read_catalog(REPO / "weights")]
    assert meta["license"] == "other" and meta["datasets"] == ["zh-plus/tiny-imagenet"]
    assert meta["title"] == "Super-resolution arena"  # the README's own front matter, brought up to date
    assert "# " in readme.split("---\n", 2)[2]  # the project README follows
    assert uploaded["weights/unet-mse/model.safetensors"][1] and uploaded["examples/astronaut.png"][1]  # LFS
    assert not uploaded["app.py"][1]
    fake_hub.seed(space, {"restoration/gone.py": b"# a module the app no longer has\n", "notes.txt": b"kept\n"},
                  kind="space")
    publish.publish_space(REPO, space)
    assert sorted(repo.files()) == sorted(files + ["notes.txt"])  # the stale module went, other files stay


def test_the_card_use_snippet_runs(root, fake_hub, tmp_path, monkeypatch):
    """The "Use" code of a published card, run as written, against the loopback Hub."""
    weights = root / "weights"
    publish.main(["models", "--root", str(root), "--owner", OWNER, "--only", "unet-mse", "classifier"])
    for name in ("unet-mse", "classifier"):
        card = (weights / name / "README.md").read_text()
        code = card.split("## Use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
        monkeypatch.chdir(tmp_path)  # not the repository
        scope = {}
        exec(compile(code, f"{name}/README.md", "exec"), scope)  # noqa: S102 (our own card)
        out = scope["restored"] if name == "unet-mse" else scope["logits"]
        assert out.shape == ((1, 3, 64, 64) if name == "unet-mse" else (1, 200))
        assert same_weights(scope["model"], load_checkpoint(weights / name))


def test_the_repository_gitattributes_is_the_one_uploads_use():
    assert (REPO / ".gitattributes").read_text() == GITATTRIBUTES
