"""Speed of a batched InstructPix2Pix guidance sweep versus one pipeline call per scale.

The paper's code calls the stock diffusers pipeline once per text guidance scale. The
``instruct_pix2pix`` source denoises several scales in one batch with per-sample guidance.
Both run here on the same tiny random-weight pipeline (the plugin's test pipeline), in the same
process, warm, with the same seed; the script prints the median times, the speed-up and the
largest differences between the outputs (batched vs our own looped path, and vs the stock
pipeline).

Run: ``python benchmarks/pix2pix_sweep_speed.py [--scales 10] [--steps 10] [--size 64] [--threads 1]``
(needs the plugin: ``pip install -e plugins/propgrad-diffusion-edit``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch


def _median_seconds(runs: dict[str, Callable[[], torch.Tensor]], repeats: int) -> dict[str, tuple[float, torch.Tensor]]:
    """Median wall time and last output of each run; runs are interleaved so that load from
    other processes on a shared machine affects them alike."""
    outputs = {name: run() for name, run in runs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), outputs[name]) for name in runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, default=10, help="text guidance scales in the sweep")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps per edit")
    parser.add_argument("--size", type=int, default=64, help="image side (multiple of 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 gives stable figures on a shared machine, 0 keeps torch's default",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from propgrad_diffusion_edit.model_loading import load_pipeline
    from propgrad_diffusion_edit.sampler import Denoising, sweep_guidance
    from propgrad_diffusion_edit.testing import build_tiny_pipeline

    torch.manual_seed(0)
    instruction = "change the fur color to black"
    text = torch.linspace(1.05, 14.7, args.scales).tolist()
    image_scale = 1.5
    image = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))

    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_pipeline(str(build_tiny_pipeline(Path(tmp) / "tiny")), "cpu")

        def stock() -> torch.Tensor:
            return torch.cat(
                [
                    pipe(
                        instruction,
                        image=image,
                        num_inference_steps=args.steps,
                        guidance_scale=s,
                        image_guidance_scale=image_scale,
                        generator=torch.Generator().manual_seed(args.seed),
                        output_type="pt",
                    ).images
                    for s in text
                ]
            )

        def ours(batch_size: int) -> Callable[[], torch.Tensor]:
            return lambda: sweep_guidance(
                pipe,
                image,
                instruction,
                text,
                [image_scale] * len(text),
                Denoising(args.seed, args.steps),
                batch_size=batch_size,
            )

        timed = _median_seconds({"stock": stock, "looped": ours(1), "batched": ours(args.scales)}, args.repeats)
    (t_stock, out_stock), (t_looped, out_looped), (t_batched, out_batched) = timed.values()

    print(
        f"tiny InstructPix2Pix, {args.scales} text scales, {args.steps} steps, {args.size}x{args.size}, "
        f"CPU threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"stock pipeline, one call per scale : {t_stock * 1000:8.1f} ms")
    print(f"our loop, batch size 1             : {t_looped * 1000:8.1f} ms")
    print(f"our loop, batch size {args.scales:<3d}           : {t_batched * 1000:8.1f} ms")
    print(f"speed-up batched vs stock per-scale: {t_stock / t_batched:8.2f}x")
    print(f"speed-up batched vs our looped     : {t_looped / t_batched:8.2f}x")
    print(f"max |batched - our looped|         : {(out_batched - out_looped).abs().max().item():.3g}")
    print(f"max |batched - stock per-scale|    : {(out_batched - out_stock).abs().max().item():.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
