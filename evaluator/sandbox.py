"""Parent side of the sandbox: policy gate, then one contained worker process per candidate.

The parent never imports or executes candidate code. Workers are forked from a
fork server that preloaded torch (``evaluator.zygote``), so start-up costs milliseconds, not
a torch import. The worker reports through a JSON-lines file in its private
work directory (never pickle: the parent must not unpickle what untrusted code wrote). A
worker that hangs is killed at the wall-clock timeout; one that dies becomes an Evaluation
naming the signal or exit code. The caller never sees an exception for a bad candidate.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any

from archlore.evaluator.containment import NOT_APPLIED
from archlore.evaluator.data import DatasetError, check_available, resolve_root
from archlore.evaluator.policy import first_violation
from archlore.evaluator.records import EvalConfig, Evaluation, StageTiming
from archlore.evaluator.zygote import Zygote

log = logging.getLogger("archlore.evaluator")
PROGRESS_FILE = "progress.jsonl"  # JSON lines the worker writes: stage, partial results, result
OUTPUT_FILE = "output.txt"  # the worker's stdout and stderr
_MAX_PROGRESS_BYTES = 4 * 1024 * 1024
_warned_containment = False
_zygote_lock = threading.Lock()


_ENV_KEEP = {"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
             "CONDA_PREFIX", "LD_LIBRARY_PATH", "ARCHLORE_DATA"}
_ENV_KEEP_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "KMP_", "OPENBLAS_",
                      "PYTORCH_", "TORCH_", "CUBLAS_")
_zygote: Zygote | None = None


def _worker_env() -> dict[str, str]:
    """The parent's environment minus anything not needed by torch (API keys, tokens...)."""
    env = {k: v for k, v in os.environ.items()
           if k in _ENV_KEEP or k.startswith(_ENV_KEEP_PREFIXES)}
    # same code, same seed, same network: candidates may build layers in set-of-str order
    env["PYTHONHASHSEED"] = "0"
    return env


