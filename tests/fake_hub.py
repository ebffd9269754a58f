"""A loopback stand-in for the Hugging Face Hub, for the real `huggingface_hub` client in the tests.

It implements the endpoints the client calls to create repos, commit files and download them, as
huggingface_hub 2.4.0 calls them (read from its source: hf_api.create_repo / create_commit /
_validate_yaml, _commit_api._fetch_upload_modes / _send_commit, lfs.post_lfs_batch_info /
lfs_upload, file_download.hf_hub_download / get_hf_file_metadata):

    POST /api/repos/create                                         create a repo (409 if it exists)
    POST /api/validate-yaml                                        a README's front matter
    POST /api/{type}s/{repo}/preupload/{revision}                  "regular" or "lfs" for each file
    POST /{prefix}{repo}.git/info/lfs/objects/batch                LFS basic transfer: where to PUT
    PUT  /lfs-objects/{sha256}                                     the LFS object itself
    POST /api/{type}s/{repo}/commit/{revision}                     the commit (ndjson)
    HEAD/GET /{prefix}{repo}/resolve/{revision}/{path}             download, with X-Repo-Commit etc.
    GET  /api/{type}s/{repo}/revision/{revision}                   repo info: the commit (snapshot_download)
    GET  /api/{type}s/{repo}/tree/{revision}                       the files at a commit (snapshot_download)

Like the Hub, a file is stored through LFS when the repo's .gitattributes (or the commit's own)
routes it there or its first bytes are binary, and a commit that sends binary content as a regular
file is refused. The tests disable Xet (HF_HUB_DISABLE_XET), so the client takes the LFS path; the
Xet protocol itself is not implemented here.
"""

import base64
import fnmatch
import hashlib
import http.server
import json
import threading
import urllib.parse

import yaml

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
HUB_GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


class Repo:
    def __init__(self, kind: str):
        self.kind = kind
        self.commits: dict[str, dict[str, tuple[bytes, bool]]] = {}  # commit → {path: (content, lfs)}
        self.history: list[str] = []  # commits on main, oldest first
        self.messages: dict[str, str] = {}
        self.tags: dict[str, str] = {}  # tag → commit; a tag can be moved (`FakeHub.tag`), a commit cannot
        self.listed_sizes: dict[str, int] = {}  # path → the size the tree listing says (a lying Hub: `FakeHub.lie`)

    def files(self, revision: str = "main"):
        commit = self.resolve(revision)
        return self.commits.get(commit, {}) if commit else {}

    def resolve(self, revision: str) -> str | None:
        if revision == "main":
            return self.history[-1] if self.history else None
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None

    def lfs_patterns(self, extra: dict | None = None) -> list[str]:
        text = (extra or {}).get(".gitattributes") or self.files().get(".gitattributes", (b"", False))[0]
        return [line.split()[0] for line in text.decode().splitlines() if "filter=lfs" in line]


class FakeHub(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 → content
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()

    def repo(self, repo_id: str, kind: str = "model") -> Repo:
        return self.repos[(kind, repo_id)]

    def seed(self, repo_id: str, files: dict[str, bytes], kind: str = "model", commit: str | None = None) -> str:
        """Put files into a repo directly (as one commit), for download tests."""
        repo = self.repos.setdefault((kind, repo_id), Repo(kind))
        return self._commit(repo, {p: (d, p.endswith(".safetensors")) for p, d in files.items()}, "seed", commit)

    def tag(self, repo_id: str, tag: str, commit: str, kind: str = "model"):
        """Point `tag` at `commit` (made or moved), as `git tag -f` and the Hub's tag API do."""
        self.repo(repo_id, kind).tags[tag] = commit

    def lie(self, repo_id: str, path: str, listed_size: int, kind: str = "model"):
        """Make the tree listing say `listed_size` for `path`, whatever is served (a hostile Hub, or a
        mirror gone wrong)."""
        self.repo(repo_id, kind).listed_sizes[path] = listed_size

    def _commit(self, repo: Repo, changes: dict, message: str, commit: str | None = None) -> str:
        files = dict(repo.files())
        for path, value in changes.items():
            if value is None:
                files.pop(path, None)
            else:
                files[path] = value
        parent = repo.history[-1] if repo.history else ""
        digest = hashlib.sha1(parent.encode() + message.encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path][0]).digest())
        commit = commit or digest.hexdigest()
        repo.commits[commit], repo.messages[commit] = files, message
        repo.history.append(commit)
        return commit


