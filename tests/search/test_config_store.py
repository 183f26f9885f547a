"""Config files and overrides; the SQLite run store keeps every candidate field."""

from __future__ import annotations

import sqlite3

import pytest
from archlore.evaluator.records import Evaluation
from archlore.search.config import ConfigError, SearchConfig, build_config
from archlore.search.protocol import Usage
from archlore.search.records import Candidate
from archlore.search.store import RunStore, RunStoreError


def test_defaults_are_the_main_job():
    cfg = SearchConfig()
    assert (cfg.dataset, cfg.llm.backend, cfg.evaluation.workers, cfg.strategy, cfg.space) == (
        "digits", "offline", 2, "fairnad", "open")
    assert cfg.objectives == ["val_acc", "macs"]
    # one source of training defaults: the evaluator's Recipe
    from archlore.evaluator.records import EvalConfig, Recipe

    assert cfg.recipe == Recipe() and cfg.eval_config().recipe() == Recipe()
    assert EvalConfig().recipe() == Recipe()


def test_first_format_flat_keys_still_load():
    """A run saved by the first release (flat keys) resumes with the same settings."""
    old = {"name": "r", "epochs": 2.0, "batch_size": 32, "workers": 3, "llm": "openai",
           "model": "m", "novelty_threshold": 0.8, "n_seeds": 4,
           "mutation": {"idea": 1.0, "pareto": 0.0, "refine": 0.0, "crossover": 0.0},
           "options": {"llm": {"base_url": "http://x", "timeout_s": 5}}}
    cfg = SearchConfig.model_validate(old)
    assert (cfg.recipe.epochs, cfg.recipe.batch_size, cfg.evaluation.workers) == (2.0, 32, 3)
    assert (cfg.llm.backend, cfg.llm.model, cfg.llm.base_url) == ("openai", "m", "http://x")
    assert cfg.llm.extra == {"timeout_s": 5} and cfg.novelty.threshold == 0.8
    assert cfg.options == {"n_seeds": 4, "mutation": old["mutation"]}
    # and a CLI flag for a nested field changes only that field
    b = build_config(base=cfg.model_dump(), overrides={"epochs": 5.0, "llm": "replay"})
    assert (b.recipe.epochs, b.recipe.batch_size, b.llm.backend, b.llm.model) == (
        5.0, 32, "replay", "m")


def test_objectives_are_checked():
    assert build_config(overrides={"objectives": ["val_acc", "latency_ms", "params"]}).objectives
    assert build_config(overrides={"objectives": ["val_acc", "flops_M:min"]}).objectives
    for bad, match in ((["val_acc"], "at least 2"), (["val_acc", "speed"], "unknown objective"),
                       (["val_acc", "macs", "macs"], "repeat")):
        with pytest.raises(ConfigError, match=match):
            build_config(overrides={"objectives": bad})


def test_toml_yaml_and_overrides(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[search]\nname = "t1"\nbudget = 12\nseed = 4\n[search.mutation]\ncrossover = 0.5\n')
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("budget: 7\ndataset: synthetic\nmax_mflops: 2.5\n")
    a = build_config(toml)
    assert (a.name, a.budget, a.seed, a.options["mutation"]["crossover"]) == ("t1", 12, 4, 0.5)
    b = build_config(yaml_file, overrides={"budget": 3, "seed": None},
                     assignments=["mutation.refine=0", "options={\"chunks\": false}"])
    # CLI beats file; None means "not given"; --set reaches nested and any field
    assert (b.budget, b.dataset, b.max_mflops, b.seed) == (3, "synthetic", 2.5, 0)
    assert b.options == {"chunks": False, "mutation": {"refine": 0}}


@pytest.mark.parametrize("text,suffix,match", [
    ("budget = 0\n", ".toml", "budget"),
    ("bugdet = 3\n", ".toml", "bugdet"),
    ("budget: [\n", ".yaml", "cannot be parsed"),
    ("budget = 3\n", ".ini", "use .toml"),
    ("- 1\n- 2\n", ".yaml", "table of settings"),
    ("search: 5\n", ".yaml", "table of settings"),
    ("search = [1, 2]\n", ".toml", "table of settings"),
])
def test_bad_config_says_what_and_where(tmp_path, text, suffix, match):
    f = tmp_path / f"bad{suffix}"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        build_config(f)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        build_config(assignments=["budget"])
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="novelty.threshold"):
        build_config(overrides={"novelty_threshold": 1.5})
    with pytest.raises(ConfigError, match="plain directory name"):
        build_config(overrides={"name": "../escape"})


