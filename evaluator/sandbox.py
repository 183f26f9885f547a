"""Parent side of the sandbox: policy gate, then one contained worker process per candidate.

The parent never imports or executes candidate code, and trusts nothing a worker says about
its own quality. Workers are forked from a fork server that preloaded torch
(``evaluator.zygote``), so start-up costs milliseconds. The parent loads the dataset itself
and hands a worker training images and labels plus validation and test *images* (a sealed
memfd); the validation and test labels never leave this process, and the accuracies are
computed here from the predictions the worker sends back (``evaluator.channel``). The parent
reads only from pipes it created — never a file from a work directory — non-blocking, within
a byte budget and the worker's wall-clock deadline, and range-checks every number. A worker
that hangs is killed at the deadline; one that dies becomes an Evaluation naming the signal or
exit code. The caller never sees an exception for a bad candidate.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import secrets
import signal
import stat
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from archlore.evaluator.channel import KIND_TEST, KIND_VAL, Inbox, drain, make_data_fd
from archlore.evaluator.containment import NOT_APPLIED
from archlore.evaluator.data import (
    DatasetError,
    check_available,
    get_spec,
    load_dataset,
    resolve_root,
)
from archlore.evaluator.policy import first_violation
from archlore.evaluator.records import EvalConfig, Evaluation, StageTiming
from archlore.evaluator.zygote import WorkerHandle, Zygote

log = logging.getLogger("archlore.evaluator")
MAX_OUTPUT_TOTAL = 64 * 1024 * 1024  # stdout/stderr bytes before a worker counts as flooding
KILL_GRACE_S = 5.0
WORK_PREFIX = "archlore-eval-"
_STAGES = ("data", "build", "shape", "cost", "train", "eval")
_warned_containment = False
_zygote_lock = threading.Lock()
_data_lock = threading.Lock()


_ENV_KEEP = {"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
             "CONDA_PREFIX", "LD_LIBRARY_PATH"}
_ENV_KEEP_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "KMP_", "OPENBLAS_",
                      "PYTORCH_", "TORCH_", "CUBLAS_")
_zygote: Zygote | None = None
_work_dir: str | None = None


def _worker_env() -> dict[str, str]:
    """The parent's environment minus anything not needed by torch (API keys, tokens...)."""
    env = {k: v for k, v in os.environ.items()
           if k in _ENV_KEEP or k.startswith(_ENV_KEEP_PREFIXES)}
    # same code, same seed, same network: candidates may build layers in set-of-str order
    env["PYTHONHASHSEED"] = "0"
    return env


# --- work directories ------------------------------------------------------------------------

def remove_tree(root: str) -> None:
    """Delete ``root`` without recursion, without following symlinks and at any depth.

    Sub-directories are flattened into ``root`` one level at a time, so a 3,000-deep tree
    exhausts neither the Python stack, nor file descriptors, nor PATH_MAX.
    """
    while True:
        try:
            entries = list(os.scandir(root))
        except FileNotFoundError:
            return
        subdirs = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            else:
                os.unlink(entry.path)
        if not subdirs:
            break
        for sub in subdirs:
            os.chmod(sub, stat.S_IRWXU)  # a worker might have created it mode 000
            for inner in os.scandir(sub):
                os.rename(inner.path, os.path.join(root, uuid.uuid4().hex))
            os.rmdir(sub)
    os.rmdir(root)


def clean_stale_work_dirs(tmp: str | None = None) -> list[str]:
    """Remove work directories left by evaluator processes that no longer run (a killed
    search, a crash): ``archlore-eval-<pid>-*`` whose pid is gone, and the older
    per-candidate ``archlore-cand-*`` directories after an hour. Returns what was removed."""
    tmp = tmp or tempfile.gettempdir()
    removed = []
    for entry in os.scandir(tmp):
        if not entry.is_dir(follow_symlinks=False):
            continue
        match = re.fullmatch(rf"{WORK_PREFIX}(\d+)-\w+", entry.name)
        stale = False
        if match:
            pid = int(match.group(1))
            stale = pid != os.getpid() and not os.path.exists(f"/proc/{pid}")
        elif entry.name.startswith("archlore-cand-"):
            stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > 3600
        if stale:
            try:
                remove_tree(entry.path)
                removed.append(entry.path)
            except OSError as exc:
                log.warning("could not remove stale work dir %s: %s", entry.path, exc)
    return removed


