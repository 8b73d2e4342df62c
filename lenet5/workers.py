"""Work spread over worker processes, and Ctrl-C handled for all of them in the parent.

`worker_map(n)` gives a `map` over n processes (or this one). The processes are started afresh
("spawn"), never forked from a process whose PyTorch threads are running, so the calling script needs the
usual `if __name__ == "__main__":` guard (train.py has it).
"""

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import repeat
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event


@contextmanager
def worker_map(workers: int) -> Iterator[Callable]:
    """`map`, in this process or over a pool of `workers` processes.

    The pool always ends with close() and join(), never terminate(): Pool.terminate can wait forever for
    its task handler when tasks or results are larger than a pipe holds, as these are (CPython issues
    #78178 and #96995). On Ctrl-C, or an error in this process, the tasks already queued are skipped
    instead: the pool finishes once each worker is through the task in hand (a chunk of two), or through
    starting up if it was still starting."""
    if workers <= 1:
        yield map
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    with ctrl_c_held():  # the workers, started now, never see Ctrl-C: it is the parent's to handle
        pool = context.Pool(workers, initializer=watch, initargs=(stop,))
    try:
        yield lambda fn, *iterables: pool.starmap(unless_stopped, zip(repeat(fn), *iterables), chunksize=2)
    except BaseException:
        stop.set()
        raise
    finally:
        pool.close()
        with ctrl_c_held():  # a second Ctrl-C waits for the workers, rather than leave them to terminate()
            pool.join()


_stop: "Event"  # in a worker (given by `watch`): set once the parent has stopped waiting for results


def watch(stop: "Event") -> None:
    """A worker's start: keep the parent's stop flag, and leave Ctrl-C to the parent. On POSIX the
    worker was started with it blocked (`ctrl_c_held`); a Windows console sends it to every process."""
    global _stop
    _stop = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def unless_stopped(fn: Callable, *args: Any) -> Any:
    """fn(*args) in a worker, or None once the parent has stopped waiting for results."""
    return None if _stop.is_set() else fn(*args)


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back for a while, then deliver it. Processes started meanwhile inherit it
    blocked, so they never raise KeyboardInterrupt, not even while they import. Ignoring it (SIG_IGN)
    would protect them as well, but would lose a Ctrl-C pressed meanwhile: the run would go on."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    # multiprocessing's resource tracker, started with the first pool, unblocks SIGINT once it is up
    # (multiprocessing/resource_tracker.py): start it before the block.
    resource_tracker.ensure_running()
    in_main_thread = threading.current_thread() is threading.main_thread()
    pressed: list[int] = []
    if in_main_thread:  # Python's handler: for a Ctrl-C that another thread of the process receives
        previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)  # one this thread held arrives now
        if pressed:
            signal.raise_signal(signal.SIGINT)
