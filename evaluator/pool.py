"""A pool of sandboxed evaluation workers: several candidates scored at once.

Each pool worker is a thread that runs one contained worker process at a time
(evaluator.sandbox.run_candidate). On GPU machines each worker gets one GPU, assigned
round-robin over the visible devices; with ``cfg.device == "auto"`` the worker's GPU is used.
"""

from __future__ import annotations

import queue
from concurrent.futures import Future, ThreadPoolExecutor

from archlore.evaluator.records import EvalConfig, Evaluation
from archlore.evaluator.sandbox import run_candidate, warm_up


def visible_devices() -> list[str]:
    """``["cuda:0", "cuda:1", ...]`` when GPUs are visible, else ``["cpu"]``."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


class EvaluatorPool:
    """``submit(code, cfg) -> Future[Evaluation]``; thread-safe; never raises for bad code.

    >>> with EvaluatorPool(workers=2) as pool:
    ...     future = pool.submit(source, EvalConfig(dataset="digits", epochs=3))
    ...     evaluation = future.result()
    """

    def __init__(self, workers: int = 2, devices: list[str] | None = None, warm: bool = True):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.devices = list(devices) if devices else visible_devices()
        self._slots: queue.Queue[str] = queue.Queue()
        for i in range(workers):
            self._slots.put(self.devices[i % len(self.devices)])
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="archlore-eval")
        self.startup_seconds = warm_up() if warm else 0.0  # fork server with torch preloaded

    def submit(self, code: str, cfg: EvalConfig | None = None) -> Future[Evaluation]:
        return self._executor.submit(self._run, code, cfg or EvalConfig())

    def _run(self, code: str, cfg: EvalConfig) -> Evaluation:
        device = self._slots.get()
        try:
            chosen = device if cfg.device == "auto" else cfg.device
            return run_candidate(code, cfg, chosen)
        except Exception as exc:  # noqa: BLE001 - run_candidate already guards; belt and braces
            return Evaluation(status="failed", stage="worker", seed=cfg.seed, dataset=cfg.dataset,
                              reason=f"evaluator error: {type(exc).__name__}: {exc}")
        finally:
            self._slots.put(device)

    def close(self, cancel_pending: bool = False) -> None:
        """Wait for running evaluations (each bounded by its timeout) and stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=cancel_pending)

    def __enter__(self) -> EvaluatorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel_pending=exc[0] is not None)
