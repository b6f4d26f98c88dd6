"""Start-up cost of the CLI: wall time, CPU time (user + system, which a busy machine inflates
less than wall time) and peak memory (max RSS) of commands that neither run the engine nor
talk to Prefect, on a throw-away SQLite catalog and local store.

Each command runs as a fresh process, several times; the medians are printed. With
`--compare DIR`, a second checkout (e.g. the previous main) is measured in the same run,
side by side, on the same machine and load.

    .venv/bin/python bench/cli_startup.py [--runs 5] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "atelier --help": ["--help"],
    "atelier catalog ls": ["catalog", "ls"],
    "atelier catalog add (1 image)": ["catalog", "add", "{picture}", "--role", "content"],
}


def measure(checkout: Path, args: list[str], workdir: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, MiB of max RSS) of one `atelier ARGS` process from `checkout`."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "ATELIER_DATABASE_URL": f"sqlite:///{workdir / 'c.db'}",
           "ATELIER_STORE_URL": f"file://{workdir / 'store'}"}
    command = [sys.executable, "-c", "from atelier.cli import app; app(prog_name='atelier')", *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed in {checkout}: {process.stderr.read().decode()}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run(checkout: Path, runs: int) -> dict[str, tuple[float, float, float]]:
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        rng = np.random.default_rng(0)
        subprocess.run([sys.executable, "-c", "from atelier.cli import app; app(prog_name='atelier')",
                        "db", "upgrade"], cwd=workdir, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(checkout),
                            "ATELIER_DATABASE_URL": f"sqlite:///{workdir / 'c.db'}"})
        for label, template in COMMANDS.items():
            figures = []
            for index in range(runs):
                picture = workdir / f"photo-{index}.png"  # a new image each time: a real add, not a duplicate
                Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(picture)
                figures.append(measure(checkout, [a.replace("{picture}", str(picture)) for a in template], workdir))
            results[label] = tuple(statistics.median(f[i] for f in figures) for i in range(3))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout to measure side by side")
    options = parser.parse_args()
    print(f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, "
          f"median of {options.runs} runs")
    checkouts = {"this tree": REPO_ROOT, **({"compare": options.compare.resolve()} if options.compare else {})}
    measured = {name: run(path, options.runs) for name, path in checkouts.items()}
    print(f"{'command':32}" + "".join(f"  {name:>24}" for name in measured))
    print(f"{'':32}" + "".join(f"  {'wall s':>7} {'cpu s':>7} {'MiB':>8}" for _ in measured))
    for label in COMMANDS:
        print(f"{label:32}" + "".join(f"  {m[label][0]:7.2f} {m[label][1]:7.2f} {m[label][2]:8.0f}"
                                      for m in measured.values()))


if __name__ == "__main__":
    main()