def _get_work_dir() -> str:
    """One empty directory per parent process: the workers' cwd and HOME, read-only to them."""
    global _work_dir
    with _zygote_lock:
        if _work_dir is None or not os.path.isdir(_work_dir):
            _work_dir = os.path.realpath(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
            atexit.register(lambda path=_work_dir: remove_tree(path))
        return _work_dir


# --- the fork server -------------------------------------------------------------------------

def _get_zygote(check: bool = True) -> Zygote:
    """The fork server: started once (scrubbed environment), restarted when it died, is
    stopped (SIGSTOP) or does not answer a ping."""
    global _zygote
    with _zygote_lock:
        if _zygote is not None and not (_zygote.alive() and (not check or _zygote.healthy())):
            log.warning("archlore evaluator: the fork server is dead, stopped or wedged; "
                        "restarting it")
            _zygote.kill()
            _zygote = None
        if _zygote is None:
            clean_stale_work_dirs()
            _zygote = Zygote(_worker_env())
            atexit.register(_zygote.close)
        zygote = _zygote
    if not zygote.wait_ready():
        raise RuntimeError("the evaluator's zygote process did not start within 120 s")
    return zygote


def warm_up() -> float:
    """Start the fork server (imports torch once); returns seconds spent. Idempotent."""
    start = time.perf_counter()
    _get_zygote(check=False)
    return time.perf_counter() - start


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- data: loaded here, labels of val/test kept here -----------------------------------------

@dataclass(frozen=True)
class DataBlob:
    fd: int  # sealed memfd: train_x, train_y, val_x, test_x
    layout: str
    val_y: np.ndarray
    test_y: np.ndarray
    num_classes: int
    facts: str = "{}"  # the spec facts a worker needs (it cannot read a user dataset's files)


_data: dict[tuple[str, str | None], DataBlob] = {}


def _get_data(name: str, root: str | None) -> DataBlob:
    with _data_lock:
        key = (name, root)
        if key not in _data:
            s = load_dataset(name, root)
            spec = get_spec(name, root)
            facts = json.dumps({"in_channels": spec.in_channels, "num_classes": s.num_classes,
                                "image_size": spec.image_size, "pad": spec.pad,
                                "flip": spec.flip})
            fd, layout = make_data_fd({"train_x": s.train_x, "train_y": s.train_y,
                                       "val_x": s.val_x, "test_x": s.test_x})
            _data[key] = DataBlob(fd, layout, s.val_y.copy(), s.test_y.copy(), s.num_classes,
                                  facts)
        return _data[key]


# --- reading what a worker reported ----------------------------------------------------------

def _signal_reason(sig: int) -> tuple[str, str]:
    name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
    if sig == signal.SIGXCPU:
        return "timeout", f"worker exceeded its CPU-time limit ({name})"
    if sig == signal.SIGKILL:
        return "failed", f"worker killed by {name} (out of memory or killed from outside)"
    return "failed", f"worker crashed with signal {name}"


def _finite(value: Any, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def _checked_result(raw: dict[str, Any], cfg: EvalConfig) -> tuple[dict[str, Any], str]:
    """The fields a worker may report, range-checked; (fields, problem or '')."""
    out: dict[str, Any] = {}
    limits = {"macs": (0, 1e13), "params": (0, 1e11), "train_seconds": (0, 10 * cfg.timeout_s),
              "throughput": (0, 1e10)}
    for key, (low, high) in limits.items():
        value = raw.get(key)
        if value is None:
            continue
        if not _finite(value, low, high) or (key in ("macs", "params") and value != int(value)):
            return out, f"worker reported an out-of-range {key}: {str(value)[:40]}"
        out[key] = int(value) if key in ("macs", "params") else float(value)
    curve = raw.get("loss_curve") or []
    if not isinstance(curve, list) or len(curve) > 1000 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in curve):
        return out, "worker reported a malformed loss curve"
    out["loss_curve"] = [float(v) for v in curve]
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict) or len(metrics) > 32:
        return out, "worker reported malformed metrics"
    for key, value in metrics.items():
        if not (isinstance(key, str) and re.fullmatch(r"[a-z_]{1,40}", key)
                and _finite(value, 0, 1e15)):
            return out, f"worker reported an out-of-range metric {str(key)[:40]!r}"
    out["metrics"] = {k: float(v) for k, v in metrics.items()}
    timings = raw.get("timings") or []
    if not isinstance(timings, list) or len(timings) > 16:
        return out, "worker reported malformed timings"
    try:
        out["timings"] = [StageTiming.model_validate(t) for t in timings]
    except ValueError:
        return out, "worker reported malformed timings"
    if any(not _finite(t.seconds, 0, 10 * cfg.timeout_s) for t in out["timings"]):
        return out, "worker reported an out-of-range stage time"
    return out, ""


