"""Serve a user's GGUF model on 127.0.0.1 through llama.cpp (the ``xllamacpp`` wheel, which
ships a prebuilt server: no compiler). ``archlore llm serve MODEL.gguf``; then any command uses
it with ``--llm openai --base-url http://127.0.0.1:PORT/v1`` (or ``OPENAI_BASE_URL``).

Optional: ``pip install 'archlore[local]'``. archlore never downloads or bundles a model.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


class LocalServerError(RuntimeError):
    pass


@dataclass
class ServeOptions:
    model: Path
    alias: str = ""
    port: int = 8080
    context: int = 8192  # tokens of context (one slot)
    threads: int = 0  # 0: all cores
    parallel: int = 1  # request slots; archlore sends one request at a time to a 1-slot server

    def resolved_alias(self) -> str:
        return self.alias or self.model.stem


def build_params(opts: ServeOptions):
    """xllamacpp CommonParams for ``opts`` (raises LocalServerError without the extra)."""
    try:
        import xllamacpp as xlc
    except ImportError as e:
        raise LocalServerError("archlore llm serve needs the local extra: "
                               "pip install 'archlore[local]' (the xllamacpp wheel)") from e
    if not opts.model.is_file():
        raise LocalServerError(f"no model file {opts.model}")
    threads = opts.threads or max(1, os.cpu_count() or 1)
    p = xlc.CommonParams()
    p.model.path = str(opts.model)
    p.model_alias = {opts.resolved_alias()}
    p.hostnames = ["127.0.0.1"]  # never beyond this machine
    p.port = opts.port
    p.n_ctx = opts.context * opts.parallel  # llama.cpp splits n_ctx over the slots
    p.n_parallel = opts.parallel
    p.n_batch = 2048
    p.n_ubatch = 512
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.cpuparams.poll = 0  # do not spin on a shared CPU
    p.cpuparams_batch.poll = 0
    p.endpoint_metrics = True
    p.endpoint_slots = True
    p.warmup = True
    return p


def serve(opts: ServeOptions, on_ready=print) -> None:
    """Run the server until SIGINT/SIGTERM."""
    params = build_params(opts)  # raises LocalServerError without the extra or the file
    import xllamacpp as xlc

    server = xlc.Server(params)
    on_ready(f"serving {opts.resolved_alias()} ({opts.model}) at "
             f"http://127.0.0.1:{opts.port}/v1, context {opts.context} tokens, "
             f"{opts.parallel} slot(s)\n"
             f"use it: export OPENAI_BASE_URL=http://127.0.0.1:{opts.port}/v1 "
             f"ARCHLORE_LLM_MODEL={opts.resolved_alias()}; then archlore ... --llm openai")
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.5)
    del server
