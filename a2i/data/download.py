"""`download`: the real Sub-URMP archive and the pretrained weights, fetched, verified and safely extracted.

Every item has its own folder, `<out>/<item>/`, written whether or not `items` lists it, with a manifest.json
saying what it holds: each is a separate DVC output, so a stage depends on the one item it reads (finetune on
`audioclip`, evaluate on `inception`) and never hashes the extracted Sub-URMP.

pooch does the caching, the sha256 check and the atomic move into place; the downloader given to it adds
retries that resume a partial download (HTTP Range, with If-Range so that a file changed on the server is fetched
anew, not stitched) from `<out>/.partial/<url digest>-<name>.part` and a progress bar. A finished download is
kept in `<out>/.fetched/`, so that a rerun whose item folder DVC deleted does not fetch it again.
With `source: local` nothing is fetched: the files the user placed by hand in `local_dir` are validated and
symlinked where `source: url` would put them, so `prepare.raw`, `finetune.checkpoint` and `evaluate.fid_weights`
are the same for both sources. DVC follows the links when it commits an item's folder (one copy in its cache,
the links replaced by its cache.type); it would skip a symlinked folder, so the Sub-URMP tree is linked file
by file.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from a2i.data import DOWNLOAD_ITEMS, DOWNLOAD_SOURCES, url_file_name
from a2i.data.layout import ORIGINAL_SPLITS, check_split_folder
from a2i.io import read_json, sha256_file, write_json

log = logging.getLogger(__name__)

ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")
# what a corrupt or truncated zip/tar(.gz, .bz2, .xz, or such members of a zip) raises while it is read; zipfile
# raises RuntimeError for an encrypted member and NotImplementedError for a compression method it lacks; bz2 raises
# an OSError without an errno
ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, EOFError,
                  RuntimeError, NotImplementedError, OSError)
# the OSErrors of a member the file system cannot hold as named (a name too long, a file where a folder is);
# any other errno is the system's (a full disk, no permission), not the archive's fault, and keeps the archive
ARCHIVE_ERRNOS = (None, errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EILSEQ)
HUB_DIGEST = re.compile(r"-([0-9a-f]{8,})\.")  # torch.hub names a file <name>-<sha256 prefix>.<ext>
MANIFEST = "manifest.json"  # in every item's folder
# Beside the item folders, in no DVC output: DVC deletes an output before it reruns its stage, which would throw
# away the part that the rerun is meant to resume (537 MB for AudioCLIP), and the finished downloads, which a
# rerun after any change of the download section (another item, a pinned sha256) would fetch again.
PARTIAL = ".partial"
# The finished download of each URL still configured, hard-linked to the item's file: no second copy until DVC
# commits the item, when its default cache.type (reflink, else copy) gives the item a copy of its own.
FETCHED = ".fetched"


class DownloadError(ValueError):
    """A fetch that failed for good: the message names the URL and where to put the file by hand."""


class ResumableDownloader:
    """pooch downloader: stream `url` into a persistent .part file, resuming it on every retry."""

    def __init__(self, part: Path, retries: int = 3, timeout: float = 60.0, wait: float = 1.0):
        self.part, self.retries, self.timeout, self.wait = Path(part), retries, timeout, wait

    def __call__(self, url: str, output_file, pooch=None, check_only: bool = False):
        import requests

        if check_only:
            return requests.head(url, timeout=self.timeout, allow_redirects=True).ok
        self.part.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.retries + 1):
            try:
                self._fetch(url)
                break
            except requests.RequestException as error:
                if attempt == self.retries:
                    raise
                log.warning("download of %s interrupted (%s); resuming, %d tries left", url, error,
                            self.retries - attempt)
                time.sleep(min(self.wait * (attempt + 1), 10))
        os.replace(self.part, output_file)  # pooch checks the hash of output_file, then moves it into place
        validator_file(self.part).unlink(missing_ok=True)

    def _fetch(self, url: str) -> None:
        import requests

        have = self.part.stat().st_size if self.part.exists() else 0
        validator = self._validator(have)
        headers = {"Range": f"bytes={have}-"} if have else {}
        if validator:  # the server sends the whole file, not the rest, if it changed since the part began
            headers["If-Range"] = validator
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416:  # nothing left to fetch: the part is complete
                return
            response.raise_for_status()
            if response.status_code != 206:  # the server ignored the range, or the file changed: start over
                have = 0
                _write_validator(validator_file(self.part), response.headers)
            expected = int(response.headers.get("Content-Length", -1))
            written = 0
            with open(self.part, "ab" if have else "wb") as f, tqdm(
                    total=have + expected if expected >= 0 else None, initial=have, unit="B", unit_scale=True,
                    desc=url_file_name(url)) as progress:
                for block in response.iter_content(chunk_size=1 << 16):
                    f.write(block)
                    written += len(block)
                    progress.update(len(block))
            if 0 <= expected != written:
                raise requests.ConnectionError(f"connection closed after {written} of {expected} bytes")

    def _validator(self, have: int) -> str | None:
        """The strong ETag or Last-Modified date of the file the part was started from (None: send no If-Range)."""
        path = validator_file(self.part)
        return path.read_text() if have and path.exists() else None


def validator_file(part: Path) -> Path:
    """Beside each part: the version of the file it holds, sent as If-Range when the download resumes."""
    return part.with_name(part.name + ".validator")


def _write_validator(path: Path, headers) -> None:
    """A weak ETag may not be sent in If-Range (RFC 9110, 13.1.5): then the date, or nothing."""
    etag = headers.get("ETag", "")
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified", "")
    if value:
        path.write_text(value)
    else:
        path.unlink(missing_ok=True)


def fetch(url: str, sha256: str, dest: Path, partial: Path, retries: int = 3) -> str:
    """Download `url` to `dest` (skipped when `dest` exists with the right hash), resuming from the folder
    `partial`; returns its sha256. Without `sha256`, a torch.hub digest prefix in the file name is checked
    instead."""
    import pooch
    import requests

    dest = Path(dest)
    part = part_file(partial, url)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=dest.name, path=dest.parent,
                       downloader=ResumableDownloader(part, retries))
    except (requests.RequestException, OSError) as error:  # first: requests' bad-URL errors are ValueErrors too
        raise DownloadError(f"could not download {url} ({error.__class__.__name__}: {error})") from None
    except ValueError as error:  # pooch: hash mismatch; the bad download is already deleted
        part.unlink(missing_ok=True)
        validator_file(part).unlink(missing_ok=True)
        raise DownloadError(f"{url}: {' '.join(str(error).split())} Check download sha256") from None
    digest = sha256_file(dest)
    if not sha256:
        problem = name_digest_problem(dest.name, digest)
        if problem:  # deleted, as pooch deletes a mismatch, so that the next run fetches it again
            dest.unlink()
            raise DownloadError(f"{url}: {problem}; deleted the download")
        log.warning("%s: no sha256 in params; downloaded file has sha256 %s - paste it into conf/config.yaml "
                    "(download section) to pin it", url, digest)
    return digest


def part_file(partial: str | Path, url: str) -> Path:
    """Where the download of `url` is resumed from: one part per URL, so that a part of another URL (an edited
    download.<item>.url with the same file name) is never continued."""
    return Path(partial) / f"{_by_url(url)}.part"


def _by_url(url: str) -> str:
    """`<url digest>-<file name>`: a name of its own for every URL."""
    return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{url_file_name(url)}"


def name_digest_problem(name: str, digest: str) -> str | None:
    """torch.hub's check_hash: a `<name>-<hex>.<ext>` file's sha256 starts with <hex>; what is wrong, if not."""
    match = HUB_DIGEST.search(name)
    if match and not digest.startswith(match[1]):
        return f"sha256 {digest} does not start with {match[1]}, the digest prefix in its file name"
    return None


# ---------------------------------------------------------------- safe extraction

def _unsafe(name: str) -> str | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        return "absolute path"
    if ".." in path.parts:
        return "'..' in path"
    return None


def _file_in_a_folders_place(files: list[str], dirs: list[str]) -> str | None:
    """A file member whose path is also a folder member or the folder of another member: it cannot be
    extracted."""
    folders = {parent for name in files + dirs for parent in PurePosixPath(name).parents}
    folders |= {PurePosixPath(name) for name in dirs}  # `a/` of a zip: the trailing slash is dropped here
    return next((name for name in files if PurePosixPath(name) in folders), None)


def check_archive(archive: Path) -> int:
    """The bytes the archive's files take once extracted; DownloadError naming the first member that would land
    outside the target folder, is a link, or is a file where another member needs a folder."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                reason = _unsafe(info.filename)
                if reason is None and stat.S_ISLNK(info.external_attr >> 16):
                    reason = "symbolic link"
                if reason:
                    raise DownloadError(f"{archive}: unsafe member '{info.filename}' ({reason}); nothing extracted")
            files = [info.filename for info in members if not info.is_dir()]
            dirs = [info.filename for info in members if info.is_dir()]
            size = sum(info.file_size for info in members)  # zipfile refuses a member longer than it declares
    else:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                reason = _unsafe(member.name)
                if reason is None and (member.issym() or member.islnk()):
                    # a chain of links can fool any check made on names alone, and Sub-URMP needs none
                    reason = f"link to '{member.linkname}'; Sub-URMP archives hold no links"
                if reason is None and not (member.isfile() or member.isdir()):
                    reason = "device or special file"
                if reason:
                    raise DownloadError(f"{archive}: unsafe member '{member.name}' ({reason}); nothing extracted")
            files = [member.name for member in members if member.isfile()]
            dirs = [member.name for member in members if member.isdir()]
            size = sum(member.size for member in members if member.isfile())
    clash = _file_in_a_folders_place(files, dirs)
    if clash:
        raise DownloadError(f"{archive}: not a valid archive (member '{clash}' is a file and the folder of another "
                            "member); nothing extracted")
    return size


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a zip/tar archive into `dest` (replaced only when complete) after checking every member."""
    archive, dest = Path(archive), Path(dest)
    tmp = dest.parent / f".{dest.name}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        size, free = check_archive(archive), shutil.disk_usage(dest.parent).free
        if size > free:  # a zip bomb, or a disk too small for the data set: refused before it is filled
            raise DownloadError(f"{archive}: extracted it takes {size / 1e9:.1f} GB, {dest.parent} has "
                                f"{free / 1e9:.1f} GB free; nothing extracted")
        tmp.mkdir(parents=True)
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    except ARCHIVE_ERRORS as error:
        if isinstance(error, OSError) and error.errno not in ARCHIVE_ERRNOS:
            raise
        reason = str(error).strip().splitlines()[0].rstrip(":")  # tarfile lists every method it tried below
        raise DownloadError(f"{archive}: not a valid archive ({type(error).__name__}: {reason}); "
                            "nothing extracted") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------- layout checks

def validate_suburmp(root: Path) -> Path:
    """Check `root` is a Sub-URMP root: {chunk,img}/{train,validation}/<instrument>/ with known instruments."""
    root = Path(root)
    for kind in ("chunk", "img"):
        for split in ORIGINAL_SPLITS:
            try:
                check_split_folder(root / kind / split)
            except ValueError as error:
                raise DownloadError(str(error)) from None
    return root


def _find_suburmp(folder: Path) -> Path:
    """The Sub-URMP root (the folder with chunk/ and img/) in an extracted archive: `folder` itself or up to two
    levels down, shallowest first."""
    levels = [[folder]]
    for _ in range(2):
        levels.append(sorted(p for parent in levels[-1] for p in parent.iterdir() if p.is_dir()))
    for candidate in (path for level in levels for path in level):
        if (candidate / "chunk").is_dir() and (candidate / "img").is_dir():
            return validate_suburmp(candidate)
    raise DownloadError(f"{folder}: no Sub-URMP root (a folder with chunk/ and img/) up to two levels down; the "
                        f"archive holds {_listing(folder)}")


def _listing(folder: Path, shown: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "nothing"


def _place_suburmp(root: Path, extracted: Path) -> Path:
    """Move the found `root` up to `extracted`, the path that prepare.raw and the manifest promise, whatever the
    archive called it; what lay beside a nested root is dropped."""
    if root == extracted:
        return extracted
    aside = extracted.parent / f".{extracted.name}.root"
    shutil.rmtree(aside, ignore_errors=True)
    root.rename(aside)
    shutil.rmtree(extracted)
    aside.rename(extracted)
    return extracted


def _local_hint(holding: str, out: Path) -> str:
    """How to use files fetched or extracted by hand: not by placing them in `out`, whose item folders DVC deletes
    (with them) before it reruns the download stage."""
    return (f"rerun with download.source: local and download.local_dir: a folder outside {out} that holds "
            f"{holding} (and the other download.items)")


# ---------------------------------------------------------------- the stage

def _fetch_item(name: str, spec: dict, out: Path, retries: int, previous: dict) -> dict:
    """Fetch `name` into `out/name/`; `previous`: the manifest of the run before (empty if none), which says
    whether a file already there came from this URL and whether its archive is extracted."""
    url, sha256 = spec["url"], spec.get("sha256") or ""
    target = out / name / url_file_name(url)
    if name == "suburmp" and not target.name.endswith(ARCHIVES):
        raise DownloadError(f"{url}: expected an archive ({', '.join(ARCHIVES)}); fix download.suburmp.url")
    for stray in target.parent.glob("tmp*"):  # pooch's temporary downloads, left by a killed run
        if stray.is_file():
            stray.unlink()
    if not sha256 and previous.get("url") != url:  # pooch keeps any file of that name when no hash is pinned
        target.unlink(missing_ok=True)
        (target.parent / MANIFEST).unlink(missing_ok=True)
    kept = fetched_file(out, url)
    if not target.exists() and kept.is_file():  # DVC deleted the item's folder before this rerun
        _hard_link(kept, target)  # fetched again only if it fails the sha256 check
    try:
        digest = fetch(url, sha256, target, out / PARTIAL, retries)
    except DownloadError as error:
        holding = "Sub-URMP/ extracted from the archive" if name == "suburmp" else target.name
        raise DownloadError(f"{error}; or download it by hand and {_local_hint(holding, out)}") from None
    _hard_link(target, kept)
    entry = {"url": url, "sha256": digest, "file": str(target)}
    if name != "suburmp":
        return {**entry, "path": str(target)}
    extracted = target.parent / "Sub-URMP"
    if {**entry, "path": str(extracted)}.items() <= previous.items() and extracted.is_dir():
        log.info("%s: already extracted from this archive", extracted)
        return {**entry, "path": str(validate_suburmp(extracted))}
    # the archive, whose extraction may fail: a rerun keeps it only if it comes from the same URL
    _write_manifest(out, name, "url", entry)
    return {**entry, "path": str(_extract_suburmp(target, out, kept))}


def fetched_file(out: Path, url: str) -> Path:
    """Where the finished download of `url` is kept beside the item folders (`FETCHED`)."""
    return out / FETCHED / _by_url(url)


def _forget_other_urls(out: Path, urls: list[str]) -> None:
    """Delete the kept downloads of URLs no longer in the download section: the store holds one file per item."""
    keep = {_by_url(url) for url in urls}
    for path in sorted((out / FETCHED).glob("*")):
        if path.name not in keep and path.is_file():
            log.info("%s: no download.<item>.url names it any more; deleted", path)
            path.unlink()
    _remove_if_empty(out / FETCHED)


def _hard_link(source: Path, dest: Path) -> None:
    """`dest` as a second name of `source`'s bytes (a copy where the file system has no hard links)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _extract_suburmp(archive: Path, out: Path, kept: Path) -> Path:
    """The Sub-URMP root extracted from the downloaded `archive`, at `Sub-URMP` beside it. A corrupt or unsafe
    archive is deleted (with what came out of it): kept, it would pass for a finished download and fail the same
    way on every run. One with an unexpected layout is kept: the download is good, and the data set is large."""
    extracted = archive.parent / "Sub-URMP"
    try:
        safe_extract(archive, extracted)
    except DownloadError as error:
        archive.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
        (archive.parent / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(extracted, ignore_errors=True)  # an earlier run's tree, from another archive
        raise DownloadError(f"{error}; deleted {archive.name}, the next run downloads it again") from None
    try:
        return _place_suburmp(_find_suburmp(extracted), extracted)
    except DownloadError as error:
        shutil.rmtree(extracted, ignore_errors=True)
        hint = _local_hint("the Sub-URMP/ root extracted by hand", out)
        raise DownloadError(f"{error}; kept {archive}: {hint}") from None


def _link_file(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    dest.symlink_to(source.resolve())


def _link_tree(source: Path, dest: Path) -> None:
    """Mirror `source` at `dest` with one symlink per file: DVC hashes and caches what a linked file holds, but
    leaves a symlinked folder out of an output altogether."""
    shutil.rmtree(dest, ignore_errors=True)
    for folder, _, files in os.walk(source, followlinks=True):  # the tree as validate_suburmp saw it
        for name in files:
            path = Path(folder, name)
            _link_file(path, dest / path.relative_to(source))


def _local_item(name: str, spec: dict, local_dir: Path, out: Path) -> dict:
    """Validate `name` in `local_dir` and link it where `_fetch_item` would put it in `out`."""
    if name == "suburmp":
        root = local_dir / "Sub-URMP"
        root = validate_suburmp(root if root.is_dir() else local_dir)
        placed = out / "suburmp" / "Sub-URMP"
        (placed.parent / MANIFEST).unlink(missing_ok=True)  # it would describe a tree _link_tree replaces
        _link_tree(root, placed)
        return {"local": str(root), "path": str(placed)}
    path = local_dir / url_file_name(spec["url"])
    if not path.is_file():
        raise DownloadError(f"{path}: not found; download {spec['url']} and place it there by hand")
    digest = sha256_file(path)
    if spec.get("sha256") and digest != spec["sha256"]:
        raise DownloadError(f"{path}: sha256 {digest} differs from download.{name}.sha256 {spec['sha256']}")
    problem = None if spec.get("sha256") else name_digest_problem(path.name, digest)
    if problem:  # as source: url checks a download without a pinned sha256
        raise DownloadError(f"{path}: {problem}")
    placed = out / name / path.name
    _link_file(path, placed)
    return {"local": str(path), "path": str(placed), "sha256": digest}


def _read_manifest(out: Path, name: str) -> dict:
    """The manifest of `name` from the run before (empty if none or unreadable)."""
    try:
        return read_json(out / name / MANIFEST)
    except ValueError:
        return {}


def _write_manifest(out: Path, name: str, source: str, entry: dict | None) -> Path:
    """`<out>/<name>/manifest.json`: what the item's folder holds and from where, or that it was not requested.
    Every item gets one, so that its folder is a DVC output that is never empty (DVC handles those badly). A
    manifest of an earlier run is left alone for an item this run did not request: `a2i download --item X`
    adds X beside what is already there."""
    manifest = out / name / MANIFEST
    manifest.parent.mkdir(parents=True, exist_ok=True)
    if entry is not None:
        write_json(manifest, {"item": name, "requested": True, "source": source, **entry})
    elif not manifest.exists():
        write_json(manifest, {"item": name, "requested": False})
    return manifest


def _remove_if_empty(*folders: Path) -> None:
    """Remove the `folders` (in order) that a failed fetch left empty: no output where nothing was fetched."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty, or not there
            pass


def download(out: str | Path, items: list[str], source: str = "url", local_dir: str | Path | None = None,
             retries: int = 3, **specs: dict) -> dict[str, Path]:
    """Fetch (or, with source=local, validate and link) `items` into `<out>/<item>/`; write a manifest into the
    folder of every item, listed or not. Returns each item's manifest."""
    out = Path(out)
    unknown = sorted(set(items) - set(DOWNLOAD_ITEMS))
    if unknown:
        raise DownloadError(f"download.items: unknown {', '.join(unknown)} (known: {', '.join(DOWNLOAD_ITEMS)})")
    missing = [name for name in items if not isinstance(specs.get(name), dict) or "url" not in specs[name]]
    if missing:
        raise DownloadError(f"download.{missing[0]}.url is missing from params.yaml")
    nameless = [name for name in items if not url_file_name(specs[name]["url"])]
    if nameless:
        raise DownloadError(f"download.{nameless[0]}.url '{specs[nameless[0]]['url']}' names no file")
    if source not in DOWNLOAD_SOURCES:
        raise DownloadError(f"download.source must be 'url' or 'local', got '{source}'")
    if source == "local" and (local_dir is None or not Path(local_dir).is_dir()):
        raise DownloadError(f"download.local_dir '{local_dir}' is not a folder (needed with source: local)")
    if source == "local" and Path(local_dir).resolve().is_relative_to(out.resolve()):
        # the links replace what is in `out`, and DVC deletes its item folders before it reruns the stage
        raise DownloadError(f"download.local_dir '{local_dir}' is inside the download folder '{out}'; "
                            "move the files out")
    _forget_other_urls(out, [spec["url"] for spec in specs.values() if isinstance(spec, dict) and "url" in spec])
    fetched, out_existed = {}, out.exists()
    for name in items:
        previous = _read_manifest(out, name)
        try:
            fetched[name] = (_fetch_item(name, specs[name], out, retries, previous) if source == "url"
                             else _local_item(name, specs[name], Path(local_dir), out))
        except DownloadError as error:
            _remove_if_empty(out / name, out / PARTIAL, *([] if out_existed else [out]))
            # One line that names everything still missing, not only the first failure (no network: all of them).
            missing = [item for item in items if item not in fetched]
            raise DownloadError(f"download.items {', '.join(missing)} not fetched: {error}") from None
        _write_manifest(out, name, source, fetched[name])
        log.info("%s: %s", name, fetched[name]["path"])
    if not items:
        log.info("download.items is empty: nothing to fetch (the synthetic data set needs no download)")
    return {name: _write_manifest(out, name, source, None) for name in DOWNLOAD_ITEMS}
