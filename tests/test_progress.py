"""Live progress: an in-place block on a terminal, plain timestamped lines anywhere else."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

from hpsearch.report.picture import Running
from hpsearch.run.progress import Progress

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n
COUNTS = {"finished": 3, "running": 2, "planned": 4, "failed": 1}
RUNNING = [Running("s1-t0003", "w-a", "cuda:0", 2, 5, 0.61234), Running("s1-t0004", "w-b", "cpu", None, 5, None)]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_redraws_a_block_in_place_with_every_running_trial():
    out = FakeTTY()
    p = Progress(out)
    p.update(1, 3, COUNTS, 10, 0.7, "val_acc", running=RUNNING)
    first = out.getvalue()
    assert "stage 1/3: 4/10 done (2 running, 4 queued, 1 failed, 0 diverged), stage best val_acc 0.7" in first
    assert "s1-t0003 on w-a (cuda:0): epoch 2/5, val_acc 0.6123" in first
    assert "s1-t0004 on w-b (cpu): epoch -/5, val_acc -" in first
    assert not first.endswith("\n")  # the cursor stays on the block
    p.update(1, 3, {**COUNTS, "finished": 4, "running": 1}, 10, 0.75, "val_acc", running=RUNNING[:1])
    second = out.getvalue()[len(first) :]
    assert second.startswith("\033[2A\r\033[J")  # up to the block's first line, clear, redraw
    assert "5/10 done" in second and "stage best val_acc 0.75" in second
    p.say("Stage 1 done")
    third = out.getvalue()[len(first) + len(second) :]
    assert third == "\033[1A\r\033[JStage 1 done\n"  # the block is erased, the message stays
    p.update(1, 3, COUNTS, 10, 0.7, "val_acc", running=RUNNING[:1])
    p.close_line()
    assert out.getvalue().endswith("\n")


def test_plain_mode_writes_timestamped_lines_without_control_characters():
    out = io.StringIO()
    p = Progress(out, interval=3600)
    p.update(2, 3, COUNTS, 10, None, "val_acc", running=RUNNING)
    p.update(2, 3, {**COUNTS, "finished": 4}, 10, 0.8, "val_acc", running=RUNNING)  # throttled
    p.update(2, 3, {"finished": 9, "diverged": 1}, 10, 0.9, "val_acc", running=[])  # last one always shows
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) == 2, text
    assert all(re.match(r"^\d\d:\d\d:\d\d stage 2/3: ", line) for line in lines)
    assert "running: s1-t0003 w-a cuda:0 ep 2 0.6123; s1-t0004 w-b cpu ep - -" in lines[0]
    assert "10/10 done" in lines[1] and "stage best val_acc 0.9" in lines[1]
    assert not CONTROL.search(text) and "\033" not in text


def test_eta_counts_progress_since_this_master_started():
    out = io.StringIO()
    p = Progress(out, interval=0)
    p._started -= 100  # 100 s into the stage
    p.update(1, 1, {"finished": 2, "planned": 8}, 10, 0.5, "acc")  # 2 done before: no rate yet
    assert "left in stage" not in out.getvalue()
    p.update(1, 1, {"finished": 4, "planned": 6}, 10, 0.5, "acc")  # 2 more in 100 s: 6 left -> 300 s
    assert "~5m00s left in stage" in out.getvalue().splitlines()[-1]


def test_a_real_pseudo_terminal_gets_ansi_and_a_pipe_does_not(tmp_path):
    """Progress() decides by isatty() of the real stdout, in a child process."""
    import pty

    script = textwrap.dedent("""
        from hpsearch.report.picture import Running
        from hpsearch.run.progress import Progress
        p = Progress(interval=0)
        for i in range(3):
            p.update(1, 2, {"finished": i, "running": 1, "planned": 2 - i}, 3, 0.5, "val_acc",
                     running=[Running("s1-t0001", "w1", "cpu", i + 1, 3, 0.5)])
        p.close_line()
        p.say("done")
    """)
    cmd = [sys.executable, "-c", script]
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 0, piped.stderr
    assert "\033" not in piped.stdout and "s1-t0001 w1 cpu ep 1" in piped.stdout
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "\033[1A\r\033[J" in text and "s1-t0001 on w1 (cpu): epoch 3/3" in text


def test_tty_skips_redrawing_an_unchanged_block():
    out = FakeTTY()
    p = Progress(out)
    p.update(1, 3, COUNTS, 10, 0.7, "val_acc", running=RUNNING)
    n = len(out.getvalue())
    p.update(1, 3, COUNTS, 10, 0.7, "val_acc", running=RUNNING)
    assert len(out.getvalue()) == n
    p.say("message")  # erased: the next update draws it again
    p.update(1, 3, COUNTS, 10, 0.7, "val_acc", running=RUNNING)
    assert out.getvalue().endswith("val_acc -")
