"""Run store: one SQLite database (WAL) per run, ``runs_dir()/NAME/run.db``.

Every candidate is one row, written in one transaction when it is created (status
``pending`` or ``duplicate``) and updated in one transaction when its evaluation arrives,
so a ``kill -9`` at any moment loses at most the evaluations still in flight. The effective
config, the ideas the run could draw from and the strategy's latest statistics live in the
``meta`` and ``ideas`` tables, so reports need nothing but this file.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from archlore.search.protocol import Usage
from archlore.search.records import Candidate

DB_NAME = "run.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ideas (id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,            -- pending | evaluated | duplicate
    code TEXT, code_hash TEXT NOT NULL, arch TEXT,
    parents TEXT NOT NULL,           -- JSON list of candidate ids
    idea_id TEXT, operator TEXT NOT NULL, mode TEXT NOT NULL,
    prompt TEXT NOT NULL, response TEXT NOT NULL, usage TEXT NOT NULL, notes TEXT NOT NULL,
    error TEXT, duplicate_of INTEGER, move TEXT, mutation_status TEXT,
    strategy_data TEXT,              -- JSON: what the strategy keeps per proposal
    eval_status TEXT, val_acc REAL, test_acc REAL, macs INTEGER, params INTEGER,
    evaluation TEXT,                 -- Evaluation JSON
    created_at TEXT NOT NULL, evaluated_at TEXT
);
-- multi-fidelity: every rung's result of a candidate (the candidates row holds the highest)
CREATE TABLE IF NOT EXISTS rungs (
    cid INTEGER NOT NULL, rung INTEGER NOT NULL, epochs REAL,
    eval_status TEXT, val_acc REAL, evaluation TEXT NOT NULL, evaluated_at TEXT NOT NULL,
    PRIMARY KEY (cid, rung)
);
CREATE INDEX IF NOT EXISTS idx_cand_status ON candidates(status);
CREATE INDEX IF NOT EXISTS idx_cand_hash ON candidates(code_hash);
CREATE INDEX IF NOT EXISTS idx_cand_eval ON candidates(eval_status, val_acc);
"""

_COLUMNS = ("id, status, code, code_hash, arch, parents, idea_id, operator, mode, prompt, "
            "response, usage, notes, error, duplicate_of, evaluation, created_at, evaluated_at, "
            "move, mutation_status, strategy_data")
# Columns added after the first release: added to older stores on open.
_ADDED_COLUMNS = {"move": "TEXT", "mutation_status": "TEXT", "strategy_data": "TEXT"}


class RunStoreError(RuntimeError):
    pass


