"""The real download code against a local HTTP server on 127.0.0.1 serving generated archives.

The server (http.server, one thread per request) honours ``Range`` requests and can be told to
truncate responses, ignore ranges, corrupt bytes or answer 404; it records every request's
headers. Nothing here leaves the machine.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import pickle
import re
import struct
import tarfile
import threading

import numpy as np
import pytest
from archlore.evaluator import download as dl
from archlore.evaluator.data import DatasetError, load_dataset


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        srv = self.server
        srv.requests.append((self.path, dict(self.headers)))
        name = self.path.rsplit("/", 1)[-1]
        body = srv.files.get(name)
        if body is None or srv.mode.get("status") == 404:
            self.send_error(404)
            return
        if srv.mode.get("corrupt"):
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and not srv.mode.get("ignore_range"):
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.mode.get("truncate", 0) > 0:  # promise everything, send half, hang up
            srv.mode["truncate"] -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture()
def server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "all_proxy", dl.MIRROR_ENV):
        monkeypatch.delenv(var, raising=False)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.mode, srv.requests = {}, {}, []
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/data"
    yield srv
    srv.shutdown()
    srv.server_close()


def _pickled(obj) -> bytes:
    return pickle.dumps(obj)


def _cifar10_archive() -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for name in names:
            data = _pickled({b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                             b"labels": list(rng.integers(0, 10, 20))})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue() + bytes(50_000)  # padding: enough bytes to truncate mid-way


def _idx(arr: np.ndarray) -> bytes:
    header = b"\0\0\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def _mnist_files() -> dict[str, bytes]:
    rng = np.random.default_rng(2)
    return {"train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (50, 28, 28))),
            "train-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, 50)),
            "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (20, 28, 28))),
            "t10k-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, 20))}


def _serve(server, monkeypatch, name: str, files: dict[str, bytes], sha256: bool = False):
    """Serve ``files`` and point the table's checksums for ``name`` at them."""
    server.files.update(files)
    src = dl.SOURCES[name]
    remotes = tuple(
        dataclasses.replace(r, md5=hashlib.md5(files[r.filename]).hexdigest(),
                            sha256=hashlib.sha256(files[r.filename]).hexdigest() if sha256
                            else None, size=len(files[r.filename]))
        for r in src.files)
    monkeypatch.setitem(dl.SOURCES, name, dataclasses.replace(src, files=remotes))


def test_official_table():
    assert dl.downloadable() == ["cifar10", "cifar100", "fashion-mnist", "mnist"]
    s = dl.SOURCES
    assert dl.file_url(s["cifar10"], s["cifar10"].files[0]) == \
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert s["cifar10"].files[0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert s["cifar100"].files[0].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert dl.file_url(s["mnist"], s["mnist"].files[0]) == \
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    assert {f.filename: f.md5 for f in s["fashion-mnist"].files}[
        "train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert all(len(f.md5) == 32 for src in s.values() for f in src.files)


def test_cifar10_downloads_verifies_extracts_and_loads(server, monkeypatch, tmp_path):
    archive = _cifar10_archive()
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, sha256=True)
    seen = []
    root = dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url,
                             progress=lambda f, done, total: seen.append((f, done, total)))
    assert root == tmp_path
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".extract-*"))
    assert seen[-1] == ("cifar-10-python.tar.gz", len(archive), len(archive))
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
    assert load_dataset("cifar10", tmp_path).train_x.shape == (90, 3, 32, 32)
    n = len(server.requests)
    assert dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url) == tmp_path
    assert len(server.requests) == n  # present: no network


def test_not_allowed_names_what_is_missing_and_how_to_download(server, monkeypatch, tmp_path):
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": _cifar10_archive()})
    with pytest.raises(DatasetError) as err:
        dl.ensure_dataset("cifar10", tmp_path, download=False, base_url=server.url)
    msg = str(err.value)
    assert "cifar-10-batches-py/data_batch_1" in msg and "--download" in msg
    assert f"{server.url}/cifar-10-python.tar.gz" in msg and "\n" not in msg
    assert server.requests == []


def test_truncated_transfer_is_resumed_with_a_range_request(server, monkeypatch, tmp_path):
    archive = _cifar10_archive()
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    server.mode["truncate"] = 1
    dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url)
    ranges = [h.get("Range") for _, h in server.requests]
    assert ranges[0] is None and len(ranges) == 2
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", ranges[1]).group(1))
    assert 0 < resumed_at <= len(archive) // 2  # what had arrived before the hang-up
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive


def test_partial_file_from_an_earlier_run_is_resumed(server, monkeypatch, tmp_path):
    files = _mnist_files()
    _serve(server, monkeypatch, "mnist", files)
    big = "train-images-idx3-ubyte.gz"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / (big + ".part")).write_bytes(files[big][:1000])
    dl.ensure_dataset("mnist", tmp_path, download=True, base_url=server.url)
    assert {p.rsplit("/", 1)[-1]: h.get("Range") for p, h in server.requests}[big] == \
        "bytes=1000-"
    s = load_dataset("mnist", tmp_path)
    assert (len(s.train_x) + len(s.val_x), len(s.test_x)) == (50, 20)
    assert s.train_x.shape[1:] == (1, 28, 28)


