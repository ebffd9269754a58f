"""A submission's files from the Hub (restoration/arena/submissions.py): the repo's listing at the
pinned commit checked before anything is downloaded (submission_checks.check_files), then
model.safetensors and config.json streamed into a fresh folder, each cut off at its listed size and
its limit; a checked folder is kept in the Hub cache, one per repo and commit, for every later start."""

import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

from restoration.arena.submission_checks import RULES, Refused, Rules, check_files
from restoration.hub.transfer import (
    PROBE_SECONDS,
    HubUnreachable,
    TooLarge,
    WrongCommit,
    endpoint,
    probe,
    stream_file,
    transport_errors,
)
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from restoration.strict_json import one_line

CACHE_FOLDER = "restoration-submissions"  # in the Hub cache: checked submissions, one folder per commit


def list_files(repo_id: str, commit: str) -> dict[str, int]:
    """path → size of every file of the repo at `commit` (one listing request, nothing downloaded)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        tree = HfApi().list_repo_tree(repo_id, revision=commit, recursive=True)
        return {f.path: f.size for f in tree if hasattr(f, "size")}  # RepoFolder has no size
    except RepositoryNotFoundError:
        raise Refused("repo", f"{repo_id} is not a model repo on {endpoint()} (or not a public one)") from None
    except RevisionNotFoundError:
        raise Refused("pinned commit", f"{commit} is not a commit of {repo_id}") from None
    except HfHubHTTPError as e:
        raise Refused("repo", f"the Hub would not list {repo_id} at {commit[:10]} ({one_line(e, 120)})") from None
    except transport_errors() as e:
        raise HubUnreachable(f"the Hub at {endpoint()} did not answer ({type(e).__name__}: {e})") from None


def cache_folder(repo_id: str, commit: str, cache_dir=None) -> Path:
    """Where a checked submission's files are kept: in the Hub cache (HF_HUB_CACHE), one folder per
    repo and commit."""
    from huggingface_hub import constants

    return Path(cache_dir or constants.HF_HUB_CACHE) / CACHE_FOLDER / repo_id.replace("/", "--") / commit


def listed(repo_id: str, commit: str, rules: Rules = RULES, timeout: float = PROBE_SECONDS) -> dict[str, int]:
    """The repo's files at `commit` (path → listed size), checked (`check_files`) before anything is
    downloaded: `Refused`, or `HubUnreachable` found with one quick request."""
    from huggingface_hub.errors import HfHubHTTPError

    try:  # one quick request, no retries: a Hub that is down costs seconds, not minutes
        probe(repo_id, WEIGHTS_NAME, commit, timeout=timeout)
    except HfHubHTTPError:
        pass  # it answered: the listing says what is wrong, naming the rule
    files = list_files(repo_id, commit)
    check_files(files, rules)
    return files


def download(repo_id: str, commit: str, files: dict[str, int], folder: Path, rules: Rules = RULES,
             timeout: float = PROBE_SECONDS):
    """model.safetensors and config.json (when listed) of `repo_id` at `commit` into `folder`,
    each streamed and cut off at the least of its listed size and its limit: the bytes received
    must be the listing's."""
    limits = {WEIGHTS_NAME: rules.max_bytes, CONFIG_NAME: rules.max_config_bytes}
    for name in [n for n in (CONFIG_NAME, WEIGHTS_NAME) if n in files]:
        try:
            received = stream_file(repo_id, name, commit, folder / name, min(files[name], limits[name]), timeout)
        except TooLarge as e:
            raise Refused("size", f"{e} (the listing says {files[name]:,}; the limit is {limits[name]:,})") from None
        except WrongCommit as e:
            raise Refused("pinned commit", str(e)) from None
        if received != files[name]:
            raise Refused("size", f"{name}: {received:,} bytes were served, the listing says {files[name]:,}")


@contextmanager
def fetched(repo_id: str, commit: str, rules: Rules = RULES, cache_dir=None, before_download=None,
            timeout: float = PROBE_SECONDS):
    """The folder of a submission's files at `commit`, for the block: the cached one when there (it
    was checked when it was kept; a commit cannot change), no request made; otherwise the listing is
    checked, `before_download()` runs (the daily cap), and the files are downloaded into a fresh
    folder, which is kept in the cache if the block ends without an exception and removed
    otherwise: a refused download leaves nothing behind."""
    kept = cache_folder(repo_id, commit, cache_dir)
    if (kept / WEIGHTS_NAME).is_file():
        yield kept
        return
    files = listed(repo_id, commit, rules, timeout)
    if before_download is not None:
        before_download()
    staging = kept.parent / f".{commit}-{secrets.token_hex(4)}.partial"
    staging.mkdir(parents=True)
    try:
        download(repo_id, commit, files, staging, rules, timeout)
        yield staging
        try:
            staging.rename(kept)
        except OSError:  # another replica kept the same commit meanwhile: theirs serves
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
