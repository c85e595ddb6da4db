"""Faults injected at chosen calls, through a profile function (not a test module).

benchmarks/reliability.py uses it too, so the benchmark's cases and the tests inject
the same faults.
"""

import sys

#: Every call into the file system that a save makes.
FILE_SYSTEM_CALLS = frozenset({
    "open", "write", "fsync", "rename", "replace", "mkdir", "chmod", "scandir", "unlink",
    "rmdir", "listdir", "flock", "serialize_file", "close", "lstat", "stat", "fdopen", "read",
})
# Closing a descriptor (which releases a lock) happens even when it reports an error, and
# an interrupt waits for it: a failure comes after these calls, never instead of them.
_ALWAYS_RUN = {"close", "flock", "setprofile"}


class FailAt:
    """A profile function raising ``error`` at the k-th event it counts.

    With ``only`` (names of C functions), it counts the moments just before and just
    after each of those calls, as a failing call or an interrupt would hit them; without,
    it counts every Python and C call. ``count`` is the number of events seen, so
    ``FailAt(None, ...)`` counts the events of a run.
    """

    def __init__(self, k, error: BaseException | None, only=None):
        self.k, self.error, self.only, self.count = k, error, only, 0

    def __call__(self, frame, event, arg):
        if event not in ("call", "c_call", "c_return"):
            return
        name = getattr(arg, "__name__", "") if event != "call" else ""
        if event == "c_call" and name in _ALWAYS_RUN:
            return
        if self.only is None:
            if event == "c_return":
                return
        elif name not in self.only:
            return
        elif event == "c_return" and frame.f_code.co_filename.endswith("shutil.py"):
            return  # shutil.rmtree closes twice if interrupted after a close: not ours
        self.count += 1
        if self.count == self.k:
            raise self.error


def count_events(call, only=None) -> int:
    """How many events :class:`FailAt` can pick from in ``call()``."""
    counter = FailAt(None, None, only)
    sys.setprofile(counter)
    try:
        call()
    finally:
        sys.setprofile(None)
    return counter.count


def fails_at(call, k, error: BaseException, only=None) -> bool:
    """Run ``call()`` with ``error`` raised at event k; whether the error came out of it
    (``False``: the code handled it, e.g. a best-effort cleanup)."""
    sys.setprofile(FailAt(k, error, only))
    try:
        call()
    except type(error):
        return True
    finally:
        sys.setprofile(None)
    return False


def _save_repeatedly(model, folder, times):
    for _ in range(times):
        try:
            model.save(folder)
        except Exception:  # noqa: BLE001 - the caller checks what the folder holds
            pass


def saving_processes(models, folder, times: int) -> list:
    """Started processes (forked), each saving one of ``models`` to ``folder`` ``times``
    times, racing each other."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_save_repeatedly, args=(model, folder, times))
               for model in models]
    for worker in workers:
        worker.start()
    return workers
