"""Shared helpers for the FinBI benchmarks: timing a command with the peak RSS of its whole
process tree (psutil sampling), machine description, min/median/max, result records.

Every benchmark script prints human-readable lines and, with --json FILE, appends result
records {"name", "value", "unit", "target", "ok", "command", "detail"} that run_all.py
collects into bench/results/latest.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
FINBI = str(Path(sys.executable).with_name("finbi"))


@dataclass
class Measured:
    seconds: float
    peak_rss: int  # bytes, sum over the process tree at the worst sample
    returncode: int
    stdout: str = ""
    stderr: str = ""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(
    cmd: list[str],
    env: dict | None = None,
    interval: float = 0.05,
    check: bool = True,
    cwd: str | None = None,
) -> Measured:
    """Run `cmd`, sampling the RSS of it and its children every `interval` seconds."""
    full_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    popen = subprocess.Popen(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    proc = psutil.Process(popen.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = popen.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    result = Measured(elapsed, peak[0], popen.returncode, out, err)
    if check and popen.returncode != 0:
        raise RuntimeError(
            f"command failed ({popen.returncode}): {' '.join(cmd)}\n{out[-3000:]}\n{err[-3000:]}"
        )
    return result


def python_measure(code: str, env: dict | None = None, **kw) -> Measured:
    """Measure a Python snippet in a fresh interpreter (so its RSS is its own)."""
    return measure([PYTHON, "-c", code], env=env, **kw)


def stats(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def fmt_stats(values: list[float], unit: str = "s", scale: float = 1.0, digits: int = 2) -> str:
    lo, med, hi = stats([v / scale for v in values])
    return f"{lo:.{digits}f} / {med:.{digits}f} / {hi:.{digits}f} {unit} (min/median/max, n={len(values)})"


def mib(n: float) -> float:
    return n / 1024**2


def machine() -> str:
    vm = psutil.virtual_memory()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb
    import pandas

    return (
        f"{psutil.cpu_count(logical=True)} cores ({cpu}), {vm.total / 1024**3:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, pandas {pandas.__version__}"
    )


def free_gib(path: str = "/tmp") -> float:
    return shutil.disk_usage(path).free / 1024**3


class Recorder:
    """Collects result records; writes them as JSON lines when asked."""

    def __init__(self, path: str | None):
        self.path = path
        self.records: list[dict] = []

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        target: str = "",
        ok: bool | None = None,
        command: str = "",
        detail: str = "",
    ) -> None:
        rec = {
            "name": name,
            "value": value,
            "unit": unit,
            "target": target,
            "ok": ok,
            "command": command,
            "detail": detail,
        }
        self.records.append(rec)
        flag = "" if ok is None else ("  [OK]" if ok else "  [MISSED]")
        print(
            f"RESULT {name}: {value:,.4g} {unit} {('target ' + target) if target else ''}"
            f"{flag} {detail}",
            flush=True,
        )
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


def finbi_env(home: str, **extra) -> dict:
    env = {
        "FINBI_HOME": home,
        "FINBI_TARGET": "local",
        "DAGSTER_HOME": "",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(extra)
    return env


def clean_env_home(home: str) -> dict:
    env = finbi_env(home)
    env.pop("DAGSTER_HOME")
    return env


def fresh_home(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
