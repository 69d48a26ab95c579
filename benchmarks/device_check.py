"""Does propgrad give the CPU's results on a device, and how fast? One prepared run, at most 4 minutes on one GPU.

Run it on a machine with one CUDA GPU (from the repository's root)::

    python benchmarks/device_check.py --device cuda

It prints one line per check (name, measured value, tolerance or target, status) and a summary, and
exits 1 when a check fails (2 for a device that does not exist here). Checks (``PASS``/``FAIL``) compare
the device's results with the CPU's; timings (``INFO``) print the measured ratio beside the target
the issue set, without failing the run (nothing has been timed on a GPU yet: these lines are the
figures the run is for):

1. **permutation p-values**, grid cells N in {21, 360} x C in {1, 1000} (float32 outputs with
   effects of graded strength, K permutations, seed 0): ``permutation_test`` on tensors on the
   device (the torch backend there) gives the CPU's p-values (the compiled backend) exactly, shuffle
   for shuffle.
2. **permutation time** of each cell, cold (the permutation memo cleared, so the call draws its
   permutations; median of ``--repeats``): device against CPU, and against the gather bound
   (K x N x C values at the rate the device gathers float32 rows; on the CPU the rate of
   ``benchmarks/permutation_speed.py``'s ``gather_rate`` times the workers the test's plan uses).
3. **attribute**: ``PropertyGradient(model).attribute(image, "alpha_patch", target)`` (31 steps, the
   patch on the square the model reads, the class the model predicts, the default placebo test) on
   ``benchmarks/placebo_cost.py``'s 4-block ConvMixer (random weights, the model that reads the
   patch's square) with the model and the image on the device equals the CPU's to float32 rounding:
   outputs within ``tol`` = 10 x the model's own float32 rounding error on the CPU (max |float32 -
   float64 softmax outputs| along the sequence, at least one float32 ulp of the largest output),
   statistics (the score, the placebos' scores: means of |differences of two outputs|) within
   2 ``tol``, permutation p-values within 2/(K+1), placebo p-values within 2/(M+1); and its time
   against the model's own forward passes on the device (target <= 1.25).
4. **benchmark slice**: ``propgrad.harness.run_benchmark`` (quick settings, K = 1000, the default
   placebo test, Integrated Gradients and DeepLIFT) on a two-model suite defined here (random-weight
   ConvMixers, so nothing trains) whose models sit on the device, against the same run with them on
   the CPU: every record (property and baseline cells) equal within the tolerances of 3 (each
   model's ``tol`` measured the same way), baseline change scores within a relative 1e-3, other
   fields exactly; a significance flag may differ only where its p-value lies within its tolerance
   of alpha. The suite's models are moved to the device and the harness runs the images where the
   models are, so the check needs no device option of ``run_benchmark``.

TF32 is switched off for the run (``torch.backends.cuda.matmul.allow_tf32``,
``torch.backends.cudnn.allow_tf32``): with it, convolutions on recent GPUs round to 10-bit mantissas
and no float32 tolerance holds. ``--device cpu`` runs every check CPU against CPU (equal results,
timings printed) in about a minute; the test suite runs it so the script does not go stale.
``--inject-mismatch CHECK`` perturbs the device's results of one check beyond its tolerance before
they are compared (one shuffle more for a p-value, three tolerances for a score): the check must then fail.

Usage::

    python benchmarks/device_check.py [--device cuda] [--permutations 10000] [--repeats 3] [--size 64]
        [--placebos 100] [--slice-images 4] [--checks permutation attribute benchmark]
        [--inject-mismatch {permutation,attribute,benchmark}]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

GRID = [(21, 1), (21, 1000), (360, 1), (360, 1000)]
"""The (N, C) cells of the permutation checks."""
ROUNDING_FACTOR = 10
"""How many times the CPU's own float32 rounding error a device's output may differ from the CPU's: the
outputs' tolerance is this times max |float32 - float64 outputs| of the model on the CPU (at least
:data:`ROUNDING_FLOOR` of the largest output), a statistic's twice that (a difference of two outputs)."""
ROUNDING_FLOOR = torch.finfo(torch.float32).eps
"""The smallest outputs' tolerance, relative to the largest output, before :data:`ROUNDING_FACTOR` (one ulp)."""
BASELINE_RTOL = 1e-3
"""Largest relative difference of a baseline's change score (a mean squared difference of two maps)."""
P_SHUFFLES = 2
"""Largest difference of a permutation p-value, in shuffles (units of 1 / (K + 1)), when the outputs differ
by float32 rounding: a null statistic that close to the observed one may fall on the other side. (The grid's
outputs are the same on both sides: their p-values must be identical.)"""
P_PLACEBOS = 2
"""The same for a placebo p-value, in units of 1 / (M + 1)."""
ATTRIBUTE_TARGET = 1.25
"""``attribute`` over the model's own forward passes (issue 22's target)."""
BOUND_TARGET = 2.0
"""A grid cell's cold time over its gather bound (the grid benchmark's target at N = 360, C = 10,000)."""
CHECKS = ("permutation", "attribute", "benchmark")


