"""Where a command's CPU goes, by kind of process: what the test suite's wall time is made of on a small machine.

    uv run python bench/suite_cpu.py -- pytest -p no:cacheprovider tests/study/test_record.py

Runs the command and samples every process on the machine every `--interval` seconds (psutil), so Ray's
daemons and actors are counted, which `time` misses (they are not the command's waited-for children). Each
process is put in a kind by its command line (a Ray worker by the `ray::` name it takes once it runs an
actor: `ray::ImplicitFunc` is a Tune trial) and its CPU time is added up; the busy core-seconds of the
whole machine (`/proc/stat`) come with it. A process that ends between two samples loses at most one
interval of CPU. Prints a table, longest first; `--json` writes the figures too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil

KINDS = (
    ("ray::", None),  # a Ray worker: its actor class (ray::ImplicitFunc, ray::TrainController, ray::IDLE, ...)
    ("gcs_server", "ray gcs_server"),
    ("raylet", "ray raylet"),
    ("dashboard/agent.py", "ray dashboard agent"),
    ("runtime_env/agent", "ray runtime-env agent"),
    ("dashboard/dashboard.py", "ray dashboard"),
    ("log_monitor.py", "ray log monitor"),
    ("autoscaler/_private/monitor.py", "ray autoscaler monitor"),
    ("default_worker.py", "ray worker (starting)"),
    ("xdist", "pytest"),
    ("exec(eval(sys.stdin.readline()))", "pytest"),  # a pytest-xdist worker
    ("bin/pytest", "pytest"),
    ("bin/clipstudy", "clipstudy CLI"),
    ("bin/ray", "ray CLI"),
    ("bin/mlflow", "mlflow server"),
    ("chromium", "chromium"),
    ("multiprocessing", "python multiprocessing"),
)


def kind_of(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    for marker, kind in KINDS:
        if marker in text:
            if kind is None:
                return text[text.index(marker) :].split()[0]
            return kind
    return Path(cmdline[0]).name if cmdline else "?"


def busy_core_seconds() -> float:
    """All CPUs' non-idle time so far (user, nice, system, irq, softirq, steal), in seconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Seen:
    kind: str
    cpu: float
    command: str
    started_s: float
    """When it was first seen, in seconds after the command started."""


def sample(seen: dict[tuple[int, float], Seen], skip: set[int], elapsed: float) -> None:
    for process in psutil.process_iter(["pid", "create_time", "cmdline", "cpu_times"]):
        info = process.info
        if info["pid"] in skip or info["cpu_times"] is None:
            continue
        key = (info["pid"], info["create_time"])
        cpu = info["cpu_times"].user + info["cpu_times"].system
        kind, command = kind_of(info["cmdline"] or []), " ".join(info["cmdline"] or [])
        previous = seen.get(key)
        if previous is None:
            seen[key] = Seen(kind, cpu, command, elapsed)
        else:
            previous.cpu = max(previous.cpu, cpu)
            if kind not in ("ray worker (starting)", "?"):  # keep the name it had once it ran an actor (an
                previous.kind = kind  # exiting process's command line reads empty)
                previous.command = command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--processes", type=int, default=0, help="list this many of the costliest processes")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    before = {(p.pid, p.info["create_time"]) for p in psutil.process_iter(["create_time"])}
    seen: dict[tuple[int, float], Seen] = {}
    busy_start, start = busy_core_seconds(), time.monotonic()
    child = subprocess.Popen(command)
    skip = {psutil.Process().pid}
    while child.poll() is None:
        sample(seen, skip, time.monotonic() - start)
        time.sleep(args.interval)
    wall, busy = time.monotonic() - start, busy_core_seconds() - busy_start

    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    ours = [entry for key, entry in seen.items() if key not in before]  # not those started before the command
    for entry in ours:
        totals[entry.kind][0] += entry.cpu
        totals[entry.kind][1] += 1
    counted = sum(cpu for cpu, _ in totals.values())
    print(
        f"\n{' '.join(command)}\nexit {child.returncode}, wall {wall:.0f} s, machine busy {busy:.0f} core-s, "
        f"counted in processes {counted:.0f} core-s"
    )
    print(f"{'kind':<34}{'processes':>10}{'core-s':>10}{'per process':>13}")
    for kind, (cpu, count) in sorted(totals.items(), key=lambda item: -item[1][0]):
        print(f"{kind:<34}{count:>10}{cpu:>10.1f}{cpu / count:>13.1f}")
    costliest = sorted(ours, key=lambda entry: -entry.cpu)[: args.processes]
    if costliest:
        print(f"\n{'core-s':>8}{'started':>9}  command")
        for entry in costliest:
            print(f"{entry.cpu:>8.1f}{entry.started_s:>8.0f}s  {entry.command[:200]}")
    if args.json:
        figures = {
            "command": command,
            "exit": child.returncode,
            "wall_s": wall,
            "busy_core_s": busy,
            "kinds": {kind: {"processes": n, "core_s": cpu} for kind, (cpu, n) in totals.items()},
            "processes": [
                {"core_s": e.cpu, "started_s": e.started_s, "kind": e.kind, "command": e.command} for e in costliest
            ],
        }
        args.json.write_text(json.dumps(figures, indent=2))
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