def _assemble(inbox: Inbox, handle: WorkerHandle | None, timed_out: bool, cfg: EvalConfig,
              blob: DataBlob, started: float) -> Evaluation:
    base: dict[str, Any] = {"seed": cfg.seed, "dataset": cfg.dataset}
    stage, containment, result, results = "worker", [], None, 0
    partial: dict[str, Any] = {}
    for event in inbox.events:
        if isinstance(event.get("containment"), list) and not containment:
            containment = [str(x)[:500] for x in event["containment"][:16]]
        if event.get("stage") in _STAGES:
            stage = event["stage"]
        for key in ("params", "macs"):
            if _finite(event.get(key), 0, 1e13):
                partial[key] = int(event[key])
        if "result" in event:
            results += 1
            result = event["result"] if isinstance(event["result"], dict) else None
    exitcode = handle.exitcode if handle is not None else None
    evaluation: Evaluation | None = None
    if inbox.violation or results > 1:
        reason = inbox.violation or f"worker sent {results} results (forged frames)"
        evaluation = Evaluation(status="failed", stage=stage, reason=reason, **base, **partial)
    elif result is not None and not timed_out:
        fields, problem = _checked_result(result, cfg)
        status, res_stage = result.get("status"), result.get("stage")
        if problem:
            evaluation = Evaluation(status="failed", stage=stage, reason=problem, **base)
        elif status not in ("ok", "rejected", "failed") or res_stage not in _STAGES:
            evaluation = Evaluation(status="failed", stage=stage, **base,
                                    reason="worker wrote a malformed result")
        else:
            reason = str(result.get("reason", ""))[:2000]
            evaluation = Evaluation(status=status, stage=res_stage, reason=reason, **base,
                                    **fields)
            if status == "ok":
                _score(evaluation, inbox, blob)
    if evaluation is None:
        if timed_out:
            status, reason = "timeout", (f"wall-clock timeout: worker killed after "
                                         f"{cfg.timeout_s:g}s in stage {stage!r}")
        elif exitcode is not None and exitcode < 0:
            status, reason = _signal_reason(-exitcode)
            reason += f" in stage {stage!r}"
        else:
            code = "unknown (fork server lost)" if exitcode is None else exitcode
            status, reason = "failed", (f"worker exited with code {code} before finishing "
                                        f"stage {stage!r} (e.g. os._exit in candidate code)")
        evaluation = Evaluation(status=status, stage=stage, reason=reason, **base, **partial)
    if inbox.first_event_at is not None:
        evaluation.startup_seconds = max(0.0, inbox.first_event_at - started)
    evaluation.containment = containment
    if handle is not None and "cpu_s" in handle.usage:  # kernel accounting: not forgeable
        evaluation.metrics["worker_cpu_s"] = handle.usage["cpu_s"]
        evaluation.metrics["worker_maxrss_mb"] = handle.usage.get("maxrss_kb", 0.0) / 1024
    return evaluation


def _score(evaluation: Evaluation, inbox: Inbox, blob: DataBlob) -> None:
    """Accuracies computed here, from the predictions, against labels only we hold."""
    for kind, labels, field in ((KIND_VAL, blob.val_y, "val_acc"),
                                (KIND_TEST, blob.test_y, "test_acc")):
        pred = inbox.predictions.get(kind)
        if pred is None:
            evaluation.status, evaluation.stage = "failed", "eval"
            evaluation.reason = f"worker sent no predictions for the {field[:-4]} images"
            evaluation.val_acc = evaluation.test_acc = None
            return
        if pred.min(initial=0) < 0 or pred.max(initial=0) >= blob.num_classes:
            evaluation.status, evaluation.stage = "failed", "eval"
            evaluation.reason = f"predicted classes outside 0..{blob.num_classes - 1}"
            evaluation.val_acc = evaluation.test_acc = None
            return
        setattr(evaluation, field, float(np.mean(pred == labels)) if len(labels) else 0.0)


