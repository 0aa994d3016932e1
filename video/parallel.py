"""Spreading independent work over local worker processes or a Ray cluster.

Two kinds of work spread: the segments of one clip (the codecs that encode in segments,
HNeRV and STDO: ``registry.SegmentedCodec``) and the files of a batch (``video/batch.py``).
A runner maps a job over items and yields the results in the items' order, lazily on
both sides: at most ``window`` items are in flight, so a long clip never sits in memory.

Determinism: every task runs with a fixed number of torch threads. A segment's bytes
depend on it (HNeRV's fit reduces gradients in a thread-count-dependent order; STDO does
not), so a bitstream encoded over workers equals the single-process one made with
``--threads`` set to the same per-task count, bit for bit, on the same kind of CPU.

Ray is optional (``pip install 'ncodec[ray]'``) and imported only when asked for.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable, Iterable, Iterator

from ncodec.codec.errors import InputError, UsageError

RAY_RETRIES = 3  # a task whose worker process dies runs again elsewhere, this many times


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_with_threads(threads: int, job: Callable, item):
    import torch

    torch.set_num_threads(threads)
    return job(item)


class WorkerLost(InputError):
    """A task's process died (killed, out of memory) and was not brought back."""


class Runner:
    """Runs ``job(item)`` for every item, here, one after another (the base the parallel
    runners extend). ``errors="return"`` yields a failed item's exception instead of
    raising it, so that one bad file does not stop a batch."""

    device = "cpu"

    def __init__(self, threads: int | None = None):
        if threads is not None and threads < 1:
            raise UsageError("--threads must be at least 1")
        self.threads = threads

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, job: Callable, items: Iterable, errors: str = "raise") -> Iterator:
        for item in items:
            try:
                yield _run_with_threads(self.threads, job, item) if self.threads else job(item)
            except Exception as e:
                if errors == "raise":
                    raise
                yield e


def _worker_main(conn, threads: int) -> None:
    """A local worker: run (job, item) messages until the pipe closes; answer (ok, value)."""
    import threading

    import torch
    from tqdm import tqdm

    import ncodec.video  # noqa: F401  (registers every codec, the classical ones included)

    torch.set_num_threads(threads)
    # tqdm's default lock is a multiprocessing semaphore; a worker killed while holding one
    # makes Python's resource tracker warn on the user's terminal. A worker's bars are off.
    tqdm.set_lock(threading.RLock())
    while True:
        try:
            job, item = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer = (True, job(item))
        except Exception as e:
            answer = (False, e)
        try:
            conn.send(answer)
        except Exception as e:  # a result or an exception that does not pickle
            conn.send((False, RuntimeError(f"{type(e).__name__}: {e}")))


class _Worker:
    def __init__(self, threads: int):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a forked torch is not fork-safe
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, threads), daemon=True)
        self.process.start()
        child.close()

    def stop(self, kill: bool) -> None:
        if kill:
            self.process.kill()
        self.conn.close()  # an idle worker's recv ends: it returns
        self.process.join()


