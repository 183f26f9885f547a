"""LLM mutation harness: valid rate of delta (SEARCH/REPLACE) vs full-code answers.

    python benchmarks/bench_llm.py --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder
    python benchmarks/bench_llm.py              # no endpoint: a local SCRIPTED server

A fixed set of (parent, idea) pairs -- the open space's seed networks x one idea from each of
several categories of the built-in corpus -- is sent to the model once in ``delta`` mode and
once in ``full`` mode. A child is *valid* when it passes the evaluator's static policy and an
in-process build + shape check on the digits shape (N, 1, 8, 8) -> (N, 10). Reported per mode:
valid rate, LLM calls, tokens, tokens per valid candidate, seconds per pair.

By default no retries (the raw first answer is scored); ``--retries`` enables the mutator's
in-call edit retry and one repair turn. Generated code is executed in this process for the shape
check (after the static policy): only point this at endpoints you trust.

With no ``--base-url`` the answers come from a scripted local server that applies a fixed
edit and, to exercise the failure paths, deliberately breaks the answers for the last idea
(1 pair in 4: a mistyped SEARCH line in delta mode, a truncated answer in full mode). Those numbers measure the
harness, NOT a model; the output says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from archlore.agent.llm.local_server import ScriptedServer  # noqa: E402
from archlore.agent.llm.openai_backend import OpenAIModel  # noqa: E402
from archlore.agent.llm_mutator import LLMMutator  # noqa: E402
from archlore.corpora import load_builtin_ideas  # noqa: E402
from archlore.evaluator import policy  # noqa: E402
from archlore.evaluator.cascade import build_model, check_shape  # noqa: E402
from archlore.search.protocol import Constraints, MutationRequest, ParentInfo  # noqa: E402
from archlore.search.spaces.open import OpenSpace  # noqa: E402

IDEA_IDS = ("squeeze-excitation", "gelu", "identity-shortcut", "head-dropout")
BROKEN_CATEGORY = "regularization"  # category of IDEA_IDS[-1]: its scripted answers are broken
DIGITS = Constraints(dataset="digits", in_channels=1, num_classes=10, image_size=8)


def pairs() -> list[tuple[str, str, object]]:
    """(parent name, parent code, idea) for every seed x idea, in a fixed order."""
    space = OpenSpace()
    ideas = {i.id: i for i in load_builtin_ideas()}
    missing = [i for i in IDEA_IDS if i not in ideas]
    if missing:
        raise SystemExit(f"ideas missing from the corpus: {missing}")
    return [(spec.name, space.render(spec, DIGITS), ideas[idea_id])
            for spec in space.seeds(DIGITS) for idea_id in IDEA_IDS]


def is_valid(code: str | None) -> tuple[bool, str]:
    if not code:
        return False, "no code"
    violations = policy.check_source(code)
    if violations:
        return False, f"policy: {violations[0]}"
    try:
        model = build_model(code, num_classes=10, in_channels=1)
        check_shape(model, (1, 8, 8), 10, torch.device("cpu"))
    except Exception as e:  # any build / forward failure makes the child invalid
        return False, f"shape: {type(e).__name__}: {str(e)[:120]}"
    return True, ""


def scripted_responder(body: dict) -> str:
    """A fixed, plausible edit of the parent (its activation -> SiLU); the answers for the
    last idea of IDEA_IDS (1 pair in 4) are deliberately broken."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    delta = "<<<<<<< SEARCH" in system
    m = re.search(r"```python\n(.*?)```", user, re.S)
    parent = m.group(1) if m else ""
    broken = f"({BROKEN_CATEGORY})" in user
    act = re.search(r"def make_act\(\) -> nn.Module:\n(    return .*)\n", parent)
    target = act.group(1) if act else "    return nn.ReLU(inplace=True)"
    if delta:
        search = target.replace("nn.", "nn .") if broken else target
        return (f"Switching the activation to SiLU.\n<<<<<<< SEARCH\n{search}\n=======\n"
                f"    return nn.SiLU(inplace=True)\n>>>>>>> REPLACE\n")
    child = parent.replace(target, "    return nn.SiLU(inplace=True)")
    if broken:
        child = child[: len(child) // 2]
    return "Here is the network:\n```python\n" + child + ("" if broken else "```\n")


def run_mode(base_url: str, model_id: str, api_key: str, mode: str, retries: bool,
             work: list, timeout: float) -> dict:
    model = OpenAIModel(base_url=base_url, model=model_id, api_key=api_key, timeout_s=timeout,
                        max_retries=2, backoff_initial_s=0.5)
    mutator = LLMMutator(model, mode=mode, edit_retry=retries,
                         max_repair_turns=1 if retries else 0, temperature=0.0)
    valid, answered_as, reasons = 0, {"delta": 0, "full": 0}, []
    start = time.perf_counter()
    for k, (pname, code, idea) in enumerate(work):
        req = MutationRequest(operator="idea", parents=[ParentInfo(code=code)], idea=idea,
                              constraints=DIGITS, seed=k)
        result = mutator.mutate(req)
        ok, why = is_valid(result.code)
        valid += ok
        if result.code:
            answered_as[result.mode] = answered_as.get(result.mode, 0) + 1
        if not ok:
            reasons.append(f"{pname} + {idea.id}: {result.error or why}"[:160])
    seconds = time.perf_counter() - start
    u = model.usage
    tokens = u.prompt_tokens + u.completion_tokens
    return {"mode": mode, "pairs": len(work), "valid": valid, "valid_rate": valid / len(work),
            "calls": u.calls, "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "tokens_per_valid": tokens / valid if valid else None,
            "seconds_per_pair": seconds / len(work), "answered_as": answered_as,
            "failures": reasons}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint; omit for the scripted server")
    ap.add_argument("--model", default="scripted")
    ap.add_argument("--api-key", default="not-needed")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    ap.add_argument("--retries", action="store_true", help="allow edit retry + 1 repair turn")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = pairs()[: args.limit]
    server = None
    if args.base_url is None:
        server = ScriptedServer(responder=scripted_responder, model="scripted").start()
        base_url, source = server.base_url, "SCRIPTED local server (not a model)"
    else:
        base_url, source = args.base_url, f"{args.model} at {args.base_url}"
    try:
        rows = [run_mode(base_url, args.model, args.api_key, mode, args.retries, work,
                         args.timeout) for mode in ("delta", "full")]
    finally:
        if server is not None:
            server.stop()
    print(f"bench_llm: {len(work)} (parent, idea) pairs = {len(work) // len(IDEA_IDS)} open-space "
          f"seeds x ideas {', '.join(IDEA_IDS)}; answers from {source}; retries "
          f"{'on' if args.retries else 'off'}; valid = static policy + shape check on digits "
          f"(1x8x8 -> 10)")
    print(f"{'mode':<6} {'valid':>9} {'rate':>6} {'calls':>6} {'tokens':>8} {'tok/valid':>10} "
          f"{'s/pair':>7}  answered as")
    for r in rows:
        tpv = "-" if r["tokens_per_valid"] is None else f"{r['tokens_per_valid']:.0f}"
        print(f"{r['mode']:<6} {r['valid']:>4}/{r['pairs']:<4} {r['valid_rate']:>6.0%} "
              f"{r['calls']:>6} {r['prompt_tokens'] + r['completion_tokens']:>8} {tpv:>10} "
              f"{r['seconds_per_pair']:>7.2f}  {r['answered_as']}")
    for r in rows:
        for f in r["failures"][:3]:
            print(f"  {r['mode']} failure: {f}")
    if server is not None:
        print("NOTE: scripted answers (1 pair in 4 deliberately broken) -- these figures exercise "
              "the harness only; they say nothing about any model.")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
