"""The Hugging Face Hub: checkpoints downloaded at a pinned commit and verified before use, and the
uploads that publish them (model folders, the Space).

Honours HF_ENDPOINT and HF_TOKEN as huggingface_hub does; the tests point HF_ENDPOINT at a loopback
server. Three ways a download can fail are kept apart, because the page says which happened:
`NotPublished` (no pinned revision: nothing was asked), `HubUnreachable` (no answer at all, found
with one request of a few seconds, never the client's half a minute of retries), and any other
`CheckpointError` (the Hub answered, but not with a checkpoint we can use).
"""

import shutil
import tempfile
from pathlib import Path

from restoration.hub.catalogue_file import COMMIT
from restoration.models.auto import verify_checkpoint
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError

PROBE_SECONDS = 3.0  # one request, no retries: how long an unreachable Hub may delay start-up
MODEL_FILES = [CONFIG_NAME, WEIGHTS_NAME, "README.md", ".gitattributes"]
# What a Space runs: the app, the library, the shipped weights (its offline fallback), examples.
SPACE_FILES = ["app.py", "page_style.py", "restoration/*.py", "weights/*", "examples/*", "requirements.txt",
               "pre-requirements.txt", ".gitattributes", "README.md", "LICENSE",
               "docs/*.md", "docs/*.png", "CHANGELOG.md"]  # what the README links to and shows
SPACE_IGNORE = ["*/__pycache__/*", "__pycache__/*", "*.pyc", "votes*.db*", "*.tmp", ".DS_Store"]
# Binary files go to the Hub through LFS/Xet, which it decides from the repo's .gitattributes.
GITATTRIBUTES = """\
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.db filter=lfs diff=lfs merge=lfs -text
*.png filter=lfs diff=lfs merge=lfs -text
*.jpg filter=lfs diff=lfs merge=lfs -text
*.jpeg filter=lfs diff=lfs merge=lfs -text
*.JPEG filter=lfs diff=lfs merge=lfs -text
*.webp filter=lfs diff=lfs merge=lfs -text
"""


class NotPublished(CheckpointError):
    """The catalogue pins no revision for this model: it has not been published."""


class HubUnreachable(CheckpointError):
    """The Hub did not answer at all (refused, timed out, no route)."""


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def transport_errors() -> tuple[type[BaseException], ...]:
    import httpx2

    return (httpx2.TransportError, ConnectionError, TimeoutError)


def probe(repo_id: str, filename: str, revision: str | None, repo_type: str | None = None,
          timeout: float = PROBE_SECONDS):
    """One HEAD request for a file, no retries: the file's metadata, or `HubUnreachable`. HTTP
    errors (no such repo, file or revision) are raised as huggingface_hub raises them."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        return get_hf_file_metadata(hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision),
                                    timeout=timeout)
    except transport_errors() as e:
        raise HubUnreachable(f"the Hub at {endpoint()} did not answer ({type(e).__name__}: {e})") from None


def fetch_pinned(repo_id: str, commit: str, cache_dir=None, timeout: float = PROBE_SECONDS,
                 before_download=None) -> Path:
    """The folder (in the Hub cache) holding config.json and model.safetensors of `repo_id` at
    `commit`. A commit already in the cache needs no request; otherwise `before_download()` runs
    first (default: one quick probe, which says at once when the Hub is not there at all)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        paths = [hf_hub_download(repo_id, name, revision=commit, cache_dir=cache_dir, local_files_only=True)
                 for name in (CONFIG_NAME, WEIGHTS_NAME)]
    except LocalEntryNotFoundError:
        if before_download is None:
            probe(repo_id, CONFIG_NAME, commit, timeout=timeout)
        else:
            before_download()
        try:
            paths = [hf_hub_download(repo_id, name, revision=commit, cache_dir=cache_dir, etag_timeout=timeout)
                     for name in (CONFIG_NAME, WEIGHTS_NAME)]
        except transport_errors() as e:
            raise HubUnreachable(f"the Hub at {endpoint()} stopped answering ({type(e).__name__}: {e})") from None
    return Path(paths[0]).parent


class TooLarge(CheckpointError):
    """A download that outgrew its limit; it was cut off there."""


class WrongCommit(CheckpointError):
    """The Hub served a file of another commit than the one asked for."""


