import hashlib
import io
import json
import shutil
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from a2i.data.download import DownloadError, download, fetch, part_file, safe_extract, validate_suburmp

from .helpers import loud_track, write_performance


class Server:
    """127.0.0.1 HTTP server for in-memory files, with Range and If-Range support and an optional cut-off."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None  # close the first full response after this many bytes
        self.requests: list[tuple[str, str | None]] = []
        self.etags: dict[str, str] = {}  # a file's ETag header, where it has one
        self.if_ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                server.if_ranges.append(self.headers.get("If-Range"))
                body, etag = server.files.get(self.path), server.etags.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                current = self.headers.get("If-Range") in (None, etag)
                if self.headers.get("Range") and current:
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None:
                    payload, server.cut_after = payload[:server.cut_after], None
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A two-performance Sub-URMP root."""
    root = tmp_path_factory.mktemp("archive") / "Sub-URMP"
    write_performance(root, "train", "double_bass", 0, loud_track(0.7))
    write_performance(root, "validation", "double_bass", 1, loud_track(0.7))
    return root


def _zip_of(root, prefix: str) -> bytes:
    """A zip of the tree at `root`, its members under `prefix` ('' for chunk/ and img/ at the top)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, f"{prefix}{path.relative_to(root).as_posix()}")
    return buffer.getvalue()


def _tar_of(root, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path in sorted(root.rglob("*")):
            tf.add(path, f"{prefix}{path.relative_to(root).as_posix()}", recursive=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive(tree):
    """A zip holding a two-performance Sub-URMP tree."""
    return _zip_of(tree, "Sub-URMP/")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(manifests, name: str) -> dict:
    return json.loads(manifests[name].read_text())


def test_full_download_extracts_and_records_sha(server, archive, tmp_path, caplog):
    server.files["/Sub-URMP.zip"] = archive
    out = tmp_path / "download"
    manifests = download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.zip"), "sha256": ""})
    entry = _manifest(manifests, "suburmp")
    assert entry["sha256"] == _sha(archive) and entry["source"] == "url" and entry["requested"]
    assert entry["file"] == str(out / "suburmp" / "Sub-URMP.zip")
    assert entry["path"] == str(out / "suburmp" / "Sub-URMP")
    assert (out / "suburmp/Sub-URMP/chunk/train/double_bass/double_bass00_700.wav").is_file()
    assert _sha(archive) in caplog.text  # the user is told which sha256 to pin
    requests = len(server.requests)
    download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.zip"), "sha256": _sha(archive)})
    assert len(server.requests) == requests  # cached and verified: no second fetch


def test_resume_after_truncation(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.files["/w.pt"] = data
    part = part_file(tmp_path / ".partial", server.url("w.pt"))
    part.parent.mkdir()
    part.write_bytes(data[:300_000])  # an earlier, interrupted run
    assert fetch(server.url("w.pt"), _sha(data), tmp_path / "w.pt", part.parent) == _sha(data)
    assert server.requests == [("/w.pt", "bytes=300000-")]
    assert (tmp_path / "w.pt").read_bytes() == data and not part.exists()


def test_dropped_connection_is_resumed(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.files["/w.pt"] = data
    server.cut_after = 123_456
    fetch(server.url("w.pt"), _sha(data), tmp_path / "w.pt", tmp_path / ".partial", retries=2)
    (_, first), (_, second) = server.requests
    assert first is None and 0 < int(second[len("bytes="):-1]) <= 123_456  # resumed from what was written
    assert (tmp_path / "w.pt").read_bytes() == data


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/w.pt"] = b"corrupted" * 1000
    with pytest.raises(DownloadError, match=r"w\.pt.*does not match"):
        fetch(server.url("w.pt"), _sha(b"good"), tmp_path / "w.pt", tmp_path / ".partial")
    assert not (tmp_path / "w.pt").exists()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_offline_names_url_and_a_local_folder_outside_the_download(tmp_path):
    url = "http://127.0.0.1:9/AudioCLIP-Partial-Training.pt"  # discard port: nothing listens
    with pytest.raises(DownloadError) as error:
        download(tmp_path / "d", ["audioclip"], retries=0, audioclip={"url": url, "sha256": ""})
    message = str(error.value)
    assert url in message and "\n" not in message
    # DVC deletes the stage's output folders before it reruns the stage: a file placed by hand there is lost
    assert str(tmp_path / "d" / "audioclip" / "AudioCLIP-Partial-Training.pt") not in message
    assert (f"download.source: local and download.local_dir: a folder outside {tmp_path / 'd'} that holds "
            "AudioCLIP-Partial-Training.pt") in message
    assert not (tmp_path / "d").exists()  # nothing fetched, nothing written: not even empty folders


def test_offline_leaves_a_folder_that_was_there_and_what_earlier_runs_fetched(server, tmp_path):
    out, server.files["/w.pt"] = tmp_path / "d", b"good"
    download(out, ["audioclip"], audioclip={"url": server.url("w.pt"), "sha256": _sha(b"good")})
    with pytest.raises(DownloadError, match="could not download"):
        download(out, ["inception"], retries=0, inception={"url": "http://127.0.0.1:9/pt_inception.pth"})
    assert (out / "audioclip" / "w.pt").read_bytes() == b"good" and (out / "audioclip" / "manifest.json").is_file()
    assert [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())] == []


def test_checksum_mismatch_points_to_a_local_folder(server, tmp_path):
    server.files["/w.pt"] = b"corrupted"
    with pytest.raises(DownloadError) as error:
        download(tmp_path / "d", ["audioclip"], audioclip={"url": server.url("w.pt"), "sha256": _sha(b"good")})
    message = str(error.value)
    assert "does not match" in message and str(tmp_path / "d" / "audioclip" / "w.pt") not in message
    assert f"download.local_dir: a folder outside {tmp_path / 'd'} that holds w.pt" in message


def test_offline_suburmp_asks_for_the_extracted_root(tmp_path):
    with pytest.raises(DownloadError, match="that holds Sub-URMP/ extracted from the archive"):
        download(tmp_path / "d", ["suburmp"], retries=0, suburmp={"url": "http://127.0.0.1:9/Sub-URMP.zip"})


def test_offline_names_every_item_still_missing(tmp_path):
    # The thesis recipe (data=suburmp) with no network: one line naming the three items at the first failure.
    specs = {name: {"url": f"http://127.0.0.1:9/{name}.bin", "sha256": ""} for name in ("audioclip", "inception")}
    specs["suburmp"] = {"url": "http://127.0.0.1:9/Sub-URMP.zip", "sha256": ""}
    with pytest.raises(DownloadError, match=r"^download.items suburmp, audioclip, inception not fetched: could not "
                                            r"download http://127.0.0.1:9/Sub-URMP.zip"):
        download(tmp_path / "d", ["suburmp", "audioclip", "inception"], retries=0, **specs)


def _tar(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


@pytest.mark.parametrize("member, reason", [
    (_file("../evil.txt"), "'..' in path"),
    (_file("/tmp/evil.txt"), "absolute path"),
    (_link("Sub-URMP/escape", "../../etc/passwd"), "link to '../../etc/passwd'"),
])
def test_path_traversal_archive_is_rejected(server, tmp_path, member, reason):
    server.files["/Sub-URMP.tar.gz"] = _tar([_file("Sub-URMP/ok.txt"), member])
    out = tmp_path / "download"
    with pytest.raises(DownloadError, match=reason):
        download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.tar.gz"), "sha256": ""})
    assert not (out / "suburmp" / "Sub-URMP").exists() and not (tmp_path / "evil.txt").exists()
    assert not (out / "suburmp" / "Sub-URMP.tar.gz").exists()


def test_zip_traversal_is_rejected(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DownloadError, match="unsafe member '../evil.txt'"):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nothing_to_fetch_writes_every_item_folder_with_its_manifest(tmp_path):
    # each folder is a DVC output of its own (finetune and evaluate depend on theirs only): never absent or empty
    out = tmp_path / "d"
    manifests = download(out, [])
    assert sorted(p.name for p in out.iterdir()) == ["audioclip", "inception", "suburmp"]
    for name in ("suburmp", "audioclip", "inception"):
        assert manifests[name] == out / name / "manifest.json"
        assert [p.name for p in (out / name).iterdir()] == ["manifest.json"]
        assert _manifest(manifests, name) == {"item": name, "requested": False}


def test_an_item_fetched_earlier_keeps_its_manifest(tmp_path):
    # `a2i download --item inception` after `--item audioclip`: the AudioCLIP weights are still there
    (tmp_path / "mine" / "w.pt").parent.mkdir()
    (tmp_path / "mine" / "w.pt").write_bytes(b"weights")
    (tmp_path / "mine" / "i.pth").write_bytes(b"inception")
    local = {"source": "local", "local_dir": tmp_path / "mine", "audioclip": {"url": "http://x/w.pt"},
             "inception": {"url": "http://x/i.pth"}}
    first = _manifest(download(tmp_path / "d", ["audioclip"], **local), "audioclip")
    manifests = download(tmp_path / "d", ["inception"], **local)
    assert _manifest(manifests, "audioclip") == first and first["sha256"] == _sha(b"weights")
    assert _manifest(manifests, "inception")["path"] == str(tmp_path / "d" / "inception" / "i.pth")
    assert _manifest(manifests, "suburmp") == {"item": "suburmp", "requested": False}


def test_partial_downloads_stay_outside_the_item_folders(server, tmp_path):
    # DVC deletes each item folder (an output) before it reruns the stage: a part there could not be resumed
    data = bytes(range(256)) * 4000
    server.files["/w.pt"] = data
    server.cut_after = 100_000
    out = tmp_path / "d"
    with pytest.raises(DownloadError, match="could not download"):
        download(out, ["audioclip"], retries=0, audioclip={"url": server.url("w.pt"), "sha256": _sha(data)})
    have = part_file(out / ".partial", server.url("w.pt")).stat().st_size
    assert 0 < have <= 100_000
    download(out, ["audioclip"], audioclip={"url": server.url("w.pt"), "sha256": _sha(data)})
    assert server.requests[-1] == ("/w.pt", f"bytes={have}-")
    assert (out / "audioclip" / "w.pt").read_bytes() == data
    assert sorted(p.name for p in (out / "audioclip").iterdir()) == ["manifest.json", "w.pt"]


def test_local_source_is_validated(tmp_path):
    write_performance(tmp_path / "mine" / "Sub-URMP", "train", "cello", 0, loud_track(0.6))
    with pytest.raises(DownloadError, match="validation: missing"):
        download(tmp_path / "d", ["suburmp"], source="local", local_dir=tmp_path / "mine",
                 suburmp={"url": "http://x/Sub-URMP.zip"})
    write_performance(tmp_path / "mine" / "Sub-URMP", "validation", "cello", 1, loud_track(0.6))
    (tmp_path / "mine" / "w.pt").write_bytes(b"weights")
    manifests = download(tmp_path / "d", ["suburmp", "audioclip"], source="local", local_dir=tmp_path / "mine",
                         suburmp={"url": "http://x/Sub-URMP.zip"}, audioclip={"url": "http://x/w.pt",
                                                                              "sha256": _sha(b"weights")})
    items = {name: _manifest(manifests, name) for name in manifests}
    assert items["suburmp"]["local"] == str(tmp_path / "mine" / "Sub-URMP")
    assert items["audioclip"]["sha256"] == _sha(b"weights") and items["audioclip"]["source"] == "local"
    # linked where source=url puts them, so downstream paths do not depend on the source
    assert items["suburmp"]["path"] == str(tmp_path / "d" / "suburmp" / "Sub-URMP")
    assert items["audioclip"]["path"] == str(tmp_path / "d" / "audioclip" / "w.pt")
    assert (tmp_path / "d" / "audioclip" / "w.pt").read_bytes() == b"weights"
    assert items["inception"] == {"item": "inception", "requested": False}
    with pytest.raises(DownloadError, match="differs from download.audioclip.sha256"):
        download(tmp_path / "d", ["audioclip"], source="local", local_dir=tmp_path / "mine",
                 audioclip={"url": "http://x/w.pt", "sha256": "0" * 64})


def test_local_tree_is_linked_file_by_file(tmp_path):
    # DVC leaves a symlinked folder out of an output's hash and cache; linked files it hashes and caches
    mine = tmp_path / "mine" / "Sub-URMP"
    for split, number in (("train", 0), ("validation", 1)):
        write_performance(mine, split, "cello", number, loud_track(0.6))
    download(tmp_path / "d", ["suburmp"], source="local", local_dir=mine, suburmp={"url": "http://x/Sub-URMP.zip"})
    placed = tmp_path / "d" / "suburmp" / "Sub-URMP"
    files = sorted(p.relative_to(mine) for p in mine.rglob("*") if p.is_file())
    assert files and sorted(p.relative_to(placed) for p in placed.rglob("*") if p.is_file()) == files
    assert not any(p.is_symlink() for p in placed.rglob("*") if p.is_dir())
    assert all((placed / f).is_symlink() and (placed / f).resolve() == (mine / f).resolve() for f in files)
    with pytest.raises(DownloadError, match="inside the download folder"):
        download(placed.parent, ["suburmp"], source="local", local_dir=placed, suburmp={"url": "http://x/S.zip"})
    assert (placed / files[0]).is_file()  # refused before anything was replaced


@pytest.mark.parametrize("name", ["Sub-URMP.zip", "Sub-URMP.tar.gz"])
def test_corrupt_archive_is_one_line_and_deleted(server, tmp_path, name):
    server.files[f"/{name}"] = bytes(range(256)) * 64  # what a wrong URL or an HTML error page looks like
    out = tmp_path / "download"
    for _ in range(2):  # the bad file is gone: the second run downloads again and fails the same clear way
        with pytest.raises(DownloadError) as error:
            download(out, ["suburmp"], suburmp={"url": server.url(name), "sha256": ""})
        message = str(error.value)
        assert message.startswith(f"download.items suburmp not fetched: {out / 'suburmp' / name}: not a valid "
                                  "archive")
        assert "\n" not in message
        assert f"deleted {name}" in message
        assert not (out / "suburmp" / name).exists() and not (out / "suburmp" / "Sub-URMP").exists()
    assert [path for path, _ in server.requests] == [f"/{name}"] * 2


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_corrupt_bz2_or_lzma_member_is_an_invalid_archive_and_deleted(server, tmp_path, method):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        zf.writestr("Sub-URMP/chunk/train/cello/cello00_500.wav", bytes(range(256)) * 300)
    data = bytearray(buffer.getvalue())
    data[200:260] = bytes(b ^ 0xFF for b in data[200:260])  # inside the member's compressed stream
    server.files["/Sub-URMP.zip"] = bytes(data)
    out = tmp_path / "download"
    with pytest.raises(DownloadError, match=r"Sub-URMP.zip: not a valid archive \((OSError|LZMAError): .*deleted "
                                            r"Sub-URMP.zip, the next run downloads it again"):
        download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.zip"), "sha256": ""})
    assert [p.name for p in out.rglob("*") if p.is_file()] == []


def test_a_file_and_a_folder_entry_of_one_name_is_an_invalid_archive(tmp_path):
    archive = tmp_path / "Sub-URMP.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Sub-URMP/a/", "")
        zf.writestr("Sub-URMP/a", "a file where the folder is")
    with pytest.raises(DownloadError, match="member 'Sub-URMP/a' is a file and the folder of another member"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_archive_larger_than_the_free_disk_is_refused_before_extraction(tmp_path, monkeypatch):
    archive = tmp_path / "Sub-URMP.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Sub-URMP/big.bin", bytes(2_000_000))  # 2 MB of zeros in a few kB: a (small) zip bomb
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(DownloadError, match=r"Sub-URMP.zip: extracted it takes 0.0 GB, .* has 0.0 GB free; nothing "
                                            r"extracted"):
        safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Sub-URMP.zip"]


def test_a_url_without_http_is_a_download_error_not_a_checksum_one(tmp_path):
    with pytest.raises(DownloadError, match=r"could not download htp://example.invalid/w.pt \(InvalidSchema: ") as e:
        download(tmp_path / "d", ["audioclip"], audioclip={"url": "htp://example.invalid/w.pt", "sha256": ""})
    assert "sha256" not in str(e.value)


def test_a_rerun_after_dvc_deleted_the_item_folders_fetches_nothing_again(server, archive, tmp_path):
    # DVC deletes a stage's outputs before it reruns it: after any change of the download section (here the
    # sha256 the first run told the user to pin) the archive is linked back from .fetched, and only extracted
    server.files["/Sub-URMP.zip"] = archive
    out = tmp_path / "download"
    download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.zip"), "sha256": ""})
    before = sorted(p.relative_to(out / "suburmp") for p in (out / "suburmp").rglob("*"))
    for name in ("suburmp", "audioclip", "inception"):
        shutil.rmtree(out / name)
    download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.zip"), "sha256": _sha(archive)})
    assert len(server.requests) == 1
    assert sorted(p.relative_to(out / "suburmp") for p in (out / "suburmp").rglob("*")) == before
    kept = [p for p in (out / ".fetched").iterdir()]
    assert len(kept) == 1 and kept[0].samefile(out / "suburmp" / "Sub-URMP.zip")  # one copy on disk


def test_the_kept_download_of_a_url_no_longer_configured_is_deleted(server, tmp_path):
    server.files["/v1/w.pt"], server.files["/v2/w.pt"] = b"first weights", b"second weights"
    out = tmp_path / "download"
    for version in ("v1", "v2"):
        download(out, ["audioclip"], audioclip={"url": server.url(f"{version}/w.pt"), "sha256": ""})
    kept = list((out / ".fetched").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == b"second weights"


def test_a_member_name_the_file_system_cannot_hold_is_an_invalid_archive(tmp_path):
    archive = tmp_path / "Sub-URMP.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"Sub-URMP/{'x' * 300}.wav", "a name longer than a file system allows")
    with pytest.raises(DownloadError, match=r"Sub-URMP.zip: not a valid archive \(OSError: .*File name too long"):
        safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Sub-URMP.zip"]


def test_archive_without_suburmp_is_kept_and_its_layout_named(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "not the data set")
        zf.writestr("data/chunk/x.wav", "no img/ beside it")
    server.files["/Sub-URMP.zip"] = buffer.getvalue()
    out = tmp_path / "download"
    for _ in range(2):  # a good download is not fetched again because of its layout
        with pytest.raises(DownloadError) as error:
            download(out, ["suburmp"], suburmp={"url": server.url("Sub-URMP.zip"), "sha256": ""})
        message = str(error.value)
        assert "no Sub-URMP root" in message and "the archive holds data/, readme.txt" in message
        assert f"kept {out / 'suburmp' / 'Sub-URMP.zip'}" in message and "download.source: local" in message
        assert "\n" not in message
        assert (out / "suburmp" / "Sub-URMP.zip").is_file() and not (out / "suburmp" / "Sub-URMP").exists()
    assert len(server.requests) == 1


@pytest.mark.parametrize("prefix, make, name", [
    ("", _zip_of, "Sub-URMP.zip"),  # chunk/ and img/ at the top
    ("URMP-sub/", _tar_of, "Sub-URMP.tar.gz"),  # another name
    ("Sub-URMP/Sub-URMP/", _zip_of, "Sub-URMP.zip"),  # one level deeper
])
def test_archive_root_is_moved_where_prepare_raw_points(server, tree, tmp_path, prefix, make, name):
    server.files[f"/{name}"] = make(tree, prefix)
    out = tmp_path / "download"
    manifests = download(out, ["suburmp"], suburmp={"url": server.url(name), "sha256": ""})
    root = out / "suburmp" / "Sub-URMP"  # conf/data/suburmp.yaml's prepare.raw, under data/download
    assert _manifest(manifests, "suburmp")["path"] == str(root)
    assert sorted(p.name for p in (out / "suburmp").iterdir()) == sorted(["Sub-URMP", name, "manifest.json"])
    files = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    assert sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) == files
    assert validate_suburmp(root) == root


def _hardlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


@pytest.mark.parametrize("members, culprit", [
    ([_file("Sub-URMP/ok.txt"), _link("Sub-URMP/alias", "ok.txt")], "Sub-URMP/alias"),  # even one that stays inside
    ([_file("Sub-URMP/ok.txt"), _hardlink("Sub-URMP/copy", "Sub-URMP/ok.txt")], "Sub-URMP/copy"),
    # each link alone stays inside; through the first, the second points outside (tarfile's filter stops it later,
    # as "not a valid archive")
    ([_link("deep/x", ".."), _link("deep/x/evil", "../outside")], "deep/x"),
])
def test_tar_links_are_rejected_by_name(tmp_path, members, culprit):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(_tar(members))
    with pytest.raises(DownloadError) as error:
        safe_extract(path, tmp_path / "out")
    message = str(error.value)
    assert message.startswith(f"{path}: unsafe member '{culprit}' (link to ") and "\n" not in message
    assert "Sub-URMP archives hold no links" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_unpinned_weights_are_checked_against_the_digest_prefix_in_their_name(server, tmp_path):
    good = b"inception weights"
    name = f"pt_inception-2015-12-05-{_sha(good)[:8]}.pth"  # torch.hub's <name>-<sha256 prefix>.<ext>
    server.files[f"/{name}"] = good
    assert fetch(server.url(name), "", tmp_path / name, tmp_path / ".partial") == _sha(good)
    stale = "pt_inception-2015-12-05-6726825d.pth"  # the real name, served with other bytes
    server.files[f"/{stale}"] = good
    with pytest.raises(DownloadError) as error:
        download(tmp_path / "d", ["inception"], inception={"url": server.url(stale), "sha256": ""})
    message = str(error.value)
    assert f"sha256 {_sha(good)} does not start with 6726825d, the digest prefix in its file name" in message
    assert "\n" not in message
    assert not (tmp_path / "d" / "inception" / stale).exists()  # the next run fetches it again


def _zip(members: dict, encrypted: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = buffer.getvalue()
    if encrypted:  # the first member's "encrypted" flag, in its local header and in its central directory entry
        for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.index(signature) + flags_at
            data = data[:at] + bytes([data[at] | 1]) + data[at + 1:]
    return data


@pytest.mark.parametrize("name, data, why", [
    ("Sub-URMP.zip", _zip({"Sub-URMP/chunk/a.wav": b"x"}, encrypted=True), "is encrypted"),
    ("Sub-URMP.zip", _zip({"Sub-URMP/x": b"a", "Sub-URMP/x/y": b"b"}),
     "member 'Sub-URMP/x' is a file and the folder of another"),
    ("Sub-URMP.tar.gz", _tar([_file("Sub-URMP/x"), _file("Sub-URMP/x/y")]),
     "member 'Sub-URMP/x' is a file and the folder of another"),
])
def test_an_archive_that_cannot_be_extracted_is_one_line_and_deleted(server, tmp_path, name, data, why):
    server.files[f"/{name}"] = data
    out = tmp_path / "download"
    with pytest.raises(DownloadError) as error:
        download(out, ["suburmp"], suburmp={"url": server.url(name), "sha256": ""})
    message = str(error.value)
    assert "not a valid archive" in message and why in message and "\n" not in message
    assert not (out / "suburmp" / name).exists() and not (out / "suburmp" / "Sub-URMP").exists()
    assert not (out / "suburmp" / "manifest.json").exists()


def test_a_failed_rerun_leaves_no_manifest_that_claims_the_item(server, archive, tmp_path):
    server.files["/good/Sub-URMP.zip"] = archive
    server.files["/bad/Sub-URMP.zip"] = bytes(range(256)) * 64
    out = tmp_path / "download"
    download(out, ["suburmp"], suburmp={"url": server.url("good/Sub-URMP.zip"), "sha256": ""})
    assert (out / "suburmp" / "manifest.json").is_file()
    with pytest.raises(DownloadError, match="not a valid archive"):
        download(out, ["suburmp"], suburmp={"url": server.url("bad/Sub-URMP.zip"), "sha256": ""})
    assert not (out / "suburmp" / "manifest.json").exists()


def test_a_part_of_a_file_changed_on_the_server_is_not_stitched_to_the_new_one(server, tmp_path):
    old, new = b"A" * 100_000, b"B" * 150_000
    server.files["/w.pt"], server.etags["/w.pt"] = old, '"v1"'
    server.cut_after = 70_000  # the first download is cut off, its retries fail: a part of v1 is left
    with pytest.raises(DownloadError):
        fetch(server.url("w.pt"), "", tmp_path / "w.pt", tmp_path / ".partial", retries=0)
    server.files["/w.pt"], server.etags["/w.pt"] = new, '"v2"'
    fetch(server.url("w.pt"), "", tmp_path / "w.pt", tmp_path / ".partial")
    assert server.if_ranges == [None, '"v1"']  # the resume named the version it had
    assert (tmp_path / "w.pt").read_bytes() == new
    assert list((tmp_path / ".partial").iterdir()) == []


def test_a_part_of_an_unchanged_file_is_resumed(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.files["/w.pt"], server.etags["/w.pt"] = data, '"v1"'
    server.cut_after = 123_456
    with pytest.raises(DownloadError):
        fetch(server.url("w.pt"), _sha(data), tmp_path / "w.pt", tmp_path / ".partial", retries=0)
    fetch(server.url("w.pt"), _sha(data), tmp_path / "w.pt", tmp_path / ".partial")
    assert 0 < int(server.requests[1][1][len("bytes="):-1]) <= 123_456 and server.if_ranges == [None, '"v1"']
    assert (tmp_path / "w.pt").read_bytes() == data


def test_an_unpinned_file_of_another_url_is_fetched_again_not_kept(server, tmp_path):
    server.files["/v1/w.pt"], server.files["/v2/w.pt"] = b"first weights", b"second weights"
    out = tmp_path / "download"
    download(out, ["audioclip"], audioclip={"url": server.url("v1/w.pt"), "sha256": ""})
    manifests = download(out, ["audioclip"], audioclip={"url": server.url("v2/w.pt"), "sha256": ""})
    assert (out / "audioclip" / "w.pt").read_bytes() == b"second weights"
    assert _manifest(manifests, "audioclip")["sha256"] == _sha(b"second weights")
    download(out, ["audioclip"], audioclip={"url": server.url("v2/w.pt"), "sha256": ""})
    assert [path for path, _ in server.requests] == ["/v1/w.pt", "/v2/w.pt"]  # the same URL: kept


def test_a_part_of_another_url_is_not_resumed(server, tmp_path):
    server.files["/v2/w.pt"] = b"B" * 100_000
    partial = tmp_path / ".partial"
    partial.mkdir()
    part_file(partial, server.url("v1/w.pt")).write_bytes(b"A" * 40_000)  # a killed download of the old URL
    fetch(server.url("v2/w.pt"), "", tmp_path / "w.pt", partial)
    assert server.requests == [("/v2/w.pt", None)]
    assert (tmp_path / "w.pt").read_bytes() == b"B" * 100_000


def test_a_url_that_names_no_file_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(DownloadError, match=r"download.audioclip.url 'http://127.0.0.1:9/' names no file"):
        download(tmp_path / "d", ["audioclip"], audioclip={"url": "http://127.0.0.1:9/", "sha256": ""})
    assert not (tmp_path / "d").exists()


def test_temporary_files_of_a_killed_download_are_removed(server, tmp_path):
    server.files["/w.pt"] = b"weights"
    stray = tmp_path / "d" / "audioclip" / "tmp1a2b3c4d"  # pooch's temporary file, left by a killed run
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"")
    download(tmp_path / "d", ["audioclip"], audioclip={"url": server.url("w.pt"), "sha256": _sha(b"weights")})
    assert sorted(p.name for p in stray.parent.iterdir()) == ["manifest.json", "w.pt"]


def test_an_archive_extracted_before_is_not_extracted_again(server, archive, tmp_path, caplog):
    server.files["/Sub-URMP.zip"] = archive
    out = tmp_path / "download"
    spec = {"url": server.url("Sub-URMP.zip"), "sha256": _sha(archive)}
    download(out, ["suburmp"], suburmp=spec)
    wav = out / "suburmp/Sub-URMP/chunk/train/double_bass/double_bass00_700.wav"
    inode = wav.stat().st_ino
    caplog.set_level("INFO")
    manifests = download(out, ["suburmp"], suburmp=spec)
    assert wav.stat().st_ino == inode and "already extracted from this archive" in caplog.text
    assert _manifest(manifests, "suburmp")["path"] == str(out / "suburmp" / "Sub-URMP")


def test_local_weights_are_checked_against_the_digest_prefix_in_their_name(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    stale = mine / "pt_inception-2015-12-05-6726825d.pth"
    stale.write_bytes(b"other bytes")
    with pytest.raises(DownloadError, match=f"sha256 {_sha(b'other bytes')} does not start with 6726825d"):
        download(tmp_path / "d", ["inception"], source="local", local_dir=mine,
                 inception={"url": f"http://x/{stale.name}", "sha256": ""})
    assert stale.read_bytes() == b"other bytes"  # the user's file is theirs: named, not deleted