class RunStore:
    """Thread-compatible: one connection, used from the engine's thread only."""

    def __init__(self, run_dir: str | Path, create: bool = True) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / DB_NAME
        if not create and not self.path.is_file():
            raise RunStoreError(f"no run store at {self.path}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if self.path.stat().st_size:  # an existing file: check it before writing anything
                row = self.db.execute("PRAGMA quick_check").fetchone()
                if row is None or row[0] != "ok":
                    raise sqlite3.DatabaseError(row[0] if row else "integrity check failed")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across kill
            self.db.executescript(_SCHEMA)
            have = {r[1] for r in self.db.execute("PRAGMA table_info(candidates)")}
            for col, kind in _ADDED_COLUMNS.items():
                if col not in have:
                    self.db.execute(f"ALTER TABLE candidates ADD COLUMN {col} {kind}")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise RunStoreError(f"run store {self.path} is damaged ({exc}); nothing was "
                                f"changed -- restore it from a backup or start a new run") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # meta --------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                        (key, json.dumps(value, default=str)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    # ideas -------------------------------------------------------------------------------
    def save_ideas(self, ideas: list[Idea]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO ideas(id, json) VALUES (?, ?)",
                                [(i.id, i.model_dump_json()) for i in ideas])

    def ideas(self) -> dict[str, Idea]:
        return {r[0]: Idea.model_validate_json(r[1])
                for r in self.db.execute("SELECT id, json FROM ideas ORDER BY id")}

    # candidates --------------------------------------------------------------------------
    def add(self, c: Candidate, duplicate_of: int | None = None) -> None:
        """Insert one new candidate (one transaction)."""
        ev = c.evaluation
        self.db.execute(
            "INSERT INTO candidates(id, status, code, code_hash, arch, parents, idea_id, operator,"
            " mode, prompt, response, usage, notes, error, duplicate_of, eval_status, val_acc,"
            " test_acc, macs, params, evaluation, created_at, evaluated_at, move,"
            " mutation_status, strategy_data)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (c.id, c.status, c.code, c.code_hash, c.arch, json.dumps(c.parents), c.idea_id,
             c.operator, c.mode, c.prompt, c.response, c.usage.model_dump_json(), c.notes,
             c.error, duplicate_of if duplicate_of is not None else c.duplicate_of,
             *self._eval_cols(ev), c.created_at.isoformat(),
             c.evaluated_at.isoformat() if c.evaluated_at else None, c.move, c.mutation_status,
             json.dumps(c.strategy_data) if c.strategy_data else None))

    @staticmethod
    def _eval_cols(ev: Evaluation | None) -> tuple:
        if ev is None:
            return (None, None, None, None, None, None)
        return (ev.status, ev.val_acc, ev.test_acc, ev.macs, ev.params, ev.model_dump_json())

    def set_evaluation(self, cid: int, ev: Evaluation) -> datetime:
        """Record the evaluation of a pending candidate (one transaction)."""
        now = datetime.now(UTC)
        cur = self.db.execute(
            "UPDATE candidates SET status='evaluated', eval_status=?, val_acc=?, test_acc=?,"
            " macs=?, params=?, evaluation=?, evaluated_at=? WHERE id=?",
            (*self._eval_cols(ev), now.isoformat(), cid))
        if cur.rowcount != 1:
            raise RunStoreError(f"candidate {cid} is not in the store")
        return now

    def add_rung(self, cid: int, rung: int, ev: Evaluation) -> None:
        """Record one rung's result of candidate ``cid`` (multi-fidelity; one transaction)."""
        self.db.execute(
            "INSERT OR REPLACE INTO rungs(cid, rung, epochs, eval_status, val_acc, evaluation,"
            " evaluated_at) VALUES (?,?,?,?,?,?,?)",
            (cid, rung, ev.metrics.get("fidelity_epochs"), ev.status, ev.val_acc,
             ev.model_dump_json(), datetime.now(UTC).isoformat()))

    def rungs(self) -> dict[int, dict[int, Evaluation]]:
        """Every stored rung result: ``{cid: {rung: Evaluation}}`` (empty for a
        single-fidelity run)."""
        out: dict[int, dict[int, Evaluation]] = {}
        for cid, rung, ev in self.db.execute(
                "SELECT cid, rung, evaluation FROM rungs ORDER BY cid, rung"):
            out.setdefault(cid, {})[rung] = Evaluation.model_validate_json(ev)
        return out

    def _row(self, r: tuple) -> Candidate:
        (cid, status, code, code_hash, arch, parents, idea_id, operator, mode, prompt, response,
         usage, notes, error, dup, evaluation, created_at, evaluated_at, move, mutation_status,
         strategy_data) = r
        return Candidate(
            id=cid, status=status, code=code, code_hash=code_hash, arch=arch,
            parents=json.loads(parents), idea_id=idea_id, operator=operator, mode=mode,
            prompt=prompt, response=response, usage=Usage.model_validate_json(usage), notes=notes,
            error=error, duplicate_of=dup, move=move, mutation_status=mutation_status or "ok",
            strategy_data=json.loads(strategy_data) if strategy_data else {},
            evaluation=Evaluation.model_validate_json(evaluation) if evaluation else None,
            created_at=datetime.fromisoformat(created_at),
            evaluated_at=datetime.fromisoformat(evaluated_at) if evaluated_at else None)

    def candidates(self, status: str | None = None) -> list[Candidate]:
        """All candidates in id order (optionally one status)."""
        q = f"SELECT {_COLUMNS} FROM candidates"
        args: tuple = ()
        if status:
            q += " WHERE status = ?"
            args = (status,)
        return [self._row(r) for r in self.db.execute(q + " ORDER BY id", args)]

    def get(self, cid: int) -> Candidate | None:
        r = self.db.execute(f"SELECT {_COLUMNS} FROM candidates WHERE id = ?", (cid,)).fetchone()
        return None if r is None else self._row(r)

    def duplicate_of(self, cid: int) -> int | None:
        r = self.db.execute("SELECT duplicate_of FROM candidates WHERE id = ?", (cid,)).fetchone()
        return None if r is None else r[0]

    def count(self, status: str | None = None, eval_status: str | None = None) -> int:
        q, args = "SELECT COUNT(*) FROM candidates WHERE 1=1", []
        if status:
            q += " AND status = ?"
            args.append(status)
        if eval_status:
            q += " AND eval_status = ?"
            args.append(eval_status)
        return self.db.execute(q, args).fetchone()[0]

    def usage(self) -> Usage:
        total = Usage()
        for (u,) in self.db.execute("SELECT usage FROM candidates"):
            total = total + Usage.model_validate_json(u)
        return total

    def summary(self) -> dict[str, Any]:
        """Counts for progress views and ``archlore runs list``."""
        rows = dict(self.db.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status"))
        evals = dict(self.db.execute(
            "SELECT eval_status, COUNT(*) FROM candidates WHERE eval_status IS NOT NULL"
            " GROUP BY eval_status"))
        best = self.db.execute("SELECT MAX(val_acc) FROM candidates WHERE eval_status='ok'").fetchone()[0]
        # the mutator said the parent already has the change: not a failure of the child
        no_ops = self.db.execute("SELECT COUNT(*) FROM candidates WHERE mutation_status='no_op'"
                                 " AND eval_status='failed'").fetchone()[0]
        return {"candidates": sum(rows.values()), "pending": rows.get("pending", 0),
                "evaluated": rows.get("evaluated", 0), "duplicates": rows.get("duplicate", 0),
                "valid": evals.get("ok", 0), "rejected": evals.get("rejected", 0),
                "failed": evals.get("failed", 0) + evals.get("timeout", 0) - no_ops,
                "no_ops": no_ops, "best_val_acc": best}