def _get_zygote() -> Zygote:
    """The fork server (started once, with a scrubbed environment, restarted if it died)."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive():
            _zygote = Zygote(_worker_env())
            atexit.register(_zygote.close)
        zygote = _zygote
    if not zygote.wait_ready():
        raise RuntimeError("the evaluator's zygote process did not start within 120 s")
    return zygote


def warm_up() -> float:
    """Start the fork server (imports torch once); returns seconds spent. Idempotent."""
    start = time.perf_counter()
    _get_zygote()
    return time.perf_counter() - start


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_progress(path: str) -> list[dict[str, Any]]:
    events = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(_MAX_PROGRESS_BYTES)
    except OSError:
        return events
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # garbage written by the candidate: ignore it
        if isinstance(event, dict):
            events.append(event)
    return events


def _read_output(path: str, limit: int) -> str:
    """Head and tail of the captured stdout/stderr, at most ``limit`` bytes in all."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size <= limit:
                return f.read().decode("utf-8", "replace")
            head = f.read(limit // 2)
            f.seek(size - limit // 2)
            tail = f.read()
    except OSError:
        return ""
    return (head.decode("utf-8", "replace") + f"\n[... {size - limit} bytes cut ...]\n"
            + tail.decode("utf-8", "replace"))


def _signal_reason(sig: int) -> tuple[str, str]:
    name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
    if sig == signal.SIGXCPU:
        return "timeout", f"worker exceeded its CPU-time limit ({name})"
    if sig == signal.SIGKILL:
        return "failed", f"worker killed by {name} (out of memory or killed from outside)"
    return "failed", f"worker crashed with signal {name}"


def _assemble(events: list[dict[str, Any]], started: float, timed_out: bool,
              exitcode: int | None, cfg: EvalConfig) -> Evaluation:
    partial: dict[str, Any] = {"seed": cfg.seed, "dataset": cfg.dataset}
    stage, containment, startup, result = "worker", [], None, None
    for event in events:
        if "started" in event and startup is None and isinstance(event["started"], (int, float)):
            startup = max(0.0, float(event["started"]) - started)
        if isinstance(event.get("containment"), list):
            containment = [str(x) for x in event["containment"]]
        if event.get("stage") in {"data", "build", "shape", "cost", "train", "eval"}:
            stage = event["stage"]
        for key in ("params", "macs", "train_seconds", "throughput"):
            if isinstance(event.get(key), (int, float)):
                partial[key] = event[key]
        if isinstance(event.get("result"), dict):
            result = event["result"]
    evaluation: Evaluation | None = None
    if result is not None and not timed_out:
        try:
            evaluation = Evaluation.model_validate(result)
        except ValueError as exc:
            evaluation = Evaluation(status="failed", stage="worker",
                                    reason=f"worker wrote a malformed result: {exc}"[:500])
    if evaluation is None:
        if timed_out:
            status, reason = "timeout", (f"wall-clock timeout: worker killed after "
                                         f"{cfg.timeout_s:g}s in stage {stage!r}")
        elif exitcode is not None and exitcode < 0:
            status, reason = _signal_reason(-exitcode)
            reason += f" in stage {stage!r}"
        else:
            if exitcode is None:
                exitcode = "unknown (fork server lost)"
            status, reason = "failed", (f"worker exited with code {exitcode} before finishing "
                                        f"stage {stage!r} (e.g. os._exit in candidate code)")
        evaluation = Evaluation(status=status, stage=stage, reason=reason, **partial)
    evaluation.startup_seconds = startup
    evaluation.containment = containment
    return evaluation


def _warn_if_degraded(containment: list[str]) -> None:
    global _warned_containment
    degraded = [line for line in containment if NOT_APPLIED in line]
    if degraded and not _warned_containment:
        _warned_containment = True
        log.warning("archlore evaluator: OS containment is DEGRADED on this machine: %s",
                    "; ".join(degraded))


def run_candidate(code: str, cfg: EvalConfig, device: str | None = None) -> Evaluation:
    """Score one candidate: policy here, everything else in a fresh contained worker.

    ``device`` overrides ``cfg.device`` (the pool assigns one GPU per worker).
    """
    t0 = time.perf_counter()
    policy_timings: list[StageTiming] = []
    if cfg.static_policy:
        violation = first_violation(code)
        policy_timings.append(StageTiming(stage="policy", seconds=time.perf_counter() - t0,
                                          ok=violation is None))
        if violation is not None:
            return Evaluation(status="rejected", stage="policy", reason=str(violation),
                              timings=policy_timings, seed=cfg.seed, dataset=cfg.dataset)
    root = resolve_root(cfg.data_root)
    # absolute: the worker chdirs into its own directory before reading (and Landlock rules)
    cfg = cfg.model_copy(update={"data_root": str(root.absolute()) if root else None})
    try:
        check_available(cfg.dataset, cfg.data_root)
    except DatasetError as exc:
        return Evaluation(status="failed", stage="data", reason=str(exc),
                          timings=policy_timings, seed=cfg.seed, dataset=cfg.dataset)
    device = resolve_device(device or cfg.device)
    work_dir = os.path.realpath(tempfile.mkdtemp(prefix="archlore-cand-"))
    try:
        zygote = _get_zygote()
        started = time.time()
        worker = zygote.spawn(code, cfg.model_dump_json(), device, work_dir)
        timed_out = not worker.wait(cfg.timeout_s)
        if timed_out:
            worker.kill()
            worker.wait(10)
        evaluation = _assemble(_read_progress(os.path.join(work_dir, PROGRESS_FILE)), started,
                               timed_out, worker.exitcode, cfg)
        evaluation.output = _read_output(os.path.join(work_dir, OUTPUT_FILE),
                                         cfg.max_output_bytes)
        if evaluation.stage == "worker" and evaluation.output.strip():
            last = evaluation.output.strip().splitlines()[-1][:300]
            evaluation.reason += f"; last output: {last}"
    except Exception as exc:  # noqa: BLE001 - the caller must get an Evaluation, always
        log.exception("evaluator worker failed")
        evaluation = Evaluation(status="failed", stage="worker", seed=cfg.seed,
                                dataset=cfg.dataset,
                                reason=f"evaluator error: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    evaluation.timings = policy_timings + evaluation.timings
    _warn_if_degraded(evaluation.containment)
    return evaluation
