"""How long does a cold ``propgrad explain`` take beside ``import torch`` and its own forward passes?

Measured in one run, each figure in fresh subprocesses (median of ``--repeats``), after one discarded
run of the command (so numba's on-disk cache, Python's bytecode cache and the OS file cache are
warm; "cold" is a new process, not a new machine):

- ``import torch``: the wall time of ``python -c "import torch"``;
- the command's forward passes: the command run in one process with the loaded model's forward
  passes timed (a forward pre-hook and hook on the model ``load_model`` returns), the sequence's
  and the placebos' (``propgrad explain`` runs the size-aware placebo test by default) alike;
- the cold command: the wall time of ``python -c "from propgrad.cli import main; ..." explain ...``,
  what the ``propgrad`` script runs;
- the ratio cold / (import torch + forward passes) against the target 1.6 (issue 22).

Python's bytecode cache: torch and every installed package are imported from compiled ``.pyc``
files, and so is propgrad once installed (pip compiles a regular install; an editable one writes
its ``__pycache__`` on first import). An environment with ``PYTHONDONTWRITEBYTECODE`` set never
writes propgrad's, so each run compiles its ~110 modules from source (~0.18 s of CPU here) while
torch's are read compiled. The subprocesses therefore run with the bytecode cache on, in a private
folder of the run's temporary directory (``PYTHONPYCACHEPREFIX``: nothing is written beside the
sources), warmed by the discarded run; when the environment switches the cache off, the cold
command is also timed as the environment runs it, and printed beside (its ratio too).

``--importtime`` also prints the command's slowest imports (``python -X importtime``): each module
imported at run time rather than by another module's import, with its cumulative microseconds.

Usage::

    python benchmarks/startup.py [--repeats 5] [--importtime]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COMMAND = ["explain", "--image", "skimage:chelsea", "--source", "alpha_patch", "--target", "0"]
"""The measured command's arguments (``propgrad explain ...``)."""
RUN_COMMAND = "import sys; from propgrad.cli import main; sys.exit(main())"
"""What the ``propgrad`` console script runs."""
TARGET = 1.6
"""The cold command over ``import torch`` plus its forward passes (issue 22's target)."""


def bytecode_cache_off(env: dict[str, str]) -> bool:
    """Whether Python run with ``env`` writes no bytecode cache (``PYTHONDONTWRITEBYTECODE`` set, non-empty)."""
    return bool(env.get("PYTHONDONTWRITEBYTECODE"))


def cached_environment(env: dict[str, str], pycache: Path) -> dict[str, str]:
    """``env`` with the bytecode cache on, in ``pycache`` (``PYTHONPYCACHEPREFIX``), not beside the sources."""
    cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(pycache)
    return cached


def wall(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds of one fresh ``python`` subprocess with ``args`` (its output discarded; it must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def forward_seconds(cwd: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """The command's forward passes, timed in a fresh subprocess (this script's ``--forward-child``)."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--forward-child"],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_with_timed_forward() -> dict[str, float]:
    """Run the command in this process with the loaded model's forward passes timed; their seconds and count."""
    import torch

    from propgrad.cli import main, model_loading

    counters = {"forward_s": 0.0, "calls": 0, "images": 0}
    load_model = model_loading.load_model

    def before(module: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
        counters["start"] = time.perf_counter()

    def after(module: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        counters["forward_s"] += time.perf_counter() - counters.pop("start")
        counters["calls"] += 1
        counters["images"] += int(inputs[0].shape[0])

    def timed_load_model(*args: Any, **kwargs: Any) -> Any:
        model = load_model(*args, **kwargs)
        model.register_forward_pre_hook(before)
        model.register_forward_hook(after)
        return model

    model_loading.load_model = timed_load_model  # explain's run imports it from the module when it runs
    start = time.perf_counter()
    code = main(COMMAND)
    counters["command_s"] = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"propgrad {' '.join(COMMAND)} exited with {code}")
    return counters


def slowest_imports(text: str, count: int = 12) -> list[tuple[int, str]]:
    """The ``count`` slowest imports at run time (not below another import) of ``-X importtime``'s stderr.

    Returns:
        (cumulative microseconds, module) pairs, slowest first.
    """
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name[1:].startswith(" "):  # one space after the bar: imported by no other import
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per figure, medians (default: 5)")
    parser.add_argument("--importtime", action="store_true", help="also print the command's slowest imports")
    parser.add_argument("--forward-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.forward_child:
        print(json.dumps(run_with_timed_forward()))
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats must be a positive integer, got {args.repeats}")
    environment = dict(os.environ)
    uncached = bytecode_cache_off(environment)
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        env = cached_environment(environment, cwd / "pycache")
        command = ["-c", RUN_COMMAND, *COMMAND]
        wall(command, cwd, env)  # discarded: numba's cache, the bytecode cache, the OS's file cache
        wall(["-c", "import torch"], cwd, env)  # discarded: the bytecode of what the command does not import
        if uncached:
            wall(command, cwd, environment)
        torch_s, cold_s, forward, in_process, as_is_s = [], [], [], [], []
        for _ in range(args.repeats):  # interleaved, so a change of the machine's load touches every figure
            torch_s.append(wall(["-c", "import torch"], cwd, env))
            cold_s.append(wall(command, cwd, env))
            if uncached:
                as_is_s.append(wall(command, cwd, environment))
            child = forward_seconds(cwd, env)
            forward.append(child["forward_s"])
            in_process.append(child["command_s"])
        if args.importtime:
            proc = subprocess.run(
                [sys.executable, "-X", "importtime", *command],
                cwd=cwd,
                check=True,
                capture_output=True,
                text=True,
                env=env,
            )
    t_torch, t_cold, t_forward = (statistics.median(v) for v in (torch_s, cold_s, forward))
    ratio = t_cold / (t_torch + t_forward)
    print(f"propgrad {' '.join(COMMAND)}; medians of {args.repeats} fresh processes each")
    print(f"import torch:                       {t_torch:7.3f} s")
    calls = f"{child['calls']:.0f} calls, {child['images']:.0f} images"
    print(f"the command's forward passes:       {t_forward:7.3f} s ({calls})")
    print(f"the command in-process (no start):  {statistics.median(in_process):7.3f} s")
    print(f"cold command (wall):                {t_cold:7.3f} s (bytecode cached, as an installed package)")
    print(f"cold / (import torch + forward):    {ratio:7.3f}  (target <= {TARGET})")
    if uncached:
        t_as_is = statistics.median(as_is_s)
        print(
            f"cold, no bytecode cache (wall):     {t_as_is:7.3f} s (this environment's PYTHONDONTWRITEBYTECODE: "
            "propgrad compiled from source in every run)"
        )
        print(f"  its ratio:                        {t_as_is / (t_torch + t_forward):7.3f}")
    if args.importtime:
        print("slowest imports at run time (cumulative, -X importtime):")
        for micros, name in slowest_imports(proc.stderr):
            print(f"  {micros / 1e3:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
