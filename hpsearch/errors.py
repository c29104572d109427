"""The few exception types the CLI turns into one clear line and exit code 2."""

from __future__ import annotations


class HpsearchError(Exception):
    """Root of every error a user can fix; the CLI prints it as one line, exit code 2."""


class ConfigError(HpsearchError):
    """The sweep file is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str], source: str = "sweep file") -> None:
        self.problems = problems
        self.source = source
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            text = f"{source}: {len(problems)} problems: " + "; ".join(problems)
        super().__init__(text)


class StoreError(HpsearchError):
    """The sweep directory is missing, unreadable, corrupt or held by a lock."""


class DiskFull(StoreError):
    """A write into the sweep directory found no space (ENOSPC) or no quota (EDQUOT) left."""


def store_write_error(path: object, e: OSError) -> StoreError:
    """The StoreError for a failed write of `path`: DiskFull when the disk or quota is full."""
    import errno

    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", 122)):
        return DiskFull(f"cannot write {path}: the disk is full ({e.strerror}); free space, then resume")
    return StoreError(f"cannot write {path}: {e.strerror} (is the disk full or read-only?)")


def is_disk_full(e: BaseException) -> bool:
    """Whether an exception says the disk (or quota) is full: ours, or an OSError from user code."""
    import errno

    if isinstance(e, DiskFull):
        return True
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", 122))


class StopTrial(Exception):
    """Raised by `Trial.report` when the trial must stop (diverged or stopped by the master).

    Let it propagate out of your training function; the worker records why.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def failure_record(e: BaseException) -> tuple[str, str]:
    """(text for error.txt, one-line reason for the journal) of an exception being handled. The text
    is the traceback, after the exception's own `detail` when it has one (a command program's last
    log lines: its own traceback, not hpsearch's, is what the user needs first)."""
    import traceback

    detail = getattr(e, "detail", "")
    text = f"{detail}\n\nhpsearch's traceback:\n{traceback.format_exc()}" if detail else traceback.format_exc()
    return text, f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