def _warn_if_degraded(containment: list[str]) -> None:
    global _warned_containment
    degraded = [line for line in containment if NOT_APPLIED in line]
    if degraded and not _warned_containment:
        _warned_containment = True
        log.warning("archlore evaluator: OS containment is DEGRADED on this machine: %s",
                    "; ".join(degraded))


def _spawn(args: list[str], fds: list[int]) -> WorkerHandle:
    try:
        return _get_zygote(check=False).spawn(args, fds)  # run_candidate just checked it
    except (RuntimeError, OSError):  # a wedged or just-died fork server: replace it once
        with _zygote_lock:
            if _zygote is not None:
                _zygote.kill()
        return _get_zygote().spawn(args, fds)


def run_candidate(code: str, cfg: EvalConfig, device: str | None = None) -> Evaluation:
    """Score one candidate: policy here, everything else in a fresh contained worker.

    ``device`` overrides ``cfg.device`` (the pool assigns one GPU per worker).
    """
    t0 = time.perf_counter()
    policy_timings: list[StageTiming] = []
    base = {"seed": cfg.seed, "dataset": cfg.dataset}
    if cfg.static_policy:
        violation = first_violation(code)
        policy_timings.append(StageTiming(stage="policy", seconds=time.perf_counter() - t0,
                                          ok=violation is None))
        if violation is not None:
            return Evaluation(status="rejected", stage="policy", reason=str(violation),
                              timings=policy_timings, **base)
    root = resolve_root(cfg.data_root)
    cfg = cfg.model_copy(update={"data_root": str(root.absolute()) if root else None})
    try:
        check_available(cfg.dataset, cfg.data_root)
        blob = _get_data(cfg.dataset, cfg.data_root)
    except DatasetError as exc:
        return Evaluation(status="failed", stage="data", reason=str(exc),
                          timings=policy_timings, **base)
    device = resolve_device(device or cfg.device)
    handle: WorkerHandle | None = None
    pipes: list[int] = []
    try:
        r_res, w_res = os.pipe()
        pipes += [r_res, w_res]
        r_out, w_out = os.pipe()
        pipes += [r_out, w_out]
        _get_zygote()  # started, or restarted when dead/stopped/wedged, before the clock runs
        started = time.time()
        args = [code, cfg.model_dump_json(), device, _get_work_dir(), blob.layout,
                str(secrets.randbits(31)), blob.facts]
        try:
            handle = _spawn(args, [blob.fd, w_res, w_out])
        finally:  # the worker holds its own copies now; EOF on ours means it has exited
            for fd in (w_res, w_out):
                os.close(fd)
                pipes.remove(fd)
        worker = handle
        inbox, timed_out = drain(
            r_res, r_out, deadline=started + cfg.timeout_s,
            expected={KIND_VAL: len(blob.val_y), KIND_TEST: len(blob.test_y)},
            output_limit=cfg.max_output_bytes, max_output=MAX_OUTPUT_TOTAL,
            exited=worker.done, kill=worker.kill)
        if timed_out or inbox.violation:
            worker.kill()
        worker.wait(KILL_GRACE_S)
        evaluation = _assemble(inbox, worker, timed_out, cfg, blob, started)
        evaluation.output = inbox.output(cfg.max_output_bytes)
        if evaluation.stage == "worker" and evaluation.output.strip():
            last = evaluation.output.strip().splitlines()[-1][:300]
            evaluation.reason += f"; last output: {last}"
    except Exception as exc:  # noqa: BLE001 - the caller must get an Evaluation, always
        log.exception("evaluator worker failed")
        evaluation = Evaluation(status="failed", stage="worker", **base,
                                reason=f"evaluator error: {type(exc).__name__}: {exc}")
    finally:  # also on KeyboardInterrupt: no worker and no descriptor outlives this call
        for fd in pipes:
            os.close(fd)
        if handle is not None:
            if not handle.done():
                handle.kill()
                handle.wait(KILL_GRACE_S)
            handle.close()
    evaluation.timings = policy_timings + evaluation.timings
    _warn_if_degraded(evaluation.containment)
    return evaluation