def _is_binary(sample: bytes) -> bool:
    return b"\x00" in sample


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, *args):  # quiet tests
        pass

    # ------------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _json(self, status: int, data, error_code: str | None = None):
        headers = {"Content-Type": "application/json"}
        if error_code:
            headers |= {"X-Error-Code": error_code, "X-Error-Message": str(data.get("error", ""))}
        self._send(status, json.dumps(data).encode(), headers)

    def _route(self):
        path = urllib.parse.urlparse(self.path).path
        with self.server.lock:
            self.server.requests.append((self.command, path))
        return [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

    @staticmethod
    def _repo_type(parts: list[str]) -> tuple[str, list[str]]:
        """('model' | 'dataset' | 'space', the parts after the type prefix) of a /{prefix}{repo}/... path."""
        if parts and parts[0] in ("datasets", "spaces"):
            return parts[0][:-1], parts[1:]
        return "model", parts

    # ------------------------------------------------------------------ methods

    def do_POST(self):
        parts, body = self._route(), self._body()
        if parts == ["api", "repos", "create"]:
            return self._create(json.loads(body))
        if parts == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if len(parts) >= 6 and parts[0] == "api" and parts[4] in ("preupload", "commit"):
            kind, repo_id, revision = parts[1][:-1], f"{parts[2]}/{parts[3]}", "/".join(parts[5:])
            repo = self.server.repos.get((kind, repo_id))
            if repo is None:
                return self._json(404, {"error": "Repository not found"}, "RepoNotFound")
            if parts[4] == "preupload":
                return self._preupload(repo, json.loads(body))
            return self._commit_request(repo, repo_id, revision, body)
        if parts[-4:] == ["info", "lfs", "objects", "batch"] or parts[-3:] == ["lfs", "objects", "batch"]:
            return self._lfs_batch(json.loads(body))
        self._json(404, {"error": f"no such endpoint: POST {self.path}"})

    def do_PUT(self):
        parts, body = self._route(), self._body()
        if len(parts) == 2 and parts[0] == "lfs-objects":
            if hashlib.sha256(body).hexdigest() != parts[1]:
                return self._json(400, {"error": "sha256 mismatch"})
            with self.server.lock:
                self.server.lfs[parts[1]] = body
            return self._send(200)
        self._json(404, {"error": f"no such endpoint: PUT {self.path}"})

    def do_HEAD(self):
        self._resolve(head=True)

    def do_GET(self):
        parts = urllib.parse.urlparse(self.path).path.strip("/").split("/")
        if len(parts) >= 6 and parts[0] == "api" and parts[4] in ("revision", "tree"):
            return self._api_get(parts)
        self._resolve(head=False)

    def _api_get(self, parts: list[str]):
        self._route()
        kind, repo_id, revision = parts[1][:-1], f"{parts[2]}/{parts[3]}", urllib.parse.unquote(parts[5])
        repo = self.server.repos.get((kind, repo_id))
        commit = repo.resolve(revision) if repo else None
        if commit is None:
            return self._json(404, {"error": "Repository or revision not found"},
                              "RepoNotFound" if repo is None else "RevisionNotFound")
        files = repo.commits[commit]
        if parts[4] == "revision":
            return self._json(200, {"id": repo_id, "sha": commit, "siblings": [{"rfilename": p} for p in files]})
        listing = []
        for path, (data, lfs) in sorted(files.items()):
            entry = {"type": "file", "path": path, "size": repo.listed_sizes.get(path, len(data)),
                     "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
            if lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            listing.append(entry)
        self._json(200, listing)

    # ------------------------------------------------------------------ endpoints

    def _create(self, payload: dict):
        kind = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = f"{self.server.url}/{PREFIX[kind]}{repo_id}"
        with self.server.lock:
            if (kind, repo_id) in self.server.repos:
                return self._json(409, {"error": "You already created this repo", "url": url})
            repo = self.server.repos[(kind, repo_id)] = Repo(kind)
            # Like the Hub, a new repo starts with one commit: a .gitattributes sending binaries to LFS.
            self.server._commit(repo, {".gitattributes": (HUB_GITATTRIBUTES, False)}, "initial commit")
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, payload: dict):
        text = payload.get("content", "")
        if text.startswith("---\n"):
            try:
                yaml.safe_load(text.split("---\n")[1])
            except yaml.YAMLError as e:
                return self._json(400, {"errors": [{"message": str(e)}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, payload: dict):
        incoming = {f["path"]: base64.b64decode(f["sample"]) for f in payload["files"]}
        patterns = repo.lfs_patterns(incoming if ".gitattributes" in incoming else None)
        files = []
        for f in payload["files"]:
            lfs = f["size"] > 0 and (any(fnmatch.fnmatch(f["path"].split("/")[-1], p) for p in patterns)
                                     or _is_binary(incoming[f["path"]]))
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        self._json(200, {"files": files})

    def _lfs_batch(self, payload: dict):
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.server.lfs:  # already stored: nothing to upload
                entry["actions"] = {"upload": {"href": f"{self.server.url}/lfs-objects/{obj['oid']}"}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def _commit_request(self, repo: Repo, repo_id: str, revision: str, body: bytes):
        if revision != "main":
            return self._json(400, {"error": f"the fake Hub commits to main only, not {revision!r}"})
        changes, message = {}, "commit"
        for line in body.decode().splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value["summary"]
            elif key == "file":
                content = base64.b64decode(value["content"])
                if _is_binary(content[:512]):
                    return self._json(400, {"error": f"{value['path']}: binary files must be stored with LFS"})
                changes[value["path"]] = (content, False)
            elif key == "lfsFile":
                data = self.server.lfs.get(value["oid"])
                if data is None or len(data) != value["size"]:
                    return self._json(400, {"error": f"{value['path']}: LFS object {value['oid']} was not uploaded"})
                changes[value["path"]] = (data, True)
            elif key == "deletedFile":
                changes[value["path"]] = None
            else:
                return self._json(400, {"error": f"the fake Hub does not implement {key!r}"})
        with self.server.lock:
            commit = self.server._commit(repo, changes, message)
        url = f"{self.server.url}/{PREFIX[repo.kind]}{repo_id}/commit/{commit}"
        self._json(200, {"commitUrl": url, "commitOid": commit, "pullRequestUrl": None})

    def _resolve(self, head: bool):
        parts = self._route()
        kind, rest = self._repo_type(parts)
        if len(rest) >= 5 and rest[2] == "resolve":
            repo = self.server.repos.get((kind, f"{rest[0]}/{rest[1]}"))
            if repo is None:
                return self._send(404, headers={"X-Error-Code": "RepoNotFound",
                                                "X-Error-Message": "Repository not found"}, head=head)
            commit = repo.resolve(rest[3])
            if commit is None:
                return self._send(404, headers={"X-Error-Code": "RevisionNotFound",
                                                "X-Error-Message": "Invalid rev id"}, head=head)
            path = "/".join(rest[4:])
            found = repo.commits[commit].get(path)
            if found is None:
                return self._send(404, headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                                "X-Repo-Commit": commit}, head=head)
            data, lfs = found
            # the Hub's ETag: a git blob's sha1, or an LFS object's sha256
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data)
            etag = hashlib.sha256(data).hexdigest() if lfs else blob.hexdigest()
            headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
            if lfs:
                headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
            return self._send(200, data, headers, head=head)
        self._send(404, headers={"X-Error-Code": "EntryNotFound"}, head=head)
