"""The Tiny ImageNet download, against a loopback HTTP server serving a small fake archive (the
expected size and checksum are injected): verification, no half archive left behind, resuming."""

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from restoration.data.download import Archive, DownloadError, download, fetch_tiny_imagenet, verify


def fake_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tiny-imagenet-200/wnids.txt", "n01443537\n")
        z.writestr("tiny-imagenet-200/words.txt", "n01443537\tgoldfish\n")
        z.writestr("tiny-imagenet-200/val/val_annotations.txt", "val_0.JPEG\tn01443537\t0\t0\t63\t63\n")
        z.writestr("tiny-imagenet-200/padding.bin", bytes(range(256)) * 400)  # ~100 kB, several read chunks
    return buf.getvalue()


class Server:
    """Serves `body` at /tiny-imagenet-200.zip, honouring Range (unless `ranges` is off); the first
    `cut_after` bytes only, then a dropped connection, while `cut_after` is set."""

    def __init__(self, body: bytes):
        self.body, self.ranges, self.cut_after, self.requests = body, True, None, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.headers.get("Range"))
                if self.path != "/tiny-imagenet-200.zip":
                    self.send_error(404)
                    return
                start = 0
                if server.ranges and self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                part = server.body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(part[:server.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tiny-imagenet-200.zip"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served():
    body = fake_archive()
    server = Server(body)
    yield server, Archive(url=server.url, size=len(body), sha256=hashlib.sha256(body).hexdigest())
    server.close()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_downloads_verifies_and_unpacks(served, tmp_path, capsys):
    server, archive = served
    root = fetch_tiny_imagenet(tmp_path / "data" / "tiny-imagenet-200", archive)
    assert (root / "wnids.txt").read_text() == "n01443537\n" and (root / "val" / "val_annotations.txt").is_file()
    assert leftovers(tmp_path / "data") == ["tiny-imagenet-200"]  # no archive, .part or unpacking folder
    assert f"SHA-256 {archive.sha256}: verified" in capsys.readouterr().out
    assert fetch_tiny_imagenet(root, archive) == root and len(server.requests) == 1  # there already: no download


def test_a_checksum_mismatch_is_a_clear_error_and_leaves_nothing(served, tmp_path):
    server, archive = served
    wrong = Archive(url=archive.url, size=archive.size, sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"did not verify: its SHA256 is [0-9a-f]{64}, expected 0{64}\. "
                                            r"The file was deleted"):
        fetch_tiny_imagenet(tmp_path / "tiny-imagenet-200", wrong)
    assert leftovers(tmp_path) == []


def test_md5_and_size_when_no_sha256_is_recorded(served, tmp_path):
    server, archive = served
    md5 = hashlib.md5(server.body).hexdigest()
    path = download(Archive(url=archive.url, size=archive.size, md5=md5), tmp_path / "a.zip")
    assert verify(path, Archive(url="", size=archive.size, md5=md5)) is None
    assert "expected" in verify(path, Archive(url="", size=archive.size, md5="f" * 32))
    assert verify(path, Archive(url="", size=archive.size + 1, md5=md5)) == \
        f"it has {archive.size:,} bytes, expected {archive.size + 1:,}"


def test_an_interrupted_download_resumes(served, tmp_path):
    server, archive = served
    server.cut_after = 40_000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(archive, tmp_path / "tiny-imagenet-200.zip", chunk=8192)
    assert leftovers(tmp_path) == ["tiny-imagenet-200.zip.part"]  # never a file with the archive's name
    assert (tmp_path / "tiny-imagenet-200.zip.part").stat().st_size == 40_000
    server.cut_after = None
    path = download(archive, tmp_path / "tiny-imagenet-200.zip")
    assert server.requests == [None, "bytes=40000-"]  # the second request continued where the first stopped
    assert path.read_bytes() == server.body and leftovers(tmp_path) == ["tiny-imagenet-200.zip"]


def test_a_server_without_ranges_starts_again(served, tmp_path):
    server, archive = served
    server.ranges = False
    (tmp_path / "tiny-imagenet-200.zip.part").write_bytes(server.body[:1000])
    path = download(archive, tmp_path / "tiny-imagenet-200.zip")
    assert path.read_bytes() == server.body


def test_a_corrupt_partial_file_is_deleted_after_the_check(served, tmp_path):
    server, archive = served
    (tmp_path / "tiny-imagenet-200.zip.part").write_bytes(b"x" * 1000)  # not the archive's first bytes
    with pytest.raises(DownloadError, match="did not verify"):
        download(archive, tmp_path / "tiny-imagenet-200.zip")
    assert leftovers(tmp_path) == []
    assert download(archive, tmp_path / "tiny-imagenet-200.zip").read_bytes() == server.body  # then a clean retry


def test_http_errors_say_what_failed(served, tmp_path):
    server, archive = served
    missing = Archive(url=archive.url.replace(".zip", "-gone.zip"), size=archive.size, sha256=archive.sha256)
    with pytest.raises(DownloadError, match="failed .*404"):
        fetch_tiny_imagenet(tmp_path / "tiny-imagenet-200", missing)
    assert leftovers(tmp_path) == []


def test_the_recorded_archive_is_https_with_a_size_and_checksum():
    from restoration.data.download import TINY_IMAGENET

    assert TINY_IMAGENET.url.startswith("https://") and TINY_IMAGENET.size == 248_100_043
    assert TINY_IMAGENET.sha256 or len(TINY_IMAGENET.md5) == 32
