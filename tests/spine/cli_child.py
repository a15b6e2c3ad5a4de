"""The facesynth CLI run in a child process that reports its own peak memory: how the hostile-input
tests measure exit code, output, wall time and peak RSS of one command."""
from __future__ import annotations

import re
import subprocess
import sys
import time

# The child reports its own peak RSS: VmHWM belongs to the process image after exec, whereas
# ru_maxrss of a child also counts the pytest process it was forked from.
_CHILD = ("import sys\nfrom facesynth.cli import main\nrc = main(sys.argv[1:])\n"
          "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
          "print('PEAK_RSS_KB', hwm, file=sys.stderr)\nsys.exit(rc)\n")


def run_cli(args: list[str], prefix: tuple[str, ...] = (), **popen) -> tuple[int, str, float, float]:
    """(exit code, stdout+stderr, seconds, peak RSS in MB) of the CLI run in a child process;
    `prefix` runs it under another command (setpriv ...), `popen` goes to subprocess.run (cwd, env...)."""
    t0 = time.perf_counter()
    proc = subprocess.run([*prefix, sys.executable, "-c", _CHILD, *args], capture_output=True, timeout=120, **popen)
    seconds = time.perf_counter() - t0
    out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    peak = re.search(r"^PEAK_RSS_KB (\d+)$", out, re.M)
    return proc.returncode, out, seconds, int(peak.group(1)) / 1024 if peak else float("inf")


def assert_refused(result: tuple[int, str, float, float], code: int, *words: str,
                   max_rss_mb: float = 500, max_seconds: float = 10) -> str:
    """The child exited with `code`, said each of `words`, printed no traceback and no raw control
    character, within the time and memory limits of issue 23; returns its output."""
    rc, out, seconds, rss_mb = result
    assert rc == code, out
    assert "Traceback" not in out, out
    for w in words:
        assert w in out, (w, out)
    assert not any(ord(c) < 32 and c not in "\n" for c in out), repr(out)
    assert seconds < max_seconds, (seconds, out)
    assert rss_mb < max_rss_mb, (rss_mb, out)
    return out
