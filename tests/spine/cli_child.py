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


def run_cli(args: list[str], **popen) -> tuple[int, str, float, float]:
    """(exit code, stdout+stderr, seconds, peak RSS in MB) of the CLI run in a child process;
    `popen` goes to subprocess.run (cwd, env, preexec_fn...)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, timeout=120, **popen)
    seconds = time.perf_counter() - t0
    out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    peak = re.search(r"^PEAK_RSS_KB (\d+)$", out, re.M)
    return proc.returncode, out, seconds, int(peak.group(1)) / 1024 if peak else float("inf")
