"""Download ``cifar10``, ``cifar100``, ``mnist`` and ``fashion-mnist`` into the data root.

Runs in the parent process only (sandboxed workers have no network). One entry point::

    root = ensure_dataset("cifar10", data_root, download=True, progress=callback)

verifies what is there, and — only when ``download`` is true — fetches what is missing from
the official URLs in :data:`SOURCES`: streamed with httpx, a progress callback per chunk,
**resume** of a partial ``.part`` file with an HTTP ``Range`` request (also after a dropped
connection, up to ``retries`` times), **checksum** verification against the published MD5
values before the file is moved into place with an atomic rename, then extraction of the
CIFAR tarballs (``tarfile`` data filter: no absolute paths, links out or devices). A lock file
keeps two processes from downloading the same file at once. Every failure is one
:class:`~archlore.evaluator.data.DatasetError` line naming the URL and what to do.

The base URL of every source can be overridden (a mirror, or a local server in the tests):
``base_url=`` or the environment variable ``ARCHLORE_DATA_MIRROR``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from archlore.evaluator.data import DatasetError, check_available, resolve_root

Progress = Callable[[str, int, int | None], None]  # (file name, bytes done, total or None)
MIRROR_ENV = "ARCHLORE_DATA_MIRROR"
CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes, when published (shown before downloading)


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and where its files go under the data root."""

    name: str
    base_url: str
    files: tuple[RemoteFile, ...]
    subdir: str = ""  # downloaded files go to <root>/<subdir>/
    extract: bool = False  # tar.gz archives extracted into <root>
    homepage: str = ""


