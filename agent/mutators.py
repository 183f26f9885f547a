"""``make_mutator``: the one place the CLI turns ``--llm ...`` into a Mutator."""

from __future__ import annotations

from archlore.search.protocol import Mutator

LLM_CHOICES = ("offline", "openai", "replay", "scripted")


def make_mutator(llm: str = "offline", **cfg) -> Mutator:
    """``offline`` -> agent.offline.OfflineMutator (no LLM); otherwise an LLMMutator over the
    named backend.

    cfg keys for LLM backends: ``model`` (model id), ``base_url``, ``api_key``, ``timeout_s``,
    ``max_retries``, ``max_total_tokens``, ``max_cost_usd`` (openai); ``cassette`` (replay);
    ``record`` (cassette path to write, any backend); ``answers`` (scripted); and for the
    mutator ``mode`` ("delta" | "full" | "structured"), ``max_repair_turns``, ``temperature``,
    ``check``, ``max_tokens`` (hard cap on one answer), ``context_tokens`` (prompt + answer
    budget; default: the server's reported context), ``noop_retry``.
    Unknown offline options are passed to OfflineMutator. ``None`` values are ignored.
    """
    cfg = {k: v for k, v in cfg.items() if v is not None}
    if llm == "offline":
        from archlore.agent.offline import OfflineMutator  # lazy: written alongside, optional here

        return OfflineMutator(**cfg)
    from archlore.agent.llm import create_model
    from archlore.agent.llm_mutator import LLMMutator

    mutator_keys = ("mode", "max_repair_turns", "temperature", "check", "edit_retry",
                    "max_tokens", "context_tokens", "noop_retry")
    mutator_cfg = {k: cfg.pop(k) for k in mutator_keys if k in cfg}
    if llm == "replay" and "cassette" not in cfg and "record" in cfg:
        cfg["cassette"] = cfg.pop("record")
    return LLMMutator(create_model(llm, **cfg), **mutator_cfg)
