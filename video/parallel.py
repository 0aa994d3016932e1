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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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


class _Windowed(Runner):
    """Submits items while fewer than ``window`` are in flight; yields in order."""

    window = 2

    def _submit(self, job: Callable, item):
        raise NotImplementedError

    def _result(self, handle):
        raise NotImplementedError

    def __call__(self, job: Callable, items: Iterable, errors: str = "raise") -> Iterator:
        pending: deque = deque()

        def collect():
            try:
                return self._result(pending.popleft())
            except Exception as e:
                if errors == "raise":
                    raise
                return e

        for item in items:
            pending.append(self._submit(job, item))
            if len(pending) >= self.window:
                yield collect()
        while pending:
            yield collect()


class ProcessRunner(_Windowed):
    """``workers`` local processes (spawned: a forked torch is not fork-safe), each task
    with ``threads`` torch threads (default: the CPUs shared out evenly)."""

    def __init__(self, workers: int, threads: int | None = None):
        super().__init__(threads or max(1, available_cpus() // workers))
        self.workers = workers
        self.window = 2 * workers  # one running and one waiting per worker
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        # Workers killed mid-task (Ctrl-C, SIGTERM) leave two queue semaphores that
        # multiprocessing's resource tracker then removes itself, with a warning on stderr
        # that is not ours to show; the tracker reads this when it starts.
        os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def __enter__(self) -> "ProcessRunner":
        self._pool = self._new_pool()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._pool.shutdown(wait=True)
            return
        # interrupted or failed: the workers' current tasks are of no use any more
        processes = list((self._pool._processes or {}).values())  # the executor offers no public kill
        for process in processes:
            process.kill()
        for process in processes:
            process.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, job: Callable, item):
        try:
            return self._pool.submit(_run_with_threads, self.threads, job, item)
        except BrokenProcessPool:  # a worker died earlier (its items already failed): start afresh
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(_run_with_threads, self.threads, job, item)

    def _result(self, future):
        try:
            return future.result()
        except BrokenProcessPool:
            raise WorkerLost("a worker process died (killed or out of memory)") from None


class RayRunner(_Windowed):
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
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=False)  # fmt: skip
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise InputError(f"cannot reach the Ray cluster at {self.address}: {e}".splitlines()[0]) from None
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        if self.requested_device == "cuda" and not gpus:
            raise UsageError("--device cuda was asked for but the Ray cluster has no GPU")
        self.device = "cuda" if self.requested_device in ("cuda", "auto") and gpus else "cpu"
        self._remote = ray.remote(_run_with_threads).options(
            num_cpus=self.threads, num_gpus=1 if self.device == "cuda" else 0, max_retries=RAY_RETRIES,
            name="ncodec-task",
        )  # fmt: skip
        # enough in flight to keep every CPU of the cluster busy, and one more round waiting
        self.window = max(2, 2 * int(resources.get("CPU", 1)) // self.threads)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import ray

        ray.shutdown()

    def _submit(self, job: Callable, item):
        return self._remote.remote(self.threads, job, item)

    def _result(self, ref):
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the job's own exception, re-raised as itself
            raise e.as_instanceof_cause() from None
        except ray.exceptions.RayError as e:  # the task was lost for good (retries spent)
            raise WorkerLost(f"a Ray task failed after {RAY_RETRIES} retries: {type(e).__name__}") from None


def make_runner(workers: int | None = None, ray: str | None = None, threads: int | None = None,
                device: str = "cpu") -> Runner:  # fmt: skip
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
