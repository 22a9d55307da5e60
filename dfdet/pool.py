"""One worker pool for featurize, score (file lists and stdin) and degrade: results in input order, a bounded window
of work in flight, and a loud, prompt end when a worker process dies.

Why not `multiprocessing.Pool`: when a worker dies (the kernel's OOM killer, kill -9) `imap` waits for ever, and its
terminate can block on a queue lock the dead worker held. Why not `concurrent.futures.ProcessPoolExecutor`: it does
raise BrokenProcessPool, but on every pending future alike, after terminating the other workers, so it cannot say
which file the dead worker held. Here each worker has its own pipe and the parent waits on the pipes and the
workers' exit sentinels together: a death is seen at once, and the file it held is the oldest task that worker had
not answered. No helper threads (but the stdin reader) and no shared locks a killed worker could leave held.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TypeVar

from dfdet import interrupts
from dfdet.errors import DfdetError, UsageError, WorkerDied

T = TypeVar("T")
R = TypeVar("R")

DEPTH = 2  # tasks per worker: one running, one waiting in its pipe, so a worker never idles between tasks
WINDOW = 4  # per worker: tasks in flight plus results held back for order (memory flat in corpus size)
_ORPHAN_CHECK_S = 1.0  # a worker whose parent was killed notices within this and exits


class _Idle:
    def __repr__(self) -> str:
        return "IDLE"


IDLE = _Idle()  # yielded by a live (stdin) stream just before it blocks: the consumer flushes what it holds


def default_start_method() -> str:
    """`fork` on Linux (fast start; workers only run numpy/librosa), else `spawn`; DFDET_MP_START overrides."""
    wanted = os.environ.get("DFDET_MP_START")
    methods = multiprocessing.get_all_start_methods()
    if wanted:
        if wanted not in methods:
            raise UsageError(f"DFDET_MP_START={wanted!r} is not available here", f"use one of {', '.join(methods)}")
        return wanted
    return "fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn"


def one_blas_thread() -> Any:
    """Limit BLAS/OpenMP pools to one thread (identical sums for any -j, no oversubscription); a context manager."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _picklable(e: BaseException) -> BaseException:
    """`e`, or a DfdetError naming it when it would not survive the trip to the parent."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # any failure to round-trip: the parent could not receive it
        return DfdetError(f"{type(e).__name__}: {e}")


def _worker_main(conn: Any, work: Callable, initializer: Callable, initargs: tuple, parent: int) -> None:
    """A worker: set up once, then answer `(seq, task)` messages with `(seq, ok, result or error)` until None."""
    try:
        initializer(*initargs)
    except Exception as e:
        conn.send((-1, False, _picklable(e)))
        return
    while True:
        while not conn.poll(_ORPHAN_CHECK_S):
            if os.getppid() != parent:  # the parent was killed: nobody will read our results
                return
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        seq, task = msg
        try:
            out = (seq, True, work(task))
        except Exception as e:
            out = (seq, False, _picklable(e))
        try:
            conn.send(out)  # pickles first, then writes: a result that does not pickle writes nothing
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            conn.send((seq, False, DfdetError(f"result does not pickle ({type(e).__name__}: {e})")))


def _death(proc: Any) -> str:
    """How a worker process ended, in words."""
    proc.join(1.0)
    code = proc.exitcode
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with code {code}"


class _Worker:
    __slots__ = ("proc", "conn", "tasks")

    def __init__(self, proc: Any, conn: Any) -> None:
        self.proc, self.conn = proc, conn
        self.tasks: collections.deque[int] = collections.deque()  # seqs sent and not yet answered, oldest first


class _Reader:
    """A blocking input (stdin) pulled by a daemon thread; the pool waits on its wake-up pipe with the workers'.

    Started after the workers exist: a child forked while this thread holds stdin's lock could deadlock.
    """

    _END = object()

    def __init__(self, items: Iterable[Any], maxsize: int = 1024) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize)  # bounded: a fast producer waits, memory stays flat
        self.wake, self._ring = multiprocessing.Pipe(duplex=False)
        self.error: BaseException | None = None
        threading.Thread(target=self._run, args=(items,), daemon=True, name="dfdet-inputs").start()

    def _run(self, items: Iterable[Any]) -> None:
        try:
            for item in items:
                self._put(item)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            self.error = e
        self._put(self._END)

    def _put(self, item: Any) -> None:
        self.queue.put(item)
        with contextlib.suppress(OSError):  # closed: the run is over
            self._ring.send_bytes(b"")

    def get(self) -> Any:
        """The next item that has arrived; StopIteration at the end, queue.Empty if none yet."""
        while self.wake.poll():
            self.wake.recv_bytes()
        item = self.queue.get_nowait()
        if item is self._END:
            if self.error is not None:
                raise self.error
            raise StopIteration
        return item

    def close(self) -> None:
        for c in (self.wake, self._ring):
            c.close()


class WorkerPool:
    """`jobs` worker processes, each set up by `initializer(*initargs)` and running `work(task)` per task."""

    def __init__(
        self,
        jobs: int,
        work: Callable[[Any], Any],
        initializer: Callable[..., None],
        initargs: tuple = (),
        start_method: str | None = None,
    ) -> None:
        ctx = multiprocessing.get_context(start_method or default_start_method())
        self.workers: list[_Worker] = []
        try:
            for i in range(jobs):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker_main,
                    args=(theirs, work, initializer, initargs, os.getpid()),
                    name=f"dfdet-worker-{i + 1}",
                    daemon=True,
                )
                proc.start()
                theirs.close()
                self.workers.append(_Worker(proc, mine))
        except BaseException:
            self.close(kill=True)
            raise

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(kill=exc_type is not None)

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the workers: ask them to finish (or, with `kill`, terminate them at once); never blocks for long."""
        for w in self.workers:
            if kill:
                with contextlib.suppress(Exception):
                    w.proc.terminate()
            else:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
        for w in self.workers:
            w.proc.join(timeout)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1.0)
            w.conn.close()
        self.workers = []

    def imap(
        self,
        items: Iterable[T],
        payload: Callable[[T], Any] = lambda x: x,
        name: Callable[[T], str] = str,
        local: Callable[[T], Any] | None = None,
        live: bool = False,
    ) -> Iterator[tuple[T, Any]]:
        """(item, work(payload(item))) in input order; a worker's exception is raised when its turn comes.

        `local(item)`, if given and not None, is the item's result without a worker (e.g. a bad input found early).
        `live`: `items` may block (stdin): it is read by a thread, results come out as soon as the oldest is done,
        and IDLE is yielded before each wait. At most WINDOW x jobs items are taken but not yet handed out. A worker
        that dies raises WorkerDied naming `name(item)` of the item it held, with the finished results attached.
        """
        reader = _Reader(items) if live else None
        source = iter(items) if reader is None else None
        window = WINDOW * len(self.workers)
        order: collections.deque[int] = collections.deque()  # seqs taken, not yet handed out, input order
        held: dict[int, T] = {}
        done: dict[int, tuple[bool, Any]] = {}
        seq, ended = 0, False

        def finished() -> list[tuple[T, Any]]:
            return [(held[s], done[s][1]) for s in order if done.get(s, (False,))[0]]

        try:
            while True:
                while not ended and len(order) < window:
                    free = min(self.workers, key=lambda w: len(w.tasks))
                    if len(free.tasks) >= DEPTH:
                        break
                    try:
                        item = reader.get() if reader is not None else next(source)  # type: ignore[arg-type]
                    except StopIteration:
                        ended = True
                        break
                    except queue.Empty:
                        break
                    order.append(seq)
                    held[seq] = item
                    early = local(item) if local is not None else None
                    if early is not None:
                        done[seq] = (True, early)
                    else:
                        try:
                            free.conn.send((seq, payload(item)))
                        except OSError:  # it died since the last look
                            self._died(free, done, lambda s: name(held[s]), finished)
                        free.tasks.append(seq)
                    seq += 1
                if order and order[0] in done:
                    s = order.popleft()
                    ok, value = done.pop(s)
                    item = held.pop(s)
                    if not ok:
                        raise value
                    yield item, value
                    continue
                if ended and not order:
                    return
                if reader is not None:
                    yield IDLE
                room = len(order) < window and any(len(w.tasks) < DEPTH for w in self.workers)
                waiting = reader.wake if reader is not None and not ended and room else None  # else: no busy loop
                self._wait(done, waiting, lambda s: name(held[s]), finished)
        finally:
            if reader is not None:
                reader.close()

    def _wait(
        self,
        done: dict[int, tuple[bool, Any]],
        source: Any,
        name_of: Callable[[int], str],
        finished: Callable[[], list],
    ) -> None:
        """Block until a result, a new input or a worker's exit; results go into `done`."""
        by_conn = {w.conn: w for w in self.workers}
        by_sentinel = {w.proc.sentinel: w for w in self.workers}
        ready = multiprocessing.connection.wait([*by_conn, *by_sentinel, *([source] if source is not None else [])])
        for r in ready:
            if r in by_conn:
                try:
                    self._receive(by_conn[r], done)
                except (EOFError, OSError):  # its end closed or reset: it died; the sentinel says how
                    self._died(by_conn[r], done, name_of, finished)
        for r in ready:
            if r in by_sentinel:
                self._died(by_sentinel[r], done, name_of, finished)

    def _receive(self, w: _Worker, done: dict[int, tuple[bool, Any]]) -> None:
        s, ok, value = w.conn.recv()
        if s < 0:  # its initializer failed
            raise value
        w.tasks.remove(s)
        done[s] = (ok, value)

    def _died(
        self,
        dead: _Worker,
        done: dict[int, tuple[bool, Any]],
        name_of: Callable[[int], str],
        finished: Callable[[], list],
    ) -> None:
        """A worker exited mid-run: keep every result already sent, then raise WorkerDied naming its file."""
        for w in self.workers:  # results written before the death (by it or the others) are finished work
            with contextlib.suppress(EOFError, OSError):
                while w.conn.poll():
                    self._receive(w, done)
        interrupts.check()  # Ctrl-C / SIGTERM to the whole group kills workers too: that is an interrupt
        err = WorkerDied(name_of(dead.tasks[0]) if dead.tasks else None, _death(dead.proc))
        err.finished = finished()
        self.close(kill=True)
        raise err


