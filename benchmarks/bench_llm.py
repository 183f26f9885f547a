"""LLM mutation harness: changed-and-valid rate of delta, full and structured answers.

    python benchmarks/bench_llm.py --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder
    python benchmarks/bench_llm.py              # no endpoint: a local SCRIPTED server

A fixed set of (parent, idea) pairs -- the open space's seed networks x one idea from each of
several categories of the built-in corpus -- is sent to the model once in ``delta`` mode and
once in ``full`` mode and once in ``structured`` mode (JSON edits of the seed's ArchSpec). A child
counts as *changed and valid* when it passes the evaluator's static policy and an in-process
build + shape check on the digits shape (N, 1, 8, 8) -> (N, 10) AND is not the parent copied
(same code after dropping comments, docstrings and formatting; the mutator's ``no_op`` status
is counted separately). Reported per mode: changed-and-valid rate, no-ops, echoes, invalid,
LLM calls, prompt and completion tokens, median seconds per mutation, seconds per valid child,
the machine's load average; and the estimated prompt size with and without a prompt budget.

By default no retries (the raw first answer is scored); ``--retries`` enables the mutator's
in-call edit retry and one repair turn. Generated code is executed in this process for the shape
check (after the static policy): only point this at endpoints you trust.

With no ``--base-url`` the answers come from a scripted local server that applies a fixed
edit and, to exercise the failure paths, deliberately breaks the answers for the last idea
(a mistyped SEARCH line in delta mode, a truncated answer in full mode). Those numbers measure the
harness, NOT a model; the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from archlore.agent.codeparse import same_behaviour  # noqa: E402
from archlore.agent.llm.local_server import ScriptedServer  # noqa: E402
from archlore.agent.llm.openai_backend import OpenAIModel  # noqa: E402
from archlore.agent.llm_mutator import LLMMutator  # noqa: E402
from archlore.corpora import load_builtin_ideas  # noqa: E402
from archlore.evaluator import policy  # noqa: E402
from archlore.evaluator.cascade import build_model, check_shape  # noqa: E402
from archlore.search.protocol import Constraints, MutationRequest, ParentInfo  # noqa: E402
from archlore.search.spaces.open import OpenSpace  # noqa: E402
from archlore.search.spaces.open_spec import apply_edits  # noqa: E402

IDEA_IDS = ("squeeze-excitation", "gelu", "identity-shortcut", "depthwise-separable",
            "anti-aliased-downsampling", "bottleneck-transformer", "group-norm", "head-dropout")
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


def applicable(parent_name: str, idea) -> bool:
    """Whether the idea changes this parent at all: its own edits give a different spec. Where
    the parent already has the idea (a ResNet seed and identity shortcuts), ``no_op`` is the
    right answer, so such pairs are scored apart and kept out of the changed-and-valid rate."""
    spec = next(s for s in OpenSpace().seeds(DIGITS) if s.name == parent_name)
    try:
        return apply_edits(spec, list(idea.edits)) != spec
    except ValueError:
        return True


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
    last idea of IDEA_IDS are deliberately broken."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    broken = f"({BROKEN_CATEGORY})" in user
    if "response_format" in body or '"edits"' in system:
        path = "actt" if broken else "act"
        return json.dumps({"edits": [{"op": "set", "path": path, "value": "silu"}],
                           "rationale": "SiLU"})
    delta = "<<<<<<< SEARCH" in system
    m = re.search(r"```python\n(.*?)```", user, re.S)
    parent = m.group(1) if m else ""
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


def classify(result, parent_code: str) -> tuple[str, str]:
    """("changed_valid" | "no_op" | "echo" | "invalid", why). An echo (the parent copied,
    comments or the spec header aside) is never counted valid, whatever the mutator said."""
    if result.status == "no_op":
        return "no_op", result.error or "no-op"
    ok, why = is_valid(result.code)
    if not ok:
        return "invalid", result.error or why
    if same_behaviour(result.code, parent_code):
        return "echo", "the parent unchanged"
    return "changed_valid", ""


def run_mode(base_url: str, model_id: str, api_key: str, mode: str, retries: bool,
             work: list, timeout: float, context_tokens: int | None = None,
             temperature: float = 0.0) -> dict:
    model = OpenAIModel(base_url=base_url, model=model_id, api_key=api_key, timeout_s=timeout,
                        max_retries=2, backoff_initial_s=0.5)
    mutator = LLMMutator(model, mode=mode, edit_retry=retries, noop_retry=retries,
                         max_repair_turns=1 if retries else 0, temperature=temperature,
                         context_tokens=context_tokens)
    counts = {"changed_valid": 0, "no_op": 0, "echo": 0, "invalid": 0}
    present = {"pairs": 0, "no_op": 0}  # pairs whose parent already has the idea
    answered_as: dict[str, int] = {}
    reasons, seconds, prompt_est = [], [], []
    start = time.perf_counter()
    for k, (pname, code, idea) in enumerate(work):
        spec = OpenSpace().seeds(DIGITS)[[s.name for s in OpenSpace().seeds(DIGITS)].index(pname)]
        req = MutationRequest(operator="idea", parents=[ParentInfo(code=code, arch=spec.to_json())],
                              idea=idea, constraints=DIGITS, seed=k)
        t0 = time.perf_counter()
        result = mutator.mutate(req)
        seconds.append(time.perf_counter() - t0)
        prompt_est.append(result.prompt_tokens_est)
        kind, why = classify(result, code)
        if not applicable(pname, idea):
            present["pairs"] += 1
            present["no_op"] += kind == "no_op"
            kind = f"{kind} (idea already in the parent)"
        else:
            counts[kind] += 1
        if result.code:
            answered_as[result.mode] = answered_as.get(result.mode, 0) + 1
        if kind not in ("changed_valid", "no_op (idea already in the parent)"):
            reasons.append(f"{pname} + {idea.id}: {kind}: {why}"[:200])
        print(f"  [{mode}] {k + 1}/{len(work)} {pname} + {idea.id}: {kind} "
              f"({seconds[-1]:.1f}s, prompt ~{result.prompt_tokens_est} tok, "
              f"{result.usage.completion_tokens} completion tok)", flush=True)
    total = time.perf_counter() - start
    u = model.usage
    valid = counts["changed_valid"]
    scored = len(work) - present["pairs"]
    return {"mode": mode, "pairs": scored, **counts,
            "already_present": present["pairs"], "already_present_no_op": present["no_op"],
            "changed_valid_rate": valid / scored if scored else 0.0,
            "calls": u.calls, "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "prompt_tokens_est_mean": statistics.mean(prompt_est) if prompt_est else 0,
            "seconds_total": total, "seconds_median": statistics.median(seconds) if seconds else 0,
            "seconds_per_valid": total / valid if valid else None,
            "answered_as": answered_as, "failures": reasons}


def prompt_sizes(work: list, modes: list[str], context_tokens: int | None) -> list[dict]:
    """Estimated prompt tokens of the first request per pair, without and with the budget
    (no model: a scripted one records the messages)."""
    from archlore.agent.llm.scripted import ScriptedModel
    from archlore.agent.prompt_budget import messages_tokens

    rows = []
    for mode in modes:
        sizes = {}
        for budget in (None, context_tokens):
            m = ScriptedModel(responder=lambda msgs: "{}")
            mut = LLMMutator(m, mode=mode, max_repair_turns=0, edit_retry=False,
                             noop_retry=False, context_tokens=budget)
            for k, (pname, code, idea) in enumerate(work):
                spec = next(s for s in OpenSpace().seeds(DIGITS) if s.name == pname)
                mut.mutate(MutationRequest(operator="idea", idea=idea, constraints=DIGITS,
                                           parents=[ParentInfo(code=code, arch=spec.to_json())],
                                           seed=k))
            sizes[budget] = statistics.mean(messages_tokens(s) for s in m.seen)
        rows.append({"mode": mode, "unbudgeted": sizes[None],
                     "budgeted": sizes[context_tokens], "context_tokens": context_tokens})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint; omit for the scripted server")
    ap.add_argument("--model", default="scripted")
    ap.add_argument("--api-key", default="not-needed")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    ap.add_argument("--modes", default="delta,full,structured")
    ap.add_argument("--retries", action="store_true",
                    help="allow edit retry, one no-op retry and 1 repair turn")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--context-tokens", type=int, default=None,
                    help="prompt budget (default: the server's reported context)")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = pairs()[: args.limit]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    server = None
    if args.base_url is None:
        server = ScriptedServer(responder=scripted_responder, model="scripted").start()
        base_url, source = server.base_url, "SCRIPTED local server (not a model)"
    else:
        base_url, source = args.base_url, f"{args.model} at {args.base_url}"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    try:
        rows = [run_mode(base_url, args.model, args.api_key, mode, args.retries, work,
                         args.timeout, args.context_tokens, args.temperature) for mode in modes]
    finally:
        if server is not None:
            server.stop()
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    sizes = prompt_sizes(work, modes, args.context_tokens or 1024)
    print(f"bench_llm: {len(work)} (parent, idea) pairs from {len(IDEA_IDS)} ideas x open-space "
          f"seeds; answers from {source}; retries {'on' if args.retries else 'off'}; "
          f"load average {load[0]:.1f} at start, {load_end[0]:.1f} at end, {os.cpu_count()} "
          f"CPUs; changed-and-valid = static policy + shape check on digits (1x8x8 -> 10) and "
          f"not the parent copied; pairs whose parent already has the idea are scored apart")
    print(f"{'mode':<10} {'chg+valid':>9} {'rate':>6} {'no-op':>5} {'echo':>5} {'inval':>5} "
          f"{'calls':>5} {'prompt':>7} {'compl':>6} {'s/med':>7} {'s/valid':>8}  answered as")
    for r in rows:
        spv = "-" if r["seconds_per_valid"] is None else f"{r['seconds_per_valid']:.1f}"
        print(f"{r['mode']:<10} {r['changed_valid']:>4}/{r['pairs']:<4} "
              f"{r['changed_valid_rate']:>6.0%} {r['no_op']:>5} {r['echo']:>5} {r['invalid']:>5} "
              f"{r['calls']:>5} {r['prompt_tokens']:>7} {r['completion_tokens']:>6} "
              f"{r['seconds_median']:>7.1f} {spv:>8}  {r['answered_as']}")
        if r["already_present"]:
            print(f"{'':<10} + {r['already_present']} pairs whose parent already has the idea: "
                  f"{r['already_present_no_op']} answered no-op (the right answer)")
    for r in rows:
        for f in r["failures"][:4]:
            print(f"  {r['mode']} failure: {f}")
    print("estimated prompt tokens per first request (mean): " + "; ".join(
        f"{r['mode']} {r['unbudgeted']:.0f} -> {r['budgeted']:.0f} at --context-tokens "
        f"{r['context_tokens']}" for r in sizes))
    if server is not None:
        print("NOTE: scripted answers (the last idea's pairs deliberately broken) -- these figures exercise "
              "the harness only; they say nothing about any model.")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "load_start": load,
                                         "load_end": load_end, "rows": rows,
                                         "prompt_sizes": sizes}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