_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# Official URLs and the checksums the publishers (and torchvision) give.
SOURCES: dict[str, Source] = {
    "cifar10": Source(
        "cifar10", "https://www.cs.toronto.edu/~kriz/",
        (RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
                    size=170_498_071),),
        extract=True, homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "cifar100": Source(
        "cifar100", "https://www.cs.toronto.edu/~kriz/",
        (RemoteFile("cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
                    size=169_001_437),),
        extract=True, homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "mnist": Source(
        "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
        tuple(RemoteFile(f, md5=m) for f, m in zip(_IDX, (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"), strict=True)),
        subdir="mnist", homepage="http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": Source(
        "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        tuple(RemoteFile(f, md5=m) for f, m in zip(_IDX, (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"), strict=True)),
        subdir="fashion-mnist", homepage="https://github.com/zalandoresearch/fashion-mnist"),
}


def downloadable() -> list[str]:
    return sorted(SOURCES)


def file_url(source: Source, remote: RemoteFile, base_url: str | None = None) -> str:
    base = base_url or os.environ.get(MIRROR_ENV) or source.base_url
    return base.rstrip("/") + "/" + remote.filename


def ensure_dataset(name: str, data_root: str | os.PathLike | None, *, download: bool = False,
                   progress: Progress | None = None, base_url: str | None = None,
                   retries: int = 3, timeout_s: float = 60.0) -> Path | None:
    """Make ``name`` loadable from ``data_root``; return the (resolved) data root to use.

    Already available (checked like the evaluator does): returns at once, no network.
    Missing, but the archive/idx files were put in place by hand: verified and extracted,
    no network. Otherwise, ``download`` false: DatasetError saying what is missing and how
    to get it.
    Missing and ``download`` true: fetch, verify, extract (see the module doc).
    """
    root = resolve_root(data_root)
    try:
        check_available(name, root)
        return root
    except DatasetError as missing:
        source = SOURCES.get(name.lower())
        if source is None:
            raise
        have_all = root is not None and all(
            (_target(root, source) / f.filename).is_file() for f in source.files)
        if not download and not have_all:  # fetched by hand: verified and extracted below
            urls = ", ".join(file_url(source, f, base_url) for f in source.files)
            if "--download" in str(missing):
                raise DatasetError(f"{missing} (from {urls})") from None
            raise DatasetError(f"{missing}. To fetch it, pass --download (downloads {urls} "
                               f"into the data root), or download it yourself") from None
    if root is None:
        raise DatasetError(f"cannot download {name!r}: no data directory; pass --data-root DIR "
                           f"or set ARCHLORE_DATA")
    root = Path(os.path.abspath(root))
    for remote in source.files:
        dest = _target(root, source) / remote.filename
        if not download:  # a file the user put there: use it only if its checksum is right
            problem = verify(dest, remote)
            if problem is not None:
                raise DatasetError(f"{dest}: checksum mismatch ({problem}); delete it, or pass "
                                   f"--download to fetch {file_url(source, remote, base_url)}")
        fetch_file(file_url(source, remote, base_url), dest, remote, progress=progress,
                   retries=retries, timeout_s=timeout_s)
        if source.extract:
            extract_tar(dest, root)
    try:
        check_available(name, root)
    except DatasetError as exc:
        raise DatasetError(f"downloaded {name!r} into {root}, but it is still not usable: "
                           f"{exc}") from None
    return root


def _target(root: Path, source: Source) -> Path:
    return root / source.subdir if source.subdir else root


def verify(path: Path, remote: RemoteFile) -> str | None:
    """None when ``path`` matches the published checksums, else a description of the
    mismatch."""
    digests = {"md5": remote.md5, "sha256": remote.sha256}
    hashers = {k: hashlib.new(k) for k, v in digests.items() if v}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashers.values():
                h.update(block)
    for algo, h in hashers.items():
        if h.hexdigest() != digests[algo]:
            return f"expected {algo} {digests[algo]}, got {h.hexdigest()}"
    return None


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fetch_file(url: str, dest: Path, remote: RemoteFile, *, progress: Progress | None = None,
               retries: int = 3, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is there; resume ``dest.part``."""
    with _locked(dest):
        if dest.is_file():
            if verify(dest, remote) is None:
                return dest
            dest.unlink()  # stale or corrupt: fetch again
        part = dest.with_name(dest.name + ".part")
        fresh_retry_done = False
        attempt = 0
        while True:
            attempt += 1
            resumed = part.is_file() and part.stat().st_size > 0
            try:
                _stream(url, part, remote, progress, timeout_s)
            except _Transient as exc:
                if attempt <= retries:
                    continue  # keep the .part: the next request resumes it
                have = part.stat().st_size if part.is_file() else 0
                raise DatasetError(
                    f"download of {url} failed after {attempt} attempts ({exc}); {have:,} bytes "
                    f"kept in {part}: run again to resume") from None
            problem = verify(part, remote)
            if problem is None:
                os.replace(part, dest)  # atomic: dest is complete and verified, or absent
                return dest
            part.unlink(missing_ok=True)
            if resumed and not fresh_retry_done:  # the old partial may be stale: start over
                fresh_retry_done = True
                continue
            raise DatasetError(f"checksum mismatch for {url}: {problem}; the download was "
                               f"removed (a broken mirror or a proxy rewriting files?); retry, "
                               f"or fetch it yourself to {dest}")


class _Transient(Exception):
    """A dropped connection or timeout mid-transfer: retry, resuming the partial file."""


def _stream(url: str, part: Path, remote: RemoteFile, progress: Progress | None,
            timeout_s: float) -> None:
    import httpx

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "archlore-dataset-download", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0))
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout,
                          follow_redirects=True) as resp:
            if resp.status_code == 416 and offset:  # nothing left to send: verify the part
                return
            if resp.status_code == 206 and offset:
                content_range = resp.headers.get("content-range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise _Transient(f"unexpected Content-Range {content_range!r}")
                mode = "ab"
            elif resp.status_code == 200:
                offset, mode = 0, "wb"  # server ignored the Range: start over
            else:
                raise DatasetError(
                    f"cannot download {url}: HTTP {resp.status_code} {resp.reason_phrase}; "
                    f"check the URL or mirror ({MIRROR_ENV}), or fetch the file yourself")
            length = resp.headers.get("content-length")
            total = offset + int(length) if length and length.isdigit() else remote.size
            done = offset
            with open(part, mode) as f:
                if progress:
                    progress(remote.filename, done, total)
                for chunk in resp.iter_raw(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(remote.filename, done, total)
            if total is not None and done < total:
                raise _Transient(f"connection closed after {done:,} of {total:,} bytes")
    except httpx.ConnectError as exc:
        raise DatasetError(
            f"cannot download {url}: {exc or 'connection failed'} (offline, or a proxy/firewall "
            f"blocks it?); connect and retry, set a mirror in {MIRROR_ENV}, or download the "
            f"file yourself to {part.with_suffix('')}") from None
    except httpx.TransportError as exc:  # read timeout, peer closed mid-body, ...
        raise _Transient(f"{type(exc).__name__}: {exc}") from None


def extract_tar(archive: Path, root: Path) -> None:
    """Extract a verified tar.gz into ``root``: into a temporary folder first, then each
    top-level entry is renamed into place (a crash leaves no half-extracted dataset folder)."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetError(f"cannot extract {archive}: {type(exc).__name__}: {exc}; delete "
                               f"it and run again") from exc
        for entry in tmp.iterdir():
            final = root / entry.name
            if final.is_dir():
                shutil.rmtree(final)
            elif final.exists():
                final.unlink()
            os.replace(entry, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def rich_progress() -> Iterator[Progress]:
    """A progress callback drawing a rich progress bar per file (for the CLI)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    bar = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), TimeRemainingColumn())
    tasks: dict[str, int] = {}

    def callback(filename: str, done: int, total: int | None) -> None:
        if filename not in tasks:
            tasks[filename] = bar.add_task(filename, total=total)
        bar.update(tasks[filename], completed=done, total=total)

    with bar:
        yield callback
