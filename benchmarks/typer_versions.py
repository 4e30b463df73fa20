"""What the typer version costs every command: `fader` start-up under two virtualenvs that differ
only in typer (and what it pulls in), with this checkout's package on PYTHONPATH.

    python -m venv /tmp/a && /tmp/a/bin/pip install "typer==0.28.0" platformdirs filelock
    python -m venv /tmp/b && /tmp/b/bin/pip install "typer==0.29.2" platformdirs filelock
    python benchmarks/typer_versions.py /tmp/a /tmp/b [--repeats 15]

Times whole processes (median, interleaved so load hits both alike) of `fader --version`, a
subcommand that fails fast, `fader --help` and `fader edit --help`, and prints each against the
first virtualenv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --version stops in the root command; `models path` parses a subcommand's options and fails fast
# (no such model) before any heavy import, as every command's start does.
COMMANDS = (["--version"], ["models", "path", "no-such-model"], ["--help"], ["edit", "--help"])
RUN = "import sys; sys.argv[0] = 'fader'; from fadercli.cli import main; main()"


def seconds(venv: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([str(venv / "bin" / "python"), "-c", RUN, *args], env=env, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venvs", nargs=2, type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    versions = [
        subprocess.run(
            [str(v / "bin" / "python"), "-c", "import typer; print(typer.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for v in args.venvs
    ]
    for command in COMMANDS:
        times: list[list[float]] = [[], []]
        for _ in range(args.repeats):
            for i, venv in enumerate(args.venvs):
                times[i].append(seconds(venv, command))
        medians = [statistics.median(t) for t in times]
        print(
            f"fader {' '.join(command):<30} typer {versions[0]} {medians[0]:.3f} s,"
            f" typer {versions[1]} {medians[1]:.3f} s ({medians[1] / medians[0]:.2f}x, {medians[1] - medians[0]:+.3f} s)"
        )


if __name__ == "__main__":
    main()
