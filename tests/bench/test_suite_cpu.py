"""bench/suite_cpu.py: a command's CPU by kind of process, and its costliest processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end:\n    pass\n"


def test_a_busy_child_is_counted_and_listed(tmp_path):
    script = tmp_path / "busy_child.py"
    script.write_text(BUSY)
    figures = tmp_path / "cpu.json"
    command = [sys.executable, "bench/suite_cpu.py", "--interval", "0.05", "--processes", "2", "--json", str(figures)]
    done = subprocess.run(
        [*command, "--", sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(figures.read_text())
    assert report["exit"] == 0 and report["busy_core_s"] > 0
    (busiest,) = [p for p in report["processes"] if str(script) in p["command"]]
    assert 0.5 <= busiest["core_s"] < 5 and busiest["started_s"] < 5
    assert sum(kind["core_s"] for kind in report["kinds"].values()) >= busiest["core_s"]
    assert str(script) in done.stdout  # the costliest processes are printed with their command
