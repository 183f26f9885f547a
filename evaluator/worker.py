"""Worker entry point: runs in a child forked from the preloaded fork server.

Importing this module imports torch, sklearn's dataset loader and the containment libraries,
so the fork server pays for them once and each candidate's worker starts in milliseconds.
Nothing of the candidate is imported here; ``child_main`` contains the process first.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import sklearn.datasets  # noqa: F401 - preloaded for the digits loader
import torch
import torch._dynamo  # noqa: F401 - FlopCounterMode and optimizers import it lazily (~1 s)
from archlore.evaluator.cascade import run_cascade
from archlore.evaluator.containment import apply_containment
from archlore.evaluator.records import EvalConfig
from archlore.evaluator.sandbox import OUTPUT_FILE, PROGRESS_FILE


def child_main(code: str, cfg_json: str, device: str, work_dir: str) -> None:
    """Contain this process, run the cascade, write progress/result lines, exit hard."""
    progress = open(os.path.join(work_dir, PROGRESS_FILE), "a", buffering=1)

    def emit(event: dict[str, Any]) -> None:
        progress.write(json.dumps(event) + "\n")
        progress.flush()

    emit({"started": time.time()})
    out_fd = os.open(os.path.join(work_dir, OUTPUT_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.chdir(work_dir)
    for var in ("TMPDIR", "TMP", "TEMP", "HOME", "CUDA_CACHE_PATH", "TORCHINDUCTOR_CACHE_DIR"):
        os.environ[var] = work_dir
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # deterministic cuBLAS
    cfg = EvalConfig.model_validate_json(cfg_json)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda and dev.index is None:
        dev = torch.device("cuda", 0)
    if cuda:  # the driver's initialisation needs syscalls that containment denies
        torch.cuda.set_device(dev)
        torch.cuda.init()
        torch.zeros(1, device=dev).sum().item()
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    emit({"containment": apply_containment(work_dir, cfg, cuda)})
    torch.set_num_threads(max(1, cfg.cpu_threads))
    evaluation = run_cascade(code, cfg, dev, emit)
    emit({"result": evaluation.model_dump(mode="json")})
    progress.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: nothing of the candidate runs after this
