"""The per-node Ray actor of the ``ray`` backend: trusted archlore code that owns one node's
``EvaluatorPool`` (its own fork server and sandboxed workers, one GPU per worker where the
actor was given GPUs).

What crosses Ray is plain data: candidate source text and ``EvalConfig`` JSON in, an
``Evaluation`` as a JSON-compatible dict out (the driver validates it with
``Evaluation.model_validate``). The sandboxed workers never talk to Ray: they are forked by the
pool's fork server, have no sockets (seccomp) and report to the pool through a JSON-lines file;
this actor only relays what the pool already validated.

Datasets: a candidate's ``data_root`` is used as is when this node has the dataset's files
there (a shared or replicated path); otherwise the driver ships the files once per node
through the object store (``install_data``) and this actor rewrites ``data_root`` to its
node-local copy. Never once per candidate.

This module imports ``ray`` only inside ``actor_class()`` so that it is importable without it.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

DATA_CACHE_ENV = "ARCHLORE_RAY_DATA_CACHE"  # node-local directory for shipped datasets


def data_cache_dir() -> Path:
    return Path(os.environ.get(DATA_CACHE_ENV) or Path(tempfile.gettempdir()) / "archlore-ray-data")


def pack_dataset(dataset: str, data_root: str | None) -> tuple[str, bytes] | None:
    """(sha256, tar bytes) of the files ``dataset`` reads under ``data_root`` on this machine,
    or None when the dataset needs no files (digits, synthetic) or they are not here."""
    import hashlib

    from archlore.evaluator.data import get_spec, resolve_root

    files = tuple(get_spec(dataset).expected_files)
    root = resolve_root(data_root)
    if not files or root is None or not all((root / f).is_file() for f in files):
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in files:
            info = tar.gettarinfo(str(root / f), arcname=f)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(root / f, "rb") as fh:
                tar.addfile(info, fh)
    data = buf.getvalue()
    return hashlib.sha256(data).hexdigest(), data


def has_dataset(dataset: str, data_root: str | None) -> bool:
    """Whether this node can read ``dataset`` from ``data_root`` without shipping."""
    from archlore.evaluator.data import DatasetError, check_available

    try:
        check_available(dataset, data_root)
    except DatasetError:
        return False
    return True


def unpack_dataset(sha: str, data: bytes) -> str:
    """Extract shipped dataset files into the node-local cache (once per sha); returns the root."""
    target = data_cache_dir() / sha[:16]
    marker = target / ".complete"
    if marker.is_file():
        return str(target)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=_ensure(data_cache_dir())))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():  # regular files and folders inside the tree only
            name = Path(member.name)
            if not (member.isfile() or member.isdir()) or name.is_absolute() or ".." in name.parts:
                raise ValueError(f"shipped dataset has an unsafe member {member.name!r}")
        try:
            tar.extractall(tmp, filter="data")
        except TypeError:  # Python < 3.11.4 has no filters; the members were checked above
            tar.extractall(tmp)  # noqa: S202
    (tmp / ".complete").write_text(sha)
    try:
        os.rename(tmp, target)
    except OSError:  # another actor on this node got there first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class NodeEvaluator:
    """One per node. ``evaluate`` returns ``Evaluation.model_dump(mode="json")``.

    An async actor: each ``evaluate`` awaits the pool's future, so a watchdog's ``ray.cancel``
    frees the Ray side at once (the sandboxed worker itself is bounded by the evaluator's own
    timeout, and dies with this process if the driver kills the actor).
    """

    def __init__(self, workers: int, devices: list[str] | None, dataset: str,
                 data_root: str | None) -> None:
        import ray
        from archlore.evaluator.pool import EvaluatorPool

        t0 = time.perf_counter()
        self.workers = workers
        self.pool = EvaluatorPool(workers, devices)  # devices None: the GPUs Ray gave us, or cpu
        self.devices = list(self.pool.devices)
        ctx = ray.get_runtime_context()
        self.node_id = ctx.get_node_id()
        self.ip = ray.util.get_node_ip_address()
        self.host = socket.gethostname()
        self.needs_data = not has_dataset(dataset, data_root)
        self.data_root_override: str | None = None
        self.startup_seconds = time.perf_counter() - t0
        self.evaluated = 0

    async def info(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "ip": self.ip, "host": self.host, "pid": os.getpid(),
                "workers": self.workers, "devices": self.devices,
                "needs_data": self.needs_data and self.data_root_override is None,
                "startup_seconds": self.startup_seconds, "evaluated": self.evaluated}

    async def install_data(self, sha: str, data: bytes) -> str:
        # ``data`` arrives through the object store (one ObjectRef put once by the driver)
        root = await asyncio.get_running_loop().run_in_executor(None, unpack_dataset, sha, data)
        self.data_root_override = root
        return root

    async def evaluate(self, code: str, cfg_json: str) -> dict[str, Any]:
        from archlore.evaluator.records import EvalConfig

        cfg = EvalConfig.model_validate_json(cfg_json)
        if self.data_root_override is not None:
            cfg = cfg.model_copy(update={"data_root": self.data_root_override})
        evaluation = await asyncio.wrap_future(self.pool.submit(code, cfg))
        self.evaluated += 1
        return evaluation.model_dump(mode="json")

    async def shutdown(self) -> None:
        # cancel_pending: the driver only closes an actor once it needs none of its results
        await asyncio.get_running_loop().run_in_executor(None, self.pool.close, True)


def actor_class() -> Any:
    """``NodeEvaluator`` as a Ray actor class (imports ray)."""
    import ray

    return ray.remote(NodeEvaluator)
