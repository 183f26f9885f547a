"""Worker entry point: runs in a child forked from the preloaded fork server.

Importing this module imports torch and the containment libraries, so the fork server pays
for them once and each candidate's worker starts in milliseconds. Nothing of the candidate is
imported here; ``child_main`` contains the process first.

The worker reads its data from the sealed memfd the parent filled (training images and
labels, validation and test images — no labels of those), and reports only through the
result pipe (framed events and predictions) and stdout/stderr (another pipe). It opens no
file for the parent to read.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
import torch._dynamo  # noqa: F401 - FlopCounterMode and optimizers import it lazily (~1 s)
from archlore.evaluator.cascade import run_cascade
from archlore.evaluator.channel import FrameWriter, read_data_fd
from archlore.evaluator.containment import _base_readable, apply_containment
from archlore.evaluator.records import EvalConfig

_base_readable()  # the Landlock read list, once in the fork server


def child_main(data_fd: int, result_fd: int, code: str, cfg_json: str, device: str,
               work_dir: str, layout_json: str, nonce: str = "0", facts: str = "{}") -> None:
    """Contain this process, run the cascade, send events and predictions, exit hard."""
    writer = FrameWriter(result_fd)
    writer.event({"started": time.time()})
    os.chdir(work_dir)
    for var in ("TMPDIR", "TMP", "TEMP", "HOME", "CUDA_CACHE_PATH", "TORCHINDUCTOR_CACHE_DIR"):
        os.environ[var] = work_dir
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # deterministic cuBLAS
    os.environ["CUDA_CACHE_DISABLE"] = "1"  # the work dir is read-only: no kernel cache
    cfg = EvalConfig.model_validate_json(cfg_json)
    arrays = read_data_fd(data_fd, layout_json)
    os.close(data_fd)
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
    writer.event({"containment": apply_containment(work_dir, cfg, cuda)})
    torch.set_num_threads(max(1, cfg.cpu_threads))
    evaluation = run_cascade(code, cfg, dev, arrays, writer, int(nonce),
                             json.loads(facts))
    writer.event({"result": evaluation.model_dump(mode="json")})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: nothing of the candidate runs after this