def test_store_round_trip_and_wal(tmp_path):
    with RunStore(tmp_path / "r") as st:
        assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        c = Candidate(id=0, code="class Net: pass", code_hash="abc", parents=[], idea_id="se",
                      operator="idea", mode="delta", prompt="p", response="r",
                      usage=Usage(prompt_tokens=5, completion_tokens=7, calls=1), notes="n")
        st.add(c)
        st.add(Candidate(id=1, code="x", code_hash="def", parents=[0], status="duplicate",
                         operator="idea"), duplicate_of=0)
        ev = Evaluation(status="ok", stage="eval", val_acc=0.5, test_acc=0.4, macs=1000, params=10)
        st.set_evaluation(0, ev)
        st.set_meta("config", {"budget": 3})
        with pytest.raises(RunStoreError):
            st.set_evaluation(42, ev)
    # a second connection (another process would see the same) reads everything back
    with RunStore(tmp_path / "r", create=False) as st:
        got = st.get(0)
        assert got.evaluation == ev and got.status == "evaluated" and got.usage.calls == 1
        assert (got.prompt, got.response, got.idea_id, got.mode) == ("p", "r", "se", "delta")
        assert st.get(1).parents == [0] and st.duplicate_of(1) == 0
        s = st.summary()
        assert (s["candidates"], s["valid"], s["duplicates"], s["best_val_acc"]) == (2, 1, 1, 0.5)
        assert st.usage().prompt_tokens == 5 and st.get_meta("config") == {"budget": 3}
    with pytest.raises(RunStoreError, match="no run store"):
        RunStore(tmp_path / "missing", create=False)


def test_no_op_answers_are_counted_apart_from_failures(tmp_path):
    with RunStore(tmp_path / "r") as st:
        failed = Evaluation(status="failed", stage="build", reason="mutator produced no candidate")
        st.add(Candidate(id=0, code_hash="a", operator="idea", mutation_status="no_op",
                         error="the parent already has it", status="evaluated", evaluation=failed))
        st.add(Candidate(id=1, code_hash="b", operator="idea", mutation_status="error",
                         error="no answer", status="evaluated", evaluation=failed))
        s = st.summary()
    assert (s["no_ops"], s["failed"]) == (1, 1)


def test_duplicate_id_insert_fails_and_loses_nothing(tmp_path):
    with RunStore(tmp_path / "r") as st:
        st.add(Candidate(id=0, code="a", code_hash="h", operator="init"))
        with pytest.raises(sqlite3.IntegrityError):
            st.add(Candidate(id=0, code="b", code_hash="h2", operator="init"))
        assert st.get(0).code == "a" and st.count() == 1


def test_a_run_that_cannot_start_leaves_no_run_behind(tmp_path):
    """A config rejected while the run is being set up (here: NB201 has no digits) is a clear
    error and leaves no empty run directory for ``runs list`` / name clashes."""
    from archlore.agent.mutators import make_mutator
    from archlore.search.run import run_search

    cfg = SearchConfig(name="bad", space="nb201", dataset="digits", budget=2)
    with pytest.raises(ValueError, match="NAS-Bench-201 dataset 'digits'"):
        run_search(cfg, tmp_path, mutator=make_mutator("offline"), write_outputs=False)
    assert not (tmp_path / "bad").exists()
    # a run that exists already is never removed by a failed start
    kept = tmp_path / "kept"
    with RunStore(kept) as st:
        st.set_meta("note", "user data")
    with pytest.raises(ValueError):
        run_search(cfg.model_copy(update={"name": "kept"}), tmp_path,
                   mutator=make_mutator("offline"), write_outputs=False)
    with RunStore(kept, create=False) as st:
        assert st.get_meta("note") == "user data"


def test_search_cli_errors_are_plain_messages(tmp_path, monkeypatch):
    """Unknown names and missing runs: one clear line, no traceback, no KeyError quoting."""
    from archlore.agent.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("ARCHLORE_HOME", str(tmp_path))
    cases = [(["search", "--strategy", "nope", "--budget", "2", "--no-live"],
              "archlore search: unknown strategy 'nope'"),
             (["search", "--space", "nope", "--budget", "2", "--no-live"],
              "archlore search: unknown space 'nope'"),
             (["search", "--dataset", "nope", "--no-live"], "unknown dataset 'nope'"),
             (["search", "--resume", "nope"], "no run store at"),
             (["report", "nope"], "no run store at")]
    for args, expected in cases:
        r = CliRunner().invoke(app, args)
        text = " ".join(r.output.split())
        assert r.exit_code == 2, text
        assert expected in text and "Traceback" not in text, text
    assert not list(tmp_path.glob("runs/*"))  # failed starts leave no runs behind
