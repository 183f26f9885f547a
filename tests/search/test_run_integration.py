"""Runs wired the way users start them: the CLI on the NB201 table, and an LLM whose token
budget runs out mid-run (real HTTP to a scripted OpenAI-compatible server)."""

from __future__ import annotations

import numpy as np
from archlore.agent.cli.main import app
from archlore.agent.llm.local_server import ScriptedServer
from archlore.agent.llm.registry import create_model
from archlore.agent.llm_mutator import LLMMutator
from archlore.search.config import SearchConfig
from archlore.search.run import run_search
from archlore.search.spaces.nb201 import NB201Space
from archlore.search.spaces.nb201_table import NB201Table
from archlore.search.store import RunStore
from typer.testing import CliRunner

from tests.search.nb201_fixtures import table_path


def test_cli_search_on_nb201_answers_from_the_table(tmp_path):
    table = table_path()
    result = CliRunner().invoke(app, [
        "--data-dir", str(tmp_path), "search", "--space", "nb201", "--dataset", "ImageNet16-120",
        "--budget", "30", "--table", str(table), "--name", "nb", "--no-live"])
    assert result.exit_code == 0, result.output
    answers = NB201Table(table, "ImageNet16-120")
    with RunStore(tmp_path / "runs" / "nb", create=False) as store:
        evaluated = [c for c in store.candidates() if c.status == "evaluated"]
        assert len(evaluated) == 30
        for cand in evaluated:
            entry = answers[cand.arch]
            assert np.isclose(cand.evaluation.val_acc * 100, entry.valid_acc)
            assert np.isclose(cand.evaluation.test_acc * 100, entry.test_acc)
    assert (tmp_path / "runs" / "nb" / "pareto.csv").is_file()


def test_llm_budget_stops_the_run_cleanly_and_keeps_what_was_evaluated(tmp_path):
    rng = np.random.default_rng(0)
    space = NB201Space()

    def answer(body: dict) -> str:
        return "ARCH: " + space.sample(rng)

    with ScriptedServer(responder=answer) as server:
        model = create_model("openai", base_url=server.base_url, api_key="k", model="m",
                             max_total_tokens=1, timeout_s=5.0)
        config = SearchConfig(name="capped", space="nb201", dataset="cifar10", budget=40,
                              table=str(table_path()), n_seeds=4)
        result = run_search(config, tmp_path, mutator=LLMMutator(model))
        calls = len(server.requests)
    assert result.status == "stopped"
    assert "budget" in result.stop_reason.lower()
    assert calls == 1  # the cap allows one call; the next is refused before any HTTP
    with RunStore(tmp_path / "capped", create=False) as store:
        assert store.get_meta("status") == "stopped"
        cands = store.candidates()
        assert all(c.status != "pending" for c in cands)
        assert 4 <= result.counts["evaluated"] < 40


def test_search_cli_records_an_llm_run_and_replays_it_without_a_server(tmp_path):
    table = str(table_path())
    rng = np.random.default_rng(1)
    space = NB201Space()
    cassette = tmp_path / "run.jsonl"
    common = ["--data-dir", str(tmp_path), "search", "--space", "nb201", "--dataset", "cifar10",
              "--table", table, "--budget", "15", "--n-seeds", "3", "--no-live"]
    with ScriptedServer(responder=lambda body: "ARCH: " + space.sample(rng)) as server:
        rec = CliRunner().invoke(app, common + [
            "--name", "live", "--llm", "openai", "--base-url", server.base_url, "--model", "m",
            "--record", str(cassette)], env={"OPENAI_API_KEY": "k"})
        calls = len(server.requests)
    assert rec.exit_code == 0, rec.output
    assert calls > 0 and cassette.is_file()
    rep = CliRunner().invoke(app, common + [
        "--name", "replayed", "--llm", "replay", "--cassette", str(cassette)])
    assert rep.exit_code == 0, rep.output

    def archive(name: str) -> list[tuple[str, str]]:
        with RunStore(tmp_path / "runs" / name, create=False) as store:
            return [(c.arch, c.operator) for c in store.candidates()]

    assert archive("replayed") == archive("live")
    assert any(op != "init" for _, op in archive("live"))


def test_search_and_ask_refuse_a_damaged_knowledge_store_without_touching_it(tmp_path):
    ideas = tmp_path / "knowledge" / "ideas.json"
    ideas.parent.mkdir(parents=True)
    ideas.write_text("{broken")
    for argv in (["search", "--budget", "2", "--no-live"], ["ask", "a digits net", "--budget", "2"]):
        result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), *argv])
        assert result.exit_code == 2, result.output
        assert "ideas.json is not valid" in result.output.replace("\n", "")  # rich wraps
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert ideas.read_text() == "{broken"


def test_resume_does_not_refill_the_llm_token_budget(tmp_path):
    rng = np.random.default_rng(2)
    space = NB201Space()
    argv = ["--data-dir", str(tmp_path), "search", "--space", "nb201", "--dataset", "cifar10",
            "--table", str(table_path()), "--budget", "30", "--n-seeds", "3", "--no-live"]
    with ScriptedServer(responder=lambda body: "ARCH: " + space.sample(rng)) as server:
        first = CliRunner().invoke(app, argv + [
            "--name", "capped", "--llm", "openai", "--base-url", server.base_url, "--model", "m",
            "--llm-budget-tokens", "1"], env={"OPENAI_API_KEY": "k"})
        calls_before = len(server.requests)
        again = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "search", "--resume",
                                         "capped", "--no-live"], env={"OPENAI_API_KEY": "k"})
        calls_after = len(server.requests)
    assert first.exit_code == 130 and again.exit_code == 130, (first.output, again.output)
    assert calls_before == 1
    assert calls_after == calls_before  # the cap covers the whole run, resumed or not
    assert "budget" in again.output.replace("\n", " ")


def test_llm_run_shows_calls_in_flight_and_prompt_sizes_in_the_report(tmp_path, monkeypatch):
    """A slow local server must look busy, not dead; the report says how big the prompts were."""
    import archlore.agent.llm.openai_backend as ob
    from archlore.agent.llm.local_server import Reply

    monkeypatch.setattr(ob, "PROGRESS_EVERY_S", 0.0)
    rng = np.random.default_rng(2)
    space = NB201Space()

    def answer(body: dict) -> Reply:
        return Reply("ARCH: " + space.sample(rng), chunk_delay_s=0.01)

    with ScriptedServer(responder=answer) as server:
        out = CliRunner().invoke(app, [
            "--data-dir", str(tmp_path), "search", "--space", "nb201", "--dataset", "cifar10",
            "--table", str(table_path()), "--budget", "8", "--n-seeds", "3", "--no-live",
            "--name", "shown", "--llm", "openai", "--base-url", server.base_url, "--model", "m"],
            env={"OPENAI_API_KEY": "k"})
        prompts = [sum(len(m["content"].split()) for m in r.body["messages"])
                   for r in server.requests]
    assert out.exit_code == 0, out.output
    assert "LLM call in flight: m:" in out.output
    with RunStore(tmp_path / "runs" / "shown", create=False) as store:
        usage = store.usage()
    assert usage.calls == len(prompts) > 0
    assert usage.max_prompt_tokens == max(prompts)  # the scripted server counts prompt words
    assert usage.seconds > 0
    html = (tmp_path / "runs" / "shown" / "report.html").read_text()
    mean = round(sum(prompts) / len(prompts))
    assert f"<td>{mean} / {max(prompts)}</td>" in html