def test_gave_up_after_retries_keeps_the_part_and_says_run_again(server, monkeypatch,
                                                                tmp_path):
    archive = _cifar10_archive()
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    server.mode["truncate"] = 10
    with pytest.raises(DatasetError, match="failed after 2 attempts.*run again to resume"):
        dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url, retries=1)
    part = tmp_path / "cifar-10-python.tar.gz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(archive)
    server.mode["truncate"] = 0
    dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url)
    assert server.requests[-1][1]["Range"] == f"bytes={kept}-"
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive


def test_server_ignoring_range_restarts_from_zero(server, monkeypatch, tmp_path):
    archive = _cifar10_archive()
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(archive[:5000])
    server.mode["ignore_range"] = True
    dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive


def test_bad_checksum_is_refused_and_nothing_is_kept(server, monkeypatch, tmp_path):
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": _cifar10_archive()})
    server.mode["corrupt"] = True
    with pytest.raises(DatasetError, match=r"checksum mismatch for http://127\.0\.0\.1.*"
                                           r"expected md5 [0-9a-f]{32}, got [0-9a-f]{32}"):
        dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
    assert not (tmp_path / "cifar-10-python.tar.gz.part").exists()
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_stale_partial_with_bad_checksum_is_retried_once_from_scratch(server, monkeypatch,
                                                                     tmp_path):
    archive = _cifar10_archive()
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"garbage from another file")
    dl.ensure_dataset("cifar10", tmp_path, download=True, base_url=server.url)
    assert [h.get("Range") for _, h in server.requests] == ["bytes=25-", None]
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive


def test_existing_corrupt_file_is_replaced(server, monkeypatch, tmp_path):
    files = _mnist_files()
    _serve(server, monkeypatch, "mnist", files)
    (tmp_path / "mnist").mkdir()
    for name, body in files.items():
        (tmp_path / "mnist" / name).write_bytes(body if "labels" in name else b"x")
    # ensure_dataset only checks presence (as the evaluator does); fetch_file checks the sum
    remote = dl.SOURCES["mnist"].files[0]
    dl.fetch_file(f"{server.url}/{remote.filename}", tmp_path / "mnist" / remote.filename, remote)
    assert (tmp_path / "mnist" / remote.filename).read_bytes() == files[remote.filename]


def test_http_error_names_the_url(server, monkeypatch, tmp_path):
    server.mode["status"] = 404
    with pytest.raises(DatasetError, match=r"cannot download http://127\.0\.0\.1:\d+/data/"
                                           r"cifar-100-python\.tar\.gz: HTTP 404"):
        dl.ensure_dataset("cifar100", tmp_path, download=True, base_url=server.url)


def test_offline_error_is_one_line_naming_url_and_what_to_do(monkeypatch, tmp_path):
    import socket

    for var in ("http_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused, like being offline
    with pytest.raises(DatasetError) as err:
        dl.ensure_dataset("cifar10", tmp_path, download=True,
                          base_url=f"http://127.0.0.1:{port}/x")
    msg = str(err.value)
    assert f"http://127.0.0.1:{port}/x/cifar-10-python.tar.gz" in msg
    assert "offline" in msg and dl.MIRROR_ENV in msg and "\n" not in msg


def test_mirror_environment_variable(server, monkeypatch, tmp_path):
    _serve(server, monkeypatch, "mnist", _mnist_files())
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)
    dl.ensure_dataset("mnist", tmp_path, download=True)
    assert all(p.startswith("/data/") for p, _ in server.requests)


def test_no_data_root_and_unknown_sources(monkeypatch, tmp_path):
    monkeypatch.delenv("ARCHLORE_DATA", raising=False)
    with pytest.raises(DatasetError, match="no data directory"):
        dl.ensure_dataset("cifar10", None, download=True)
    with pytest.raises(DatasetError, match="ImageNet16/train_data_batch_1"):
        dl.ensure_dataset("imagenet16-120", tmp_path, download=True)
    assert dl.ensure_dataset("digits", None) is None


def test_tar_with_unsafe_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (tmp_path / "root").mkdir()
    archive = tmp_path / "root" / "evil.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match="cannot extract"):
        dl.extract_tar(archive, tmp_path / "root")
    assert not (tmp_path / "escape.txt").exists()


def test_archive_fetched_by_hand_is_verified_and_extracted_without_network(server, monkeypatch,
                                                                          tmp_path):
    archive = _cifar10_archive()
    _serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive[:-1] + b"\1")
    with pytest.raises(DatasetError, match=r"cifar-10-python\.tar\.gz: checksum mismatch"):
        dl.ensure_dataset("cifar10", tmp_path, download=False, base_url=server.url)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    assert dl.ensure_dataset("cifar10", tmp_path, download=False, base_url=server.url) == \
        tmp_path
    assert server.requests == []
    assert load_dataset("cifar10", tmp_path).num_classes == 10
