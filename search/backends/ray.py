"""``ray``: candidates scored on a Ray cluster (extra ``archlore[ray]``; ``ray`` is imported
only when this backend is built).

One long-lived actor per node (``ray_actor.NodeEvaluator``) owns that node's
``EvaluatorPool``: its own fork server and sandboxed workers, one GPU per worker on GPU nodes.
The driver (this process, which also keeps the run store) holds the queue: it sends candidate
source text and the run's ``EvalConfig`` as JSON to an actor with a free slot and gets back a
plain dict that it validates with ``Evaluation.model_validate``; nothing a sandboxed worker
wrote is unpickled anywhere.

Slots: a node offers ``workers`` evaluation slots (``--workers``), capped by its CPUs (or, in
GPU mode, its GPUs: one per worker); a node that declares the custom resource
``archlore_slots`` (``ray start --resources '{"archlore_slots": 8}'``) offers that many and the
actor reserves them. ``slots()`` is the sum over ready actors and follows the cluster: nodes
that join get an actor within ``refresh_s``, nodes that leave drop out.

Faults: when an actor or its node dies, every candidate it held is resubmitted to another
actor (at most ``max_retries`` times, then resolved ``failed`` at stage ``worker`` with the
losses as the reason). Each future is resolved exactly once; a late answer from a lost
attempt is dropped. A watchdog bounds every attempt at the evaluator's timeout plus a grace
(``ray.wait`` + ``ray.cancel``); a candidate that outlives it is resolved ``timeout`` and the
actor, whose pool may be wedged, is killed and replaced (its other candidates are
resubmitted).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from archlore.evaluator.records import EvalConfig, Evaluation
from archlore.search.backends.base import resolved
from archlore.search.records import Candidate
from archlore.search.registry import register_backend

log = logging.getLogger("archlore.search.ray")

SLOT_RESOURCE = "archlore_slots"
_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        from archlore.search.backends.ray_actor import actor_class

        _ACTOR_CLASS = actor_class()
    return _ACTOR_CLASS


@dataclass(eq=False)
class _Actor:
    node_id: str
    ip: str
    slots: int
    handle: Any
    state: str = "starting"  # starting | ready | dead
    running: set = field(default_factory=set)
    evaluated: int = 0
    created: float = field(default_factory=time.monotonic)
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"ray:{self.ip}/{self.node_id[:8]}"


@dataclass(eq=False)
class _Task:
    cid: int
    code: str
    future: Future
    cfg_json: str
    watchdog_s: float
    submitted: float = field(default_factory=time.monotonic)
    attempt: int = 0  # dispatches so far
    actor: _Actor | None = None
    ref: Any = None
    deadline: float = math.inf
    losses: list = field(default_factory=list)
    avoid: set = field(default_factory=set)  # nodes that lost it: resubmit elsewhere if possible
    done: bool = False


class RayBackend:
    """``submit(candidate) -> Future[Evaluation]`` over one actor per Ray node."""

    name = "ray"

    def __init__(self, eval_config: EvalConfig, *, address: str | None = None, workers: int = 2,
                 devices: list[str] | None = None, max_retries: int = 2,
                 watchdog_s: float | None = None, watchdog_grace_s: float = 30.0,
                 refresh_s: float = 1.0, startup_timeout_s: float = 180.0,
                 no_node_timeout_s: float = 600.0, ship_data: str = "auto",
                 max_start_failures: int = 3, init_kwargs: dict[str, Any] | None = None) -> None:
        import ray

        if ship_data not in ("auto", "always", "never"):
            raise ValueError(f"ship_data must be auto, always or never, not {ship_data!r}")
        self._ray = ray
        self.eval_config = eval_config
        self.address = address
        self.workers_per_node = max(1, int(workers))
        self.devices = list(devices or ["cpu"])
        # GPU mode: any device but "cpu" asks for one GPU per worker on nodes that have GPUs
        self.gpu_mode = any(d != "cpu" for d in self.devices)
        self.max_retries = max_retries
        # the evaluator kills a candidate at timeout_s; Ray gets that plus a grace on top
        self._watchdog_fixed = watchdog_s
        self.watchdog_grace_s = watchdog_grace_s
        self.watchdog_s = self._watchdog_for(eval_config)
        self.refresh_s = refresh_s
        self.no_node_timeout_s = no_node_timeout_s
        self.ship_data = ship_data
        self.max_start_failures = max_start_failures
        self._cfg_json = eval_config.model_dump_json()
        self._own_ray = not ray.is_initialized()
        if self._own_ray:
            # No address: start Ray here ("local"), rather than Ray's default of joining
            # whatever cluster was last started on this machine; $RAY_ADDRESS (set by
            # `ray job submit`) still wins. Worker logs stay in Ray's session logs.
            target = address or os.environ.get("RAY_ADDRESS") or "local"
            kwargs: dict[str, Any] = {"address": target, "include_dashboard": False,
                                      "logging_level": logging.WARNING, "log_to_driver": False,
                                      "namespace": "archlore"}
            ray.init(**{**kwargs, **(init_kwargs or {})})
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._events: queue.Queue = queue.Queue()
        self._actors: list[_Actor] = []
        self._start_failures: dict[str, int] = {}
        self._pending: deque[_Task] = deque()
        self._unresolved: set[_Task] = set()
        self._data: tuple[str, Any] | None = None  # (sha, ObjectRef) once packed and put
        self._no_node_since: float | None = None
        self._closed = False
        self._stop = threading.Event()
        self.started = time.monotonic()
        self.completions: deque[float] = deque(maxlen=10_000)
        self.resubmissions: list[dict[str, Any]] = []
        self.counts = {"submitted": 0, "completed": 0, "resubmitted": 0, "failed_after_retries": 0,
                       "watchdog": 0, "actors_lost": 0, "nodes_lost": 0}
        self._lost_nodes: set[str] = set()
        self._seen_nodes: set[str] = set()
        self._to_set: list[tuple[Future, Evaluation]] = []  # resolved, to be set unlocked
        self._alive_nodes = 0
        self._thread = threading.Thread(target=self._monitor, name="archlore-ray", daemon=True)
        self._refresh()
        self._wait_ready(startup_timeout_s)
        self._thread.start()

    # -- protocol ---------------------------------------------------------------------------------
    def slots(self) -> int:
        with self._lock:
            return sum(a.slots for a in self._actors if a.state == "ready")

    @property
    def workers(self) -> int:
        """Evaluation slots in the whole cluster now (what a pool's ``workers`` means)."""
        return self.slots()

    def submit(self, candidate: Candidate) -> Future[Evaluation]:
        if not candidate.code:
            return resolved(Evaluation(status="rejected", stage="policy",
                                       reason="candidate has no code to evaluate",
                                       dataset=self.eval_config.dataset,
                                       seed=self.eval_config.seed))
        return self.submit_code(candidate.code, cid=candidate.id)

    def submit_code(self, code: str, cfg: EvalConfig | None = None,
                    cid: int = -1) -> Future[Evaluation]:
        """Like ``EvaluatorPool.submit``: score ``code`` with ``cfg`` (default: the run's)."""
        cfg_json = self._cfg_json if cfg is None else cfg.model_dump_json()
        watchdog_s = self.watchdog_s if cfg is None else self._watchdog_for(cfg)
        fut: Future[Evaluation] = Future()
        task = _Task(cid=cid, code=code, future=fut, cfg_json=cfg_json, watchdog_s=watchdog_s)
        with self._lock:
            if self._closed:
                raise RuntimeError("the ray backend is closed")
            self.counts["submitted"] += 1
            self._pending.append(task)
            self._unresolved.add(task)
            self._dispatch()
        return fut

    def close(self, cancel: bool = False) -> None:
        """Wait for (or, with ``cancel``, drop) what is in flight; stop the actors; shut Ray
        down if this backend started it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not cancel:
                while self._unresolved and self._thread.is_alive():
                    self._idle.wait(0.5)
            dropped = list(self._unresolved)
            self._unresolved.clear()
            self._pending.clear()
            for task in dropped:
                task.done = True
                if task.ref is not None:
                    self._try(self._ray.cancel, task.ref)
        for task in dropped:
            task.future.cancel()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._flush()
        with self._lock:
            actors, self._actors = self._actors, []
        for actor in actors:
            if actor.state != "dead":
                self._try(self._ray.kill, actor.handle, no_restart=True)
        if self._own_ray:
            self._ray.shutdown()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            ready = [a for a in self._actors if a.state == "ready"]
            now = time.monotonic()
            window = min(300.0, max(now - self.started, 1e-9))
            recent = sum(1 for t in self.completions if now - t <= window)
            return {
                "backend": self.name, "address": self.address or "local",
                "nodes": len({a.node_id for a in ready}),
                "cluster_nodes": self._alive_nodes,
                "starting": sum(1 for a in self._actors if a.state == "starting"),
                "slots": sum(a.slots for a in ready),
                "in_use": sum(len(a.running) for a in ready),
                "queued": len(self._pending),
                "candidates_per_min": 60.0 * recent / window,
                **self.counts,
                "per_node": {a.label: {"slots": a.slots, "in_use": len(a.running),
                                       "evaluated": a.evaluated, "devices": a.info.get("devices")}
                             for a in ready},
                "resubmissions": list(self.resubmissions),
            }

    def _watchdog_for(self, cfg: EvalConfig) -> float:
        if self._watchdog_fixed is not None:
            return self._watchdog_fixed
        return cfg.timeout_s * 1.25 + self.watchdog_grace_s

    # -- actors -----------------------------------------------------------------------------------
    def _node_slots(self, node: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(slots, actor options) for one alive node; 0 slots: no actor there."""
        res = node.get("Resources") or {}
        cpus = int(res.get("CPU", 0))
        gpus = int(res.get("GPU", 0)) if self.gpu_mode else 0
        threads = max(1, int(self.eval_config.cpu_threads))
        declared = res.get(SLOT_RESOURCE)
        if declared is not None:
            slots = int(declared)
        elif gpus:
            slots = min(self.workers_per_node, gpus)
        else:
            slots = min(self.workers_per_node, max(1, cpus // threads)) if cpus else 0
        opts: dict[str, Any] = {"num_cpus": min(cpus, slots * threads)}
        if gpus:
            slots = min(slots, gpus)
            opts["num_gpus"] = slots  # one GPU per worker; Ray sets CUDA_VISIBLE_DEVICES
        if declared is not None:
            opts["resources"] = {SLOT_RESOURCE: slots}
        return max(0, slots), opts

    def _refresh(self) -> None:
        """Follow the cluster: drop actors of dead nodes, start one on each new node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            nodes = self._ray.nodes()
        except Exception as exc:  # noqa: BLE001 - GCS hiccup: try again next round
            log.warning("ray: cannot list nodes: %r", exc)
            return
        alive = {n["NodeID"]: n for n in nodes if n.get("Alive")}
        with self._lock:
            self._alive_nodes = len(alive)
            self._lost_nodes |= self._seen_nodes - set(alive)
            self._seen_nodes |= set(alive)
            self.counts["nodes_lost"] = len(self._lost_nodes)
            for actor in list(self._actors):
                if actor.state != "dead" and actor.node_id not in alive:
                    self._actor_lost(actor, f"node {actor.node_id[:8]} died")
            self._actors = [a for a in self._actors if a.state != "dead"]
            have = {a.node_id for a in self._actors}
            if self._stop.is_set():  # closing, drained: no new actors (while draining: yes)
                return
            for nid, node in alive.items():
                if nid in have or self._start_failures.get(nid, 0) >= self.max_start_failures:
                    continue
                slots, opts = self._node_slots(node)
                if slots <= 0:
                    continue
                devices = None if opts.get("num_gpus") else ["cpu"]
                handle = _actor_class().options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False),
                    max_restarts=0, max_task_retries=0, max_concurrency=slots + 8, **opts,
                ).remote(slots, devices, self.eval_config.dataset,
                         None if self.ship_data == "always" else self.eval_config.data_root)
                actor = _Actor(node_id=nid, ip=node.get("NodeManagerAddress", "?"), slots=slots,
                               handle=handle)
                self._actors.append(actor)
                handle.info.remote().future().add_done_callback(
                    partial(self._enqueue, "ready", actor))

    def _wait_ready(self, timeout: float) -> None:
        """Block until every actor started so far is ready (or failed), at most ``timeout``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if not any(a.state == "starting" for a in self._actors):
                    break
            try:
                self._handle(*self._events.get(timeout=0.2))
            except queue.Empty:
                pass
        if self.slots() == 0:
            self.close(cancel=True)
            raise RuntimeError(
                f"ray: no node offers evaluation slots after {timeout:.0f} s (each node needs "
                f"CPUs{' or GPUs' if self.gpu_mode else ''} free, or the {SLOT_RESOURCE} "
                f"resource, and archlore installed)")

    def _actor_lost(self, actor: _Actor, why: str, kill: bool = False) -> None:
        """Mark ``actor`` dead and resubmit everything it held (lock held)."""
        if actor.state == "dead":
            return
        was_ready = actor.state == "ready"
        actor.state = "dead"
        self.counts["actors_lost"] += int(was_ready)
        if not was_ready:
            self._start_failures[actor.node_id] = self._start_failures.get(actor.node_id, 0) + 1
        if kill:
            self._try(self._ray.kill, actor.handle, no_restart=True)
        for task in sorted(actor.running, key=lambda t: t.cid, reverse=True):
            self._requeue(task, f"{actor.label}: {why}")
        actor.running.clear()
        log.warning("ray: lost actor on %s (%s)", actor.label, why)

    def _requeue(self, task: _Task, why: str) -> None:
        task.losses.append(why)
        if task.actor is not None:
            task.avoid.add(task.actor.node_id)
        task.actor, task.ref, task.deadline = None, None, math.inf
        if len(task.losses) > self.max_retries:
            self.counts["failed_after_retries"] += 1
            self._resolve(task, Evaluation(
                status="failed", stage="worker", seed=self.eval_config.seed,
                dataset=self.eval_config.dataset, scored_by="ray",
                reason=(f"ray: evaluation lost {len(task.losses)} time(s), not resubmitted again "
                        f"(max_retries={self.max_retries}): " + "; ".join(task.losses))[:2000]))
            return
        self.counts["resubmitted"] += 1
        if len(self.resubmissions) < 1000:  # kept in describe(), which the engine stores
            self.resubmissions.append({"candidate": task.cid, "attempt": task.attempt + 1,
                                       "reason": why,
                                       "t": round(time.monotonic() - self.started, 3)})
        self._pending.appendleft(task)

    # -- dispatch and results ---------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Give queued candidates to ready actors with a free slot (lock held)."""
        while self._pending:
            free = [a for a in self._actors if a.state == "ready" and len(a.running) < a.slots]
            if not free:
                return
            task = self._pending.popleft()
            elsewhere = [a for a in free if a.node_id not in task.avoid] or free
            actor = max(elsewhere, key=lambda a: a.slots - len(a.running))  # spread the load
            task.attempt += 1
            task.actor = actor
            task.deadline = time.monotonic() + task.watchdog_s
            actor.running.add(task)
            try:
                task.ref = actor.handle.evaluate.remote(task.code, task.cfg_json)
            except Exception as exc:  # noqa: BLE001 - e.g. the actor handle is already gone
                self._actor_lost(actor, f"submit failed: {exc!r}", kill=True)
                continue
            task.ref.future().add_done_callback(
                partial(self._enqueue, "done", task, task.attempt))

    def _enqueue(self, kind: str, *args: Any) -> None:
        # called from Ray's completion threads: do nothing heavy here
        self._events.put((kind, *args))

    def _handle(self, kind: str, *args: Any) -> None:
        if kind == "done":
            self._on_done(*args)
        elif kind == "ready":
            self._on_ready(*args)
        elif kind == "data":
            self._on_data(*args)

    def _on_ready(self, actor: _Actor, fut: Future) -> None:
        try:
            info = fut.result()
        except Exception as exc:  # noqa: BLE001 - the actor could not start there
            with self._lock:
                self._actor_lost(actor, f"actor did not start: {exc!r}"[:500], kill=True)
            return
        with self._lock:
            if actor.state != "starting":
                return
            actor.info = info
            actor.ip = info.get("ip", actor.ip)
            ship = self.ship_data == "always" or (self.ship_data == "auto"
                                                  and info.get("needs_data"))
            data = self._packed_data() if ship else None
            if data is None:
                actor.state = "ready"
                self._dispatch()
                return
        sha, ref = data
        actor.handle.install_data.remote(sha, ref).future().add_done_callback(
            partial(self._enqueue, "data", actor))

    def _on_data(self, actor: _Actor, fut: Future) -> None:
        with self._lock:
            try:
                actor.info["data_root"] = fut.result()
            except Exception as exc:  # noqa: BLE001
                self._actor_lost(actor, f"dataset install failed: {exc!r}"[:500], kill=True)
                return
            if actor.state == "starting":
                actor.state = "ready"
                self._dispatch()

    def _packed_data(self) -> tuple[str, Any] | None:
        """The dataset files as one object-store object, packed and put once per run."""
        if self._data is None:
            from archlore.search.backends.ray_actor import pack_dataset

            packed = pack_dataset(self.eval_config.dataset, self.eval_config.data_root)
            if packed is None:
                return None
            self._data = (packed[0], self._ray.put(packed[1]))
        return self._data

    def _on_done(self, task: _Task, attempt: int, fut: Future) -> None:
        ray_exc = self._ray.exceptions
        with self._lock:
            if task.done or attempt != task.attempt or task.actor is None:
                return  # a lost attempt answering late, or already resolved: told once only
            actor = task.actor
            actor.running.discard(task)
            try:
                value = fut.result()
            except ray_exc.RayTaskError as exc:  # our actor code raised: not the node's fault
                self._resolve(task, Evaluation(
                    status="failed", stage="worker", seed=self.eval_config.seed,
                    dataset=self.eval_config.dataset, scored_by=actor.label,
                    reason=f"ray actor error: {str(exc)[-1500:]}"))
            except Exception as exc:  # noqa: BLE001 - actor/node/object lost: resubmit
                actor.running.add(task)  # so that _actor_lost requeues it with the others
                self._actor_lost(actor, type(exc).__name__, kill=True)
            else:
                try:
                    ev = Evaluation.model_validate(value)
                except ValueError as exc:
                    ev = Evaluation(status="failed", stage="worker", seed=self.eval_config.seed,
                                    dataset=self.eval_config.dataset,
                                    reason=f"ray: malformed result from {actor.label}: {exc}"[:1000])
                ev.scored_by = actor.label  # resubmissions: describe()["resubmissions"]
                actor.evaluated += 1
                self.counts["completed"] += 1
                self.completions.append(time.monotonic())
                self._resolve(task, ev)
            self._dispatch()

    def _resolve(self, task: _Task, ev: Evaluation) -> None:
        """Resolve a task's future exactly once (lock held; callbacks run after release)."""
        if task.done:
            return
        task.done = True
        self._unresolved.discard(task)
        self._idle.notify_all()
        self._to_set.append((task.future, ev))
        self._events.put(("noop",))  # wake the monitor, which sets the future

    # -- monitor thread ---------------------------------------------------------------------------
    def _monitor(self) -> None:
        next_refresh = time.monotonic() + self.refresh_s
        while not self._stop.is_set():
            try:
                item = self._events.get(timeout=0.25)
            except queue.Empty:
                item = None
            try:
                while item is not None:
                    self._handle(*item)
                    item = self._events.get_nowait()
            except queue.Empty:
                pass
            except Exception:  # noqa: BLE001 - the monitor must survive anything
                log.exception("ray backend monitor error")
            now = time.monotonic()
            try:
                if now >= next_refresh:
                    self._refresh()
                    next_refresh = now + self.refresh_s
                self._watchdog(now)
                self._check_no_nodes(now)
                with self._lock:
                    self._dispatch()
            except Exception:  # noqa: BLE001
                log.exception("ray backend monitor error")
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._to_set = self._to_set, []
        for fut, ev in batch:
            if not fut.done():
                fut.set_result(ev)

    def _watchdog(self, now: float) -> None:
        with self._lock:
            late = [t for a in self._actors for t in a.running if t.deadline < now]
            for task in late:
                if task.done or task.actor is None or task.ref is None:
                    continue
                ready, _ = self._ray.wait([task.ref], timeout=0)
                if ready:
                    continue  # its answer is on the way
                actor = task.actor
                self._try(self._ray.cancel, task.ref)
                actor.running.discard(task)
                self.counts["watchdog"] += 1
                self._resolve(task, Evaluation(
                    status="timeout", stage="worker", seed=self.eval_config.seed,
                    dataset=self.eval_config.dataset, scored_by=actor.label,
                    reason=(f"ray watchdog: no result from {actor.label} after "
                            f"{task.watchdog_s:g} s (the evaluator's own timeout + grace); "
                            f"its actor was replaced")))
                self._actor_lost(actor, "actor replaced by the watchdog", kill=True)

    def _check_no_nodes(self, now: float) -> None:
        with self._lock:
            if any(a.state in ("ready", "starting") for a in self._actors) or not self._pending:
                self._no_node_since = None
                return
            if self._no_node_since is None:
                self._no_node_since = now
                return
            if now - self._no_node_since < self.no_node_timeout_s:
                return
            while self._pending:
                task = self._pending.popleft()
                self._resolve(task, Evaluation(
                    status="failed", stage="worker", seed=self.eval_config.seed,
                    dataset=self.eval_config.dataset, scored_by="ray",
                    reason=f"ray: no node with evaluation slots for {self.no_node_timeout_s:g} s"))

    @staticmethod
    def _try(fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - best effort (the target may be gone)
            log.debug("ray: %s failed: %r", getattr(fn, "__name__", fn), exc)


@register_backend("ray")
def make_ray_backend(config: Any, space: Any) -> RayBackend:
    """``config.evaluation``: ``ray_address`` (None: start Ray here), ``workers`` (slots per
    node), ``devices``, ``timeout_s`` (via ``config.eval_config()``), ``max_retries``."""
    ev = config.evaluation
    return RayBackend(config.eval_config(), address=ev.ray_address, workers=ev.workers,
                      devices=ev.devices, max_retries=ev.max_retries)