class ProcessRunner(Runner):
    """``workers`` local processes, each task with ``threads`` torch threads (default: the
    CPUs shared out evenly). Each worker has its own pipe and gets a task only when idle,
    so nothing queues in between: a worker that dies (killed, out of memory) fails just
    its own item (WorkerLost) and is replaced, and stopping never waits on a queue."""

    def __init__(self, workers: int, threads: int | None = None):
        super().__init__(threads or max(1, available_cpus() // workers))
        self.workers = workers
        self.window = 2 * workers  # items taken ahead of the oldest unfinished one: bounds memory
        self._pool: list[_Worker] = []

    def __enter__(self) -> "ProcessRunner":
        self._pool = [_Worker(self.threads) for _ in range(self.workers)]
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for worker in self._pool:  # interrupted or failed: the running tasks are of no use any more
            worker.stop(kill=exc_type is not None)
        self._pool = []

    def __call__(self, job: Callable, items: Iterable, errors: str = "raise") -> Iterator:
        from multiprocessing.connection import wait

        items, done = iter(items), object()
        busy: dict[_Worker, int] = {}  # worker -> index of its item
        results: dict[int, tuple[bool, object]] = {}  # finished, waiting for their turn: (ok, value)
        taken = given = 0  # items taken from the input / results handed out
        exhausted = False
        try:
            while True:
                for worker in self._pool:
                    if worker in busy or exhausted or taken - given >= self.window:
                        continue
                    item = next(items, done)
                    if item is done:
                        exhausted = True
                        break
                    worker.conn.send((job, item))
                    busy[worker], taken = taken, taken + 1
                while given in results:
                    ok, value = results.pop(given)
                    given += 1
                    if not ok and errors == "raise":
                        raise value
                    yield value
                if exhausted and given == taken:
                    return
                if not busy:
                    continue
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                    index = busy.pop(worker)
                    try:
                        results[index] = worker.conn.recv()
                    except (EOFError, OSError):  # it died mid-task: replace it
                        results[index] = (False, WorkerLost("a worker process died (killed or out of memory)"))
                        worker.stop(kill=True)
                        self._pool[self._pool.index(worker)] = _Worker(self.threads)
        except (Exception, GeneratorExit):  # stopped early (an error, or the caller gave up)
            for worker in busy:  # their answers would reach the next call: replace them
                worker.stop(kill=True)
                self._pool[self._pool.index(worker)] = _Worker(self.threads)
            raise


class RayRunner(Runner):
    """Tasks on the Ray cluster at ``address`` ("auto": the one this environment names),
    each declaring ``threads`` CPUs and, when the work runs on CUDA, one GPU. A task whose
    worker dies is retried by Ray (RAY_RETRIES). ncodec must be installed on every node,
    and a batch's folders must be reachable under the same paths on every node."""

    def __init__(self, address: str, threads: int | None = None, device: str = "auto"):
        super().__init__(threads or 1)
        self.address = address
        self.requested_device = device
        self._remote = None

    def __enter__(self) -> "RayRunner":
        try:
            import ray
        except ImportError:
            raise UsageError("--ray needs Ray: pip install 'ncodec[ray]'") from None
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise InputError(f"cannot reach the Ray cluster at {self.address}: {e}".splitlines()[0]) from None
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        if self.requested_device == "cuda" and not gpus:
            raise UsageError("--device cuda was asked for but the Ray cluster has no GPU")
        self.device = "cuda" if self.requested_device in ("cuda", "auto") and gpus else "cpu"
        self._remote = ray.remote(_run_with_threads).options(
            num_cpus=self.threads,
            num_gpus=1 if self.device == "cuda" else 0,
            max_retries=RAY_RETRIES,
            name="ncodec-task",
        )
        # enough in flight to keep every CPU of the cluster busy, and one more round waiting
        self.window = max(2, 2 * int(resources.get("CPU", 1)) // self.threads)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import ray

        ray.shutdown()

    def __call__(self, job: Callable, items: Iterable, errors: str = "raise") -> Iterator:
        """Tasks submitted while fewer than ``window`` are unfinished; results in order."""
        import ray

        pending: deque = deque()

        def collect():
            try:
                return ray.get(pending.popleft())
            except ray.exceptions.RayTaskError as e:  # the job's own exception, re-raised as itself
                error = e.as_instanceof_cause()
            except ray.exceptions.RayError as e:  # the task was lost for good (retries spent)
                error = WorkerLost(f"a Ray task failed after {RAY_RETRIES} retries: {type(e).__name__}")
            if errors == "raise":
                raise error
            return error

        for item in items:
            pending.append(self._remote.remote(self.threads, job, item))
            if len(pending) >= self.window:
                yield collect()
        while pending:
            yield collect()


def make_runner(
    workers: int | None = None, ray: str | None = None, threads: int | None = None, device: str = "cpu"
) -> Runner:
    """The runner for ``--workers N`` / ``--ray ADDRESS`` / neither (use it as a context)."""
    if workers is not None and ray is not None:
        raise UsageError("choose --workers (local processes) or --ray (a cluster), not both")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if ray is not None:
        return RayRunner(ray, threads, device)
    if workers is not None and workers > 1:
        return ProcessRunner(workers, threads)
    return Runner(threads)