def stream_file(repo_id: str, filename: str, commit: str, dest: Path, limit: int,
                timeout: float = PROBE_SECONDS) -> int:
    """Download one file of `repo_id` at `commit` into `dest`, streamed, and cut off (`TooLarge`)
    as soon as more than `limit` bytes arrive, whatever the listing or the headers said; the bytes
    received. No retries: one request, each read waiting at most `timeout` seconds. `HubUnreachable`
    when the Hub does not answer; huggingface_hub's errors when it answers with an HTTP error."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, filename, revision=commit)
    received = 0
    try:
        with get_session().stream("GET", url, headers=build_hf_headers(), timeout=timeout,
                                  follow_redirects=True) as response:
            hf_raise_for_status(response)
            served = {r.headers.get("X-Repo-Commit") for r in [*response.history, response]} - {None}
            if served - {commit}:  # the Hub names the commit it served (before any redirect to its CDN)
                raise WrongCommit(f"asked for {commit}, the Hub served {sorted(served - {commit})[0]}")
            with open(dest, "wb") as f:
                for chunk in response.iter_bytes(1 << 20):
                    received += len(chunk)
                    if received > limit:
                        raise TooLarge(f"{filename}: more than {limit:,} bytes were served (cut off there)")
                    f.write(chunk)
    except transport_errors() as e:
        raise HubUnreachable(f"the Hub at {endpoint()} stopped answering ({type(e).__name__}: {e})") from None
    return received


def download_checkpoint(repo_id: str, revision: str | None, cache_dir=None, timeout: float = PROBE_SECONDS) -> Path:
    """config.json and model.safetensors of a Hub repo at a pinned commit, verified (the safetensors
    header parses and matches the config) before the folder is returned. A pinned commit already in
    the cache needs no request; otherwise one quick probe decides whether the Hub is there at all."""
    if not repo_id:
        raise NotPublished("no Hub repo in models.json")
    if not revision:
        raise NotPublished(f"{repo_id}: no pinned revision in models.json (not published yet)")
    if not COMMIT.match(revision):
        raise CheckpointError(f"{repo_id}: pin a revision (a 40-character commit hash), got {revision!r}")
    folder = fetch_pinned(repo_id, revision, cache_dir, timeout)
    try:
        verify_checkpoint(folder)
    except CheckpointError as e:
        raise CheckpointError(f"{repo_id}@{revision[:10]}: the download is not a usable checkpoint ({e})") from None
    return folder


# -------------------------------------------------------------------------------------------- publishing


def upload_model(folder, repo_id: str, private: bool = False, api=None) -> str:
    """Upload a model folder (config, weights, card) to its model repo, with the .gitattributes the
    Hub expects; returns the commit hash to pin in models.json."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    verify_checkpoint(folder)  # never publish what would not load
    api = api or HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        for name in MODEL_FILES[:3]:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, stage / name)
        (stage / ".gitattributes").write_text(GITATTRIBUTES)
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(stage),
                                 allow_patterns=MODEL_FILES, commit_message=f"Upload {folder.name}")
    return info.oid


def upload_space(root, space_id: str, readme: str, private: bool = False, variables: dict | None = None,
                 api=None) -> str:
    """Upload the app as a Gradio Space: the files in SPACE_FILES (less SPACE_IGNORE) from `root`,
    with `readme` (the Space card, front matter first) as its README.md; returns the commit hash."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                    space_variables=[{"key": k, "value": v} for k, v in (variables or {}).items()] or None)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        for path in space_files(root):
            (stage / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(root) / path, stage / path)
        (stage / "README.md").write_text(readme)
        # delete_patterns: a file the Space had and the app no longer has (a removed module) goes.
        info = api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(stage),
                                 allow_patterns=SPACE_FILES, ignore_patterns=SPACE_IGNORE,
                                 delete_patterns=SPACE_FILES, commit_message="Update the Space")
    return info.oid


def space_files(root) -> list[str]:
    """The repository files a Space upload takes (relative paths, sorted)."""
    import os

    from huggingface_hub.utils import filter_repo_objects

    root, paths = Path(root), []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "runs", "cache")]
        paths += [(Path(folder) / f).relative_to(root).as_posix() for f in files]
    return sorted(filter_repo_objects(paths, allow_patterns=SPACE_FILES, ignore_patterns=SPACE_IGNORE))