@dataclass(frozen=True)
class Line:
    """One printed line: a check (``PASS``/``FAIL``) or a timing (``INFO``)."""

    name: str
    measured: str
    target: str
    status: str

    def __str__(self) -> str:
        return f"{self.name:<34} {self.measured:<62} {self.target:<44} {self.status}"


@dataclass(frozen=True)
class Options:
    """The run's options, checked once."""

    device: torch.device
    permutations: int
    repeats: int
    size: int
    placebos: int
    slice_images: int
    inject: frozenset[str]
    checks: tuple[str, ...] = CHECKS


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type != "cpu":
        getattr(torch, device.type).synchronize()  # mps, xpu: the current device


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """(seconds, result) of one call, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def within(cpu: torch.Tensor, dev: torch.Tensor, atol: float) -> float:
    """max |cpu - dev| / atol (<= 1: within the tolerance; NaN on both sides is equal, on one side infinitely far)."""
    a, b = cpu.detach().double().cpu(), dev.detach().double().cpu()
    if a.shape != b.shape:
        return math.inf
    same = (a == b) | (a.isnan() & b.isnan())
    diff = torch.where(same, torch.zeros_like(a), (a - b).abs())
    worst = float(diff.max()) / atol if diff.numel() else 0.0
    return math.inf if math.isnan(worst) else worst


def status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- 1 and 2: the permutation test -------------------------------------------------------------


def grid_outputs(n: int, c: int) -> torch.Tensor:
    """(N, C) float32 outputs: N(0, 1) noise plus a linear trend whose strength grows over the columns,
    so the p-values range from about uniform (no effect) to 1 / (K + 1)."""
    gen = torch.Generator().manual_seed(n * 100_003 + c)
    noise = torch.randn(n, c, generator=gen)
    strength = 0.6 * torch.arange(1, c + 1) / c
    return (noise + torch.linspace(-1, 1, n)[:, None] * strength).float()


def gather_bound_rate(device: torch.device) -> float:
    """float32 values per second the device gathers by rows; on the CPU, that of all the test's workers is
    this rate times their number (``permutation_speed.gather_rate`` is one thread's)."""
    if device.type == "cpu":
        from permutation_speed import gather_rate

        return gather_rate()
    table = torch.randn(4096, 256, device=device)  # 4 MiB: resident in a GPU's L2 cache
    index = torch.randint(0, 4096, (65_536,), device=device)
    out = torch.empty(65_536, 256, device=device)  # one gather fills the device
    best = 0.0
    for _ in range(5):
        synchronize(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.2:
            for _ in range(10):
                torch.index_select(table, 0, index, out=out)
            synchronize(device)
            reps += 10
        best = max(best, reps * out.numel() / (time.perf_counter() - start))
    return best


def gather_bound(n: int, c: int, k: int, device: torch.device, rate: float) -> float:
    """Seconds the cell's K x N x C gathered values take at ``rate`` (times the CPU plan's workers)."""
    workers = 1
    if device.type == "cpu":
        from propgrad.stats.strategy import plan_gradient_test

        workers = plan_gradient_test(n, c, k, 4, torch.get_num_threads(), 128 * 2**20).workers
    return k * n * c / (rate * workers)


def permutation_checks(opts: Options) -> Iterable[Line]:
    """Lines of checks 1 and 2, one cell after the other."""
    from propgrad.stats.permutation import clear_cache, permutation_test
    from propgrad.stats.permutations import DEFAULT_STREAM

    k, dev, cpu = opts.permutations, opts.device, torch.device("cpu")
    rates = {"cpu": gather_bound_rate(cpu)}
    rates["device"] = rates["cpu"] if dev == cpu else gather_bound_rate(dev)
    for n, c in GRID:
        y = grid_outputs(n, c)
        y_dev = y.to(dev)

        def run(outputs: torch.Tensor) -> Any:
            return permutation_test(outputs, n_permutations=k, seed=0)

        p_cpu = run(y).p_value
        p_dev = run(y_dev).p_value.cpu()
        if "permutation" in opts.inject:
            p_dev = p_dev.clone()
            p_dev.view(-1)[0] += 1 / (k + 1)  # one shuffle more counted as extreme
        differ = int((p_cpu != p_dev).sum())
        shuffles = float((p_cpu.double() - p_dev.double()).abs().max()) * (k + 1)
        yield Line(
            f"permutation p-values N={n} C={c}",
            f"max |dp| = {shuffles:.3g}/(K+1); {differ} of {c} columns differ",
            f"identical (K={k}, seed 0, stream {DEFAULT_STREAM})",
            status(differ == 0 and p_dev.dtype == p_cpu.dtype),
        )
        seconds = {}
        for where, outputs in (("cpu", y), ("device", y_dev)):
            device = outputs.device
            cold = []
            for _ in range(opts.repeats):
                clear_cache()
                cold.append(timed(lambda outputs=outputs: run(outputs), device)[0])
            seconds[where] = statistics.median(cold)
        bounds = {w: gather_bound(n, c, k, d, rates[w]) for w, d in (("cpu", cpu), ("device", dev))}
        yield Line(
            f"permutation time N={n} C={c}",
            f"{dev.type} {seconds['device']:.4f} s, cpu {seconds['cpu']:.4f} s (cpu/{dev.type} "
            f"{seconds['cpu'] / seconds['device']:.2f}); /bound {seconds['device'] / bounds['device']:.2f}, "
            f"cpu {seconds['cpu'] / bounds['cpu']:.2f}",
            f"/bound <= {BOUND_TARGET:g} (not gating)",
            "INFO",
        )


# --- 3: attribute ------------------------------------------------------------------------------


class TimedModel(nn.Module):
    """A model whose forward passes are timed (the device's queue drained around each) and counted."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0
        self.images = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped model's outputs; adds the call's seconds and images to the counters."""
        seconds, out = timed(lambda: self.model(images), images.device)
        self.seconds += seconds
        self.images += images.shape[0]
        return out


def attribute_on(model: nn.Module, image: torch.Tensor, opts: Options, target: int) -> tuple[Any, float, TimedModel]:
    """(explanation, seconds of the call, the timed model) of one ``attribute`` call."""
    from propgrad import PropertyGradient

    timed_model = TimedModel(model)
    explainer = PropertyGradient(timed_model)
    side = opts.size
    params = {"steps": 31, "scale": 0.5, "position": (side // 4, side // 4)}  # the square the model reads

    def explain() -> Any:
        return explainer.attribute(
            image,
            "alpha_patch",
            target,
            source_params=params,
            n_permutations=opts.permutations,
            n_placebos=opts.placebos,
        )

    seconds, explanation = timed(explain, image.device)
    return explanation, seconds, timed_model


def output_tolerance(model: nn.Module, images: torch.Tensor) -> float:
    """The tolerance of the model's softmax outputs on ``images``: :data:`ROUNDING_FACTOR` times its own float32
    rounding error on the CPU (max |float32 - float64 outputs|), at least :data:`ROUNDING_FLOOR` of the largest."""
    model = copy.deepcopy(model).cpu()
    images = images.cpu()
    with torch.no_grad():
        p32 = model(images).softmax(-1).double()
        p64 = model.double()(images.double()).softmax(-1)
    error = float((p32 - p64).abs().max())
    return ROUNDING_FACTOR * max(error, ROUNDING_FLOOR * float(p64.abs().max()))


def attribute_checks(opts: Options) -> Iterable[Line]:
    """Lines of check 3: equal results, then the time against the forward passes."""
    from placebo_cost import _models

    from propgrad.core.images import example_image

    k, dev = opts.permutations, opts.device
    model_cpu = _models(opts.size)["reads"]
    model_dev = copy.deepcopy(model_cpu).to(dev)
    image = example_image("chelsea", size=opts.size)
    with torch.no_grad():
        target = int(model_cpu(image[None]).argmax())  # the predicted class
    runs: dict[str, list[tuple[Any, float, TimedModel]]] = {"cpu": [], "device": []}
    for _ in range(opts.repeats):  # interleaved, the first of each warms up (kernels, the source's first draw)
        runs["cpu"].append(attribute_on(model_cpu, image, opts, target))
        runs["device"].append(attribute_on(model_dev, image.to(dev), opts, target))
    e_cpu, e_dev = runs["cpu"][0][0], runs["device"][0][0]
    tol = output_tolerance(model_cpu, e_cpu.sequence.images)
    shift = 3 * tol if "attribute" in opts.inject else 0.0
    worst = {
        "outputs": within(e_cpu.outputs, e_dev.outputs, tol),
        "score": within(e_cpu.score, e_dev.score + shift, 2 * tol),
        "p": within(e_cpu.p_value, e_dev.p_value, P_SHUFFLES / (k + 1)),
    }
    if e_cpu.placebo is not None or e_dev.placebo is not None:
        m = e_cpu.placebo.n_placebos
        worst["placebo scores"] = within(e_cpu.placebo.placebo_scores, e_dev.placebo.placebo_scores, 2 * tol)
        worst["placebo p"] = within(e_cpu.placebo.p_value, e_dev.placebo.p_value, P_PLACEBOS / (m + 1))
    name, value = max(worst.items(), key=lambda item: item[1])
    yield Line(
        "attribute on device = cpu",
        f"worst |d|/tol {value:.3g} ({name}); score {float(e_cpu.score):.3g}, p {float(e_cpu.p_value):.3g}",
        f"outputs {tol:.2g}, stats {2 * tol:.2g}, p {P_SHUFFLES}/(K+1)",
        status(value <= 1.0),
    )
    ratios = {}
    for where, calls in runs.items():
        timed_calls = calls[1:] or calls  # the first call warmed up
        ratios[where] = statistics.median(seconds / model.seconds for _, seconds, model in timed_calls)
    _, seconds, model = runs["device"][-1]
    yield Line(
        "attribute time / forward passes",
        f"{dev.type} {ratios['device']:.2f}x ({seconds:.2f} s / {model.seconds:.2f} s, {model.images} images); "
        f"cpu {ratios['cpu']:.2f}x",
        f"<= {ATTRIBUTE_TARGET:g} (not gating)",
        "INFO",
    )


# --- 4: a slice of the benchmark ---------------------------------------------------------------


def slice_suite(images_per_class: int) -> Any:
    """A two-model suite of random-weight ConvMixers (nothing trains); :func:`run_slice` moves them."""
    from propgrad.plugins.parameters import build
    from propgrad.sources.base import InterventionSequence
    from propgrad.suites.base import BenchmarkSuite
    from propgrad.suites.convmixer import ConvMixer

    class DeviceSlice(BenchmarkSuite):
        """Smooth random 32 px images in two classes (by redness), two random ConvMixers, an alpha patch."""

        name = "device_slice"
        class_names = ("green", "red")
        interventions = ("alpha_patch",)

        def __init__(self) -> None:
            super().__init__(quick=True, seed=0)
            gen = torch.Generator().manual_seed(0)
            coarse = torch.rand(4 * images_per_class, 3, 4, 4, generator=gen)
            self._images = nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
            redness = self._images[:, 0].mean((1, 2)) - self._images[:, 1].mean((1, 2))
            self._labels = (redness.argsort().argsort() >= 2 * images_per_class).long()  # the redder half: red
            self._models = {}
            for seed in (0, 1):
                torch.manual_seed(seed)
                net = ConvMixer(dim=16, depth=2, kernel_size=5, patch_size=4, num_classes=2)
                self._models[f"convmixer_{seed}"] = net.eval()
            self._source = build("sources", "alpha_patch", {"steps": 9, "scale": 0.5})

        def settings(self) -> dict[str, Any]:
            return {"images": 4 * images_per_class, "size": 32}

        def models(self) -> dict[str, nn.Module]:
            return self._models

        def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
            return self._images, self._labels

        def intervene(self, intervention: str, index: int) -> InterventionSequence:
            return self._source.generate(self._images[index], seed=index)

        def accuracy_table(self) -> dict[str, dict[str, float]]:
            return {name: {"test": 0.5} for name in self._models}  # random weights: chance

        def images_per_class(self) -> int:
            return images_per_class

    return DeviceSlice()


SLICE_BASELINES = ("integrated_gradients", "deeplift")
"""The slice's baselines: maps proportional to the input's change, so their change scores are far above rounding."""


def run_slice(suite: Any, device: torch.device) -> tuple[float, list[dict[str, Any]]]:
    """(seconds, records) of the slice with ``suite``'s models on ``device``, into a temporary folder."""
    from propgrad.harness import preset, run_benchmark
    from propgrad.plugins import get_baseline

    settings = preset(
        quick=True,
        suites=("device_slice",),
        baselines=SLICE_BASELINES,
        baseline_classes={name: get_baseline(name) for name in SLICE_BASELINES},
    )
    for model in suite.models().values():
        model.to(device)
    with tempfile.TemporaryDirectory() as out:
        seconds, results = timed(
            lambda: run_benchmark(settings, Path(out), suites={"device_slice": suite}, plots=False), device
        )
    return seconds, sorted(results["records"], key=lambda r: [str(part) for part in r["key"]])


def field_tolerance(record: dict[str, Any], field: str, k: int, m: int, outputs: float) -> float | None:
    """The absolute tolerance of a numeric field of a record (None: it must be equal), ``outputs`` that of the
    record's model's outputs."""
    if record["kind"] == "baseline":
        return BASELINE_RTOL * abs(record[field]) + 1e-12 if field in ("score", "half_score") else None
    if field in ("p_value", "realisation_p_values"):
        return P_SHUFFLES / (k + 1)
    if field == "placebo_p_value":
        return P_PLACEBOS / (m + 1)
    if field == "curve":
        return outputs
    if field in ("score", "reference", "half_score", "half_reference", "largest_change", "realisation_scores"):
        return 2 * outputs
    return None


def compare_records(
    cpu: list[dict[str, Any]], dev: list[dict[str, Any]], settings: Any, tolerances: dict[str, float]
) -> tuple[float, str, list[str]]:
    """(worst |difference| / tolerance, its field, mismatches) of two runs' records; ``tolerances``: each model's
    outputs' (:func:`output_tolerance`)."""
    k, m, alpha = settings.n_permutations, settings.n_placebos, settings.alpha
    if [r["key"] for r in cpu] != [r["key"] for r in dev]:
        return math.inf, "keys", ["the runs hold different cells"]
    worst, worst_field, mismatches = 0.0, "-", []
    for a, b in zip(cpu, dev):
        outputs = tolerances[a["key"][3]]
        for field in sorted(set(a) | set(b)):
            x, y = a.get(field), b.get(field)
            tol = None
            if x is not None and y is not None and not isinstance(x, (bool, str)):
                tol = field_tolerance(a, field, k, m, outputs)
            if tol is not None:
                ratio = within(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64), tol)
                if ratio > worst:
                    worst, worst_field = ratio, field
                continue
            if x == y:
                continue
            p_field = {"significant": "p_value", "placebo_significant": "placebo_p_value"}.get(field)
            if p_field is not None and abs(a[p_field] - alpha) <= field_tolerance(a, p_field, k, m, outputs):
                continue  # a p-value at alpha within its tolerance: either decision is float rounding
            mismatches.append(f"{a['key']} {field}: {x!r} != {y!r}")
    return worst, worst_field, mismatches


def benchmark_checks(opts: Options) -> Iterable[Line]:
    """Lines of check 4: equal records, then the time of the slice (timed in a second run on each side)."""
    from propgrad.harness import preset

    settings = preset(quick=True, suites=("device_slice",), baselines=())
    suite = slice_suite(opts.slice_images)
    tolerances = {}
    for name, model in suite.models().items():
        sequences = [suite.intervene("alpha_patch", i).images for i in range(len(suite.test_set()[1]))]
        tolerances[name] = output_tolerance(model, torch.cat(sequences))
    _, cpu = run_slice(suite, torch.device("cpu"))
    _, dev = run_slice(suite, opts.device)
    t_cpu, _ = run_slice(suite, torch.device("cpu"))  # timed after a run on each side: one-time costs paid
    t_dev, _ = run_slice(suite, opts.device)
    if "benchmark" in opts.inject:
        dev = copy.deepcopy(dev)
        first = next(r for r in dev if r["kind"] == "property")
        first["score"] += 3 * tolerances[first["key"][3]]
    worst, field, mismatches = compare_records(cpu, dev, settings, tolerances)
    n_models = len({r["key"][3] for r in cpu})
    yield Line(
        "benchmark slice records equal",
        f"{len(cpu)} records, {n_models} models; worst |d|/tol {worst:.3g} ({field}); {len(mismatches)} mismatches",
        f"outputs {max(tolerances.values()):.2g}; baselines rel {BASELINE_RTOL:g}",
        status(worst <= 1.0 and not mismatches and len(cpu) > 0),
    )
    for mismatch in mismatches[:5]:
        print(f"    {mismatch}")
    yield Line(
        "benchmark slice time",
        f"{opts.device.type} {t_dev:.2f} s, cpu {t_cpu:.2f} s (cpu/{opts.device.type} {t_cpu / t_dev:.2f}x)",
        "(for the record)",
        "INFO",
    )


# --- the run -----------------------------------------------------------------------------------


def run_checks(opts: Options) -> list[Line]:
    """Run every check, printing each line as it comes; a check that raises is one FAIL line."""
    lines: list[Line] = []
    groups = {"permutation": permutation_checks, "attribute": attribute_checks, "benchmark": benchmark_checks}
    for name in opts.checks:
        group = groups[name]
        try:
            for line in group(opts):
                print(line, flush=True)
                lines.append(line)
        except Exception as error:  # one failing group must not hide the others' results
            traceback.print_exc(file=sys.stderr)
            line = Line(f"{name} (raised)", f"{type(error).__name__}: {error}"[:200], "no error", "FAIL")
            print(line, flush=True)
            lines.append(line)
    return lines


def parse(argv: list[str] | None) -> Options:
    """The command line, checked once (a bad device exits 2 with one line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="the device to check against the CPU (default: cuda)")
    parser.add_argument("--permutations", type=int, default=10_000, help="K of the grid and attribute (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, medians (default: 3)")
    parser.add_argument("--size", type=int, default=64, help="attribute's image size in pixels (default: 64)")
    parser.add_argument("--placebos", type=int, default=100, help="attribute's M, n_placebos (default: 100)")
    parser.add_argument("--slice-images", type=int, default=4, help="the benchmark slice's images per class")
    parser.add_argument(
        "--inject-mismatch",
        action="append",
        choices=CHECKS,
        default=[],
        help="perturb the device's results of this check beyond its tolerance (to see it fail)",
    )
    parser.add_argument(
        "--checks", nargs="+", choices=CHECKS, default=list(CHECKS), help="the checks to run (default: all)"
    )
    args = parser.parse_args(argv)
    for name in ("permutations", "repeats", "size", "placebos", "slice_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.size < 16:
        parser.error(
            f"--size must be at least 16 pixels (the ConvMixer's patches and the alpha patch), got {args.size}"
        )
    from propgrad.core.validation import check_device
    from propgrad.errors import PropgradError

    try:
        device = check_device(args.device, "--device")
    except PropgradError as error:
        parser.error(str(error))
    checks = tuple(name for name in CHECKS if name in args.checks)
    inject = frozenset(args.inject_mismatch)
    return Options(device, args.permutations, args.repeats, args.size, args.placebos, args.slice_images, inject, checks)


def main(argv: list[str] | None = None) -> int:
    """Run the checks and print the summary; 0 when every check passed, 1 otherwise."""
    opts = parse(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(opts.device) if opts.device.type == "cuda" else opts.device.type
    start = time.perf_counter()
    print(
        f"propgrad device check: {opts.device} ({name}) against the CPU; torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU thread(s), TF32 off; K = {opts.permutations}, {opts.repeats} repeat(s)"
        + (f"; injected mismatches: {', '.join(sorted(opts.inject))}" if opts.inject else "")
    )
    print(f"{'check':<34} {'measured':<62} {'tolerance / target':<44} status")
    lines = run_checks(opts)
    gates = [line for line in lines if line.status != "INFO"]
    failed = [line.name for line in gates if line.status == "FAIL"]
    print(
        f"summary: {len(gates) - len(failed)} of {len(gates)} checks passed, {len(failed)} failed"
        + (f" ({'; '.join(failed)})" if failed else "")
        + f"; {len(lines) - len(gates)} timings reported; {time.perf_counter() - start:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
