"""``archlore ingest`` and ``archlore ideas ...`` through typer's CliRunner on a temp data dir."""

from __future__ import annotations

import json
import sys

import pytest
from archlore.agent.cli.main import app
from typer.testing import CliRunner

from tests.knowledge.paper_pdfs import ARXIV


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "archlore.corpora", None)  # only what we ingest
    runner = CliRunner()
    home = tmp_path / "home"

    def invoke(*args: str):
        return runner.invoke(app, ["--data-dir", str(home), *args], catch_exceptions=False)

    return invoke


def test_ingest_then_query(run, paper_pdf, tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_text("not a pdf")
    res = run("ingest", str(paper_pdf), str(bad))
    assert res.exit_code == 0, res.output
    assert "ingested" in res.output and "not a PDF" in res.output and "bad.pdf" in res.output

    res = run("ideas", "list", "--json")
    ideas = json.loads(res.output)
    assert {"squeeze-excitation", "gelu"} <= {i["id"] for i in ideas}

    res = run("ideas", "list", "--category", "activation", "--json")
    assert {i["category"] for i in json.loads(res.output)} == {"activation"}
    assert run("ideas", "list", "--category", "nonsense").exit_code != 0

    res = run("ideas", "show", "gelu")
    shown = json.loads(res.output)
    assert shown["provenance"][0]["page"] == 3 and shown["provenance"][0]["paper_id"] == ARXIV
    assert run("ideas", "show", "no-such-idea").exit_code == 1

    res = run("ideas", "search", "channel attention that gates feature maps", "--k", "3", "--json")
    found = json.loads(res.output)
    hits = found["ideas"]
    assert len(hits) == 3 and hits[0]["id"] == "squeeze-excitation"
    prov = hits[0]["provenance"][0]
    assert (prov["paper_id"], prov["page"], prov["role"]) == (ARXIV, 2, "supports")
    assert "squeeze-and-excitation" in prov["quote"]
    assert hits[0]["score"] >= hits[1]["score"]
    # the paper text itself is searched too: the passage that says it, with its page
    found = json.loads(run("ideas", "search", "squeeze-and-excitation blocks after every "
                           "residual stage", "--json").output)
    assert any((p["paper_id"], p["page"]) == (ARXIV, 2) and "squeeze-and-excitation" in p["text"]
               for p in found["passages"])
    table = run("ideas", "search", "smooth activation", "--k", "2")
    assert table.exit_code == 0 and "gelu" in table.output and "paper passages" in table.output

    out = tmp_path / "export.json"
    assert run("ideas", "export", "--format", "json", "--output", str(out)).exit_code == 0
    exported = json.loads(out.read_text())
    assert exported["papers"][0]["id"] == ARXIV and len(exported["ideas"]) == len(ideas)
    assert run("ideas", "export", "--format", "csv").exit_code != 0

    again = run("ingest", str(paper_pdf))  # idempotent, still a success
    assert again.exit_code == 0 and "skipped" in again.output


def test_ingest_nothing_usable_exits_nonzero(run, tmp_path):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    res = run("ingest", str(empty), str(tmp_path / "missing.pdf"))
    assert res.exit_code == 1
    assert "empty file" in res.output and "no such file" in res.output


def test_schema_prints_the_idea_json_schema(run):
    res = run("ideas", "schema")
    schema = json.loads(res.output)
    assert schema["title"] == "Idea"
    assert {"category", "provenance", "edits", "effect"} <= set(schema["properties"])
    assert "stage_layout" in json.dumps(schema["$defs"]["Category"])


def test_export_to_an_unwritable_path_is_a_clear_error(run, tmp_path):
    target = tmp_path / "no-such-dir" / "ideas.json"
    res = run("ideas", "export", "--output", str(target))  # no traceback
    assert res.exit_code == 1
    assert "cannot write" in res.output and str(target) in res.output.replace("\n", "")
    assert not target.exists()


def test_damaged_store_file_is_a_clear_error_and_is_kept(run, tmp_path):
    store_dir = tmp_path / "home" / "knowledge"
    store_dir.mkdir(parents=True)
    (store_dir / "ideas.json").write_text('{"ideas": [')  # e.g. a hand edit gone wrong
    res = run("ideas", "list")  # no traceback
    assert res.exit_code == 1
    assert "ideas.json" in res.output and "not valid" in res.output
    assert (store_dir / "ideas.json").read_text() == '{"ideas": ['  # nothing overwritten


def test_markup_and_escape_sequences_in_names_and_titles_are_shown_inert(run, tmp_path):
    from tests.knowledge.paper_pdfs import paper_pages, write_pdf

    evil = tmp_path / "odd [" / "b] [red]name\x1b[31m.pdf"  # the path holds "[/b]"
    evil.parent.mkdir()
    pages = paper_pages()
    pages[0][0] = ("title", "A [/b][bold red]Title\x1b]0;pwned\x07 with [link=x]markup[/link]")
    write_pdf(evil, pages, meta_title="A [/b][bold red]Title\x1b]0;pwned\x07 [/link]")
    res = run("ingest", str(evil))
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "[/b]" in res.output  # shown literally, not interpreted
    for argv in (["ideas", "list"], ["ideas", "search", "channel attention", "--k", "2"]):
        out = run(*argv)
        assert out.exit_code == 0 and "\x1b" not in out.output, out.output


def test_a_non_empty_directory_that_is_not_a_store_is_refused(run, tmp_path):
    home = tmp_path / "home"
    foreign = home / "knowledge"
    foreign.mkdir(parents=True)
    (foreign / "passwd").write_text("root:x:0:0")
    res = run("ideas", "list")
    assert res.exit_code == 1
    assert "not an archlore knowledge store" in res.output
    assert sorted(p.name for p in foreign.iterdir()) == ["passwd"]  # nothing created there