@contextlib.contextmanager
def ordered_results(
    items: Iterable[T],
    serial: Callable[[Any], R],
    work: Callable[[Any], R],
    initializer: Callable[..., None],
    initargs: tuple = (),
    jobs: int = 1,
    start_method: str | None = None,
    warm: Callable[[], None] | None = None,
    *,
    payload: Callable[[T], Any] = lambda x: x,
    name: Callable[[T], str] = str,
    local: Callable[[T], Any] | None = None,
    live: bool = False,
) -> Iterator[Iterator[Any]]:
    """(item, result) pairs in input order: `serial(payload(item))` in-process when jobs <= 1, else
    `work(payload(item))` in a WorkerPool (see WorkerPool.imap for `name`, `local`, `live`).

    The pool (of picklable `work` and `initializer`, which sets up each worker; `init_worker` or one that calls it, so
    Ctrl-C is left to the parent) starts on entry, before any output file is opened, and is stopped on exit, killed
    on errors and interrupts. Both paths run with one BLAS thread (the initializer sets the workers'), so sums are
    identical for any -j; `warm` runs once before forking so workers inherit its imports and tables.
    """
    n = len(items) if isinstance(items, Sized) and not live else None
    if jobs <= 1 or (n is not None and n <= 1):
        with one_blas_thread():
            yield _serial(items, serial, payload, local, live)
        return
    method = start_method or default_start_method()
    if method == "fork" and warm is not None:
        warm()
    with WorkerPool(min(jobs, n) if n else jobs, work, initializer, initargs, method) as pool:
        yield pool.imap(items, payload, name, local, live)


def _serial(
    items: Iterable[T], serial: Callable[[Any], R], payload: Callable[[T], Any], local: Callable | None, live: bool
) -> Iterator[Any]:
    for item in items:
        early = local(item) if local is not None else None
        yield item, (early if early is not None else serial(payload(item)))
        if live:
            yield IDLE  # the next item may not have arrived yet
