"""Every kind of unusable file: one clear line naming it, the batch goes on, nothing half-written."""

from __future__ import annotations

import pytest
from archlore.knowledge.extract_base import ExtractionError

from tests.knowledge.paper_pdfs import long_paper_pages, paper_pages, write_pdf


def _image_only_pdf(path):
    from fpdf import FPDF
    from PIL import Image

    png = path.with_suffix(".png")
    Image.new("RGB", (200, 120), (30, 120, 200)).save(png)
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(str(png), x=10, y=10, w=150)
    pdf.output(str(path))
    return path


@pytest.fixture
def bad_files(tmp_path, paper_pdf):
    good = paper_pdf.read_bytes()
    files = {}
    files["corrupt"] = tmp_path / "corrupt.pdf"
    files["corrupt"].write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF")
    files["truncated"] = tmp_path / "truncated.pdf"
    files["truncated"].write_bytes(good[: len(good) // 3])
    files["encrypted"] = write_pdf(tmp_path / "encrypted.pdf", paper_pages(), user_password="s3cret")
    files["empty"] = tmp_path / "empty.pdf"
    files["empty"].write_bytes(b"")
    files["image_only"] = _image_only_pdf(tmp_path / "scan.pdf")
    files["huge"] = tmp_path / "huge.pdf"
    with open(files["huge"], "wb") as f:  # sparse: 101 MB on paper, nothing on disk
        f.write(b"%PDF-1.7\n")
        f.truncate(101 * 1024 * 1024)
    files["too_many_pages"] = write_pdf(tmp_path / "book.pdf", long_paper_pages(12, chars_per_page=300))
    files["not_pdf"] = tmp_path / "notes.txt"
    files["not_pdf"].write_text("These are my notes on residual connections. " * 20)
    return files


EXPECTED = {
    "corrupt": "corrupt",
    "truncated": "corrupt or truncated",
    "encrypted": "encrypted PDF",
    "empty": "empty file",
    "image_only": "no text layer",
    "huge": "too large",
    "too_many_pages": "too many pages",
    "not_pdf": "not a PDF",
}


def test_each_bad_file_reported_batch_continues(make_store, bad_files, paper_pdf):
    store = make_store()
    paths = [*bad_files.values(), paper_pdf]
    summary = store.ingest(paths, max_pages=10)
    by_path = {f.path.name: f for f in summary.files}
    for kind, path in bad_files.items():
        res = by_path[path.resolve().name]
        assert res.status == "error", (kind, res)
        assert EXPECTED[kind] in res.error, (kind, res.error)
        assert "\n" not in res.error
    assert by_path[paper_pdf.name].status == "ingested"
    assert summary.ok and summary.ingested == 1 and len(summary.errors) == len(bad_files)
    # nothing from the bad files reached the store
    assert [p.title for p in store.papers()] == [summary.files[-1].title]
    assert {c.paper_id for c in store.chunks()} == {store.papers()[0].id}


def test_only_bad_files_is_not_ok(make_store, bad_files):
    store = make_store()
    summary = store.ingest([bad_files["empty"], bad_files["not_pdf"], "/nonexistent/x.pdf"])
    assert not summary.ok and summary.ingested == 0
    assert "no such file" in summary.files[0].error
    assert store.papers() == [] and len(store) == 0


class FailingExtractor:
    """An extractor that finds ideas, then fails: the store must not keep anything of the file."""

    name = "failing"

    def extract(self, paper):
        raise ExtractionError(f"model gave up on {paper.paper_id}")


def test_failed_extraction_leaves_nothing(make_store, paper_pdf):
    store = make_store()
    summary = store.ingest([paper_pdf], extractor=FailingExtractor())
    (res,) = summary.files
    assert res.status == "error" and "model gave up" in res.error
    assert store.papers() == [] and len(store) == 0 and store.chunk_count() == 0
    # and the file can be ingested later (it was not recorded as seen)
    assert store.ingest([paper_pdf]).ingested == 1


def test_paths_expand_files_directories_and_globs(tmp_path, paper_pdf):
    from archlore.knowledge.ingest import expand_paths

    nested = tmp_path / "lib" / "sub"
    nested.mkdir(parents=True)
    a = nested / "a.PDF"
    a.write_bytes(paper_pdf.read_bytes())
    b = tmp_path / "lib" / "b.pdf"
    b.write_bytes(b"%PDF-1.4")
    (tmp_path / "lib" / "notes.txt").write_text("ignored inside directories")
    (tmp_path / "empty_dir").mkdir()
    files, errors = expand_paths([tmp_path / "lib", str(tmp_path / "lib" / "*.pdf"), b,
                                  str(tmp_path / "nothing-*.pdf"), tmp_path / "empty_dir"])
    assert files == [b.resolve(), a.resolve()]  # directory order, duplicates dropped
    assert [e.error for e in errors] == ["glob matched no files",
                                         "directory contains no .pdf files"]
