"""The built-in demonstration of ``propgrad track`` (``propgrad track --demo fur``): no downloads.

The fur suite's ConvMixer (the quick suite's architecture) is trained on the biased split
``dark_is_cat`` (dark fur goes with cats in 98.5 % of the training images) for E epochs from two
starts, a checkpoint saved before training (epoch 0) and after every epoch:

- ``random``: a random initialisation;
- ``pretrained``: the suite's model trained on the *unbiased* split (shape decides the class, fur
  carries no information): a start pre-trained on another task the suite generates, the analogue
  of the paper's ImageNet weights.

Both starts train with the same data, batches, learning-rate schedule (the suite's AdamW, one
cycle over the E epochs) and seed. The checkpoints are cached under the propgrad cache folder
(``<cache>/track-demo/<key>/<start>/``), so a second run only tracks. Then the fur score of a few
test images (the suite's fur intervention: the object's fur to the opposite extreme, the cat
column scored) is tracked along both runs' checkpoints through :class:`PropertyTracker`, and
:func:`expectation_checks` reads the outcome against what ``docs/track.md`` wrote down before
the first run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from propgrad.core.atomic_files import atomic_write, write_json
from propgrad.core.cache import cache_key, default_cache_dir
from propgrad.core.validation import check_int
from propgrad.suites.training import TrainingConfig, train_classifier
from propgrad.track.records import CheckpointScore

#: Bump when the demo's training changes the checkpoints it caches.
DEMO_VERSION = 1
STARTS = ("random", "pretrained")
BIASED_SPLIT, PRETRAINING_SPLIT = "dark_is_cat", "unbiased"
#: The scored column: the fur bias of ``dark_is_cat`` moves the cat probability.
CAT_COLUMN = 0
DONE_NAME = "done.json"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains and tracks (all part of its cache key but ``images`` and ``n_permutations``).

    Attributes:
        epochs: E, training epochs from each start.
        images: Test images tracked (the first ones of the suite's test set).
        n_permutations: K of the permutation test.
        seed: Seed of the suite, the initialisation and the batches.
    """

    epochs: int = 8
    images: int = 6
    n_permutations: int = 1000
    seed: int = 0


def demo_settings(*, epochs: Any = 8, images: Any = 6, n_permutations: Any = 1000, seed: Any = 0) -> DemoSettings:
    """Check the demo's settings once (positive integers; seed >= 0)."""
    return DemoSettings(
        epochs=check_int(epochs, "epochs", maximum=100, hint="training epochs of the demo (8 take a few minutes)"),
        images=check_int(images, "images", maximum=300, hint="test images tracked"),
        n_permutations=check_int(n_permutations, "n_permutations"),
        seed=check_int(seed, "seed", minimum=0),
    )


def _suite(settings: DemoSettings, cache_dir: Path | None, show_progress: bool) -> Any:
    from propgrad.suites.fur import FurSuite

    return FurSuite(quick=True, seed=settings.seed, cache_dir=cache_dir, show_progress=show_progress)


def checkpoint_folder(settings: DemoSettings, suite: Any, cache_dir: Path | None) -> Path:
    """Where the demo's checkpoints are cached: ``<cache>/track-demo/<key>``."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key("track-demo", DEMO_VERSION, suite.cache_key, settings.epochs, settings.seed, BIASED_SPLIT)
    return root / "track-demo" / key[:24]


def _save_checkpoint(path: Path, model: nn.Module, epoch: int, step: int) -> None:
    """One epoch's checkpoint ``{"model_state_dict", "epoch", "step"}`` (as ``torch.save`` users write it), atomic."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save({"model_state_dict": state, "epoch": epoch, "step": step}, tmp))


def train_with_checkpoints(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainingConfig,
    folder: Path,
    *,
    seed: int,
    show_progress: bool = False,
) -> list[Path]:
    """Train ``model`` as the suites do (:func:`propgrad.suites.training.train_classifier`: AdamW, one-cycle
    schedule, horizontal flips, one thread, deterministic kernels) for ``config.epochs`` epochs, saving
    ``epoch_00.pt`` before training and one checkpoint after every epoch; ``done.json`` is written last,
    so a cut-short run trains again."""
    paths = [folder / f"epoch_{e:02d}.pt" for e in range(config.epochs + 1)]
    train_classifier(
        images,
        labels,
        config,
        seed=seed,
        progress=f"track demo: train {folder.name}" if show_progress else None,
        start=model,
        on_epoch=lambda epoch, step, trained: _save_checkpoint(paths[epoch], trained, epoch, step),
    )
    write_json(folder / DONE_NAME, {"epochs": config.epochs, "checkpoints": [p.name for p in paths]})
    return paths


def demo_checkpoints(
    settings: DemoSettings, *, cache_dir: Path | None = None, show_progress: bool = False
) -> dict[str, Path]:
    """Train (or find cached) both starts' checkpoints; the folder of each start by name."""
    suite = _suite(settings, cache_dir, show_progress)
    root = checkpoint_folder(settings, suite, cache_dir)
    folders = {start: root / start for start in STARTS}
    if all((f / DONE_NAME).exists() for f in folders.values()):
        return folders
    config = suite.training_config()
    images, labels = suite.training_data(BIASED_SPLIT)
    for start, folder in folders.items():
        if (folder / DONE_NAME).exists():
            continue
        if start == "pretrained":
            model = config.build(len(suite.class_names))  # a copy: the suite's cached model stays untouched
            model.load_state_dict(
                {k: v.detach().clone() for k, v in suite.models()[PRETRAINING_SPLIT].state_dict().items()}
            )
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                model = config.build(len(suite.class_names))
        train_with_checkpoints(
            model,
            images,
            labels,
            replace(config, epochs=settings.epochs),
            folder,
            seed=settings.seed,
            show_progress=show_progress,
        )
    return folders


@dataclass(frozen=True)
class DemoResult:
    """Both starts' tracks and what the demo's expectation checks read.

    Attributes:
        tracks: The :class:`~propgrad.track.tracking.TrackResult` of each start.
        checks: :func:`expectation_checks` of the tracks.
        folders: Each start's checkpoint folder.
    """

    tracks: dict[str, Any]
    checks: dict[str, Any]
    folders: dict[str, Path]


def half_way_epoch(scores: Sequence[CheckpointScore]) -> float | None:
    """The first epoch whose mean score over the tracked images reaches the midpoint between the
    epoch-0 mean and the last epoch's mean (None when the mean does not rise)."""
    by_epoch: dict[float, list[float]] = {}
    for s in scores:
        by_epoch.setdefault(float(s.checkpoint.x), []).append(s.score[0])
    epochs = sorted(by_epoch)
    means = [float(np.mean(by_epoch[e])) for e in epochs]
    if len(means) < 2 or means[-1] <= means[0]:
        return None
    middle = (means[0] + means[-1]) / 2
    return next(e for e, m in zip(epochs, means) if e > epochs[0] and m >= middle)


def expectation_checks(tracks: dict[str, Any]) -> dict[str, Any]:
    """The outcome against the expectation written before the first run (``docs/track.md``).

    Per start: how many tracked images score higher at the last epoch than at epoch 0 (expected:
    most, i.e. more than half), the epoch-0 and last-epoch mean scores, the half-way epoch
    (:func:`half_way_epoch`), the checkpoints whose score fell from one epoch to the next
    ("forgetting") per image, and the checkpoints whose prediction flips. Then whether the
    pre-trained start's half-way epoch comes earlier than the random start's (expected: yes).
    """
    out: dict[str, Any] = {}
    for start, result in tracks.items():
        per_image = [result.of_image(i) for i in range(len(result.sequences))]
        rises = [s[-1].score[0] > s[0].score[0] for s in per_image]
        drops = [sum(b.score[0] < a.score[0] for a, b in zip(s, s[1:])) for s in per_image]
        out[start] = {
            "images": len(per_image),
            "images_higher_at_last_epoch": int(sum(rises)),
            "most_images_higher": bool(sum(rises) > len(per_image) / 2),
            "mean_score_epoch_0": float(np.mean([s[0].score[0] for s in per_image])),
            "mean_score_last_epoch": float(np.mean([s[-1].score[0] for s in per_image])),
            "half_way_epoch": half_way_epoch(result.scores),
            "score_drops_per_image": drops,
            "checkpoints_flipping_per_image": [sum(c.flipped for c in s) for s in per_image],
            "significant_per_image": [sum(c.significant[0] for c in s) for s in per_image],
        }
    if all(start in out for start in STARTS):
        a, b = out["pretrained"]["half_way_epoch"], out["random"]["half_way_epoch"]
        out["pretrained_learns_in_fewer_epochs"] = None if a is None or b is None else bool(a < b)
    return out


def run_demo(
    settings: DemoSettings,
    *,
    cache_dir: Path | None = None,
    out: Path | None = None,
    show_progress: bool = False,
) -> DemoResult:
    """Train (or reuse) both starts' checkpoints and track the fur score of the first test images along them."""
    from propgrad.track.tracking import Keeping, PropertyTracker

    folders = demo_checkpoints(settings, cache_dir=cache_dir, show_progress=show_progress)
    suite = _suite(settings, cache_dir, show_progress)
    config = suite.training_config()
    n_classes = len(suite.class_names)
    images = suite.test_data()["images"][: settings.images]
    sequences = [suite.intervene("fur", i) for i in range(settings.images)]
    tracks = {}
    for start, folder in folders.items():
        tracker = PropertyTracker(lambda: config.build(n_classes), folder, show_progress=show_progress)
        tracks[start] = tracker.track(
            images,
            sequences=sequences,
            target=CAT_COLUMN,
            n_permutations=settings.n_permutations,
            seed=settings.seed,
            keep=Keeping(
                store=None if out is None else Path(out) / start / "track-store.jsonl",
                model_id=f"fur suite ConvMixer, {start} start, {BIASED_SPLIT}",
            ),
        )
    return DemoResult(tracks, expectation_checks(tracks), folders)


def write_demo_outputs(result: DemoResult, out: Path, provenance: dict[str, Any]) -> list[Path]:
    """Each start's full track outputs in ``out/<start>/``, both starts' figures and ``demo.json`` in ``out``."""
    import matplotlib.pyplot as plt

    from propgrad.track.figures import FLIPS_FIGURE, save_track_figures, track_figures
    from propgrad.track.report import write_track_outputs

    written = []
    for start, track in result.tracks.items():
        written += write_track_outputs(Path(out) / start, track, {**provenance, "start": start})
    n_images = len(next(iter(result.tracks.values())).sequences)
    for image in range(n_images):
        figures = track_figures(
            {s: t.scores for s, t in result.tracks.items()},
            {s: t.summary() for s, t in result.tracks.items()},
            image=image,
        )
        if image > 0:  # the score against flips has one point per image already: once is enough
            plt.close(figures.pop(FLIPS_FIGURE))
        figures = {name if name == FLIPS_FIGURE else f"image{image}_{name}": fig for name, fig in figures.items()}
        written += save_track_figures(figures, Path(out))
    written.append(write_json(Path(out) / "demo.json", {**provenance, "checks": result.checks}))
    return written


def run_demo_command(args: argparse.Namespace) -> int:
    """``propgrad track --demo fur``: run the demo, print what came out, write ``--out``."""
    from propgrad.harness.versions import collect_versions
    from propgrad.track.report import summary_text

    k = DemoSettings.n_permutations if args.permutations is None else args.permutations
    settings = demo_settings(epochs=args.epochs, images=args.demo_images, n_permutations=k, seed=args.seed)
    result = run_demo(settings, out=args.out, show_progress=not args.no_progress)
    for start, track in result.tracks.items():
        print(f"{start} start ({len(track.checkpoints)} checkpoints, {result.folders[start]}):")
        print(summary_text(track.summary()))
    for start in STARTS:
        c = result.checks[start]
        print(
            f"{start}: {c['images_higher_at_last_epoch']} of {c['images']} images score higher at the last epoch than "
            f"at epoch 0 (mean {c['mean_score_epoch_0']:.4f} -> {c['mean_score_last_epoch']:.4f}); half-way epoch "
            f"{c['half_way_epoch']}; score drops between epochs per image {c['score_drops_per_image']}"
        )
    print(
        f"pre-trained start learns the bias in fewer epochs: {result.checks.get('pretrained_learns_in_fewer_epochs')}"
    )
    if args.out is not None:
        provenance = {
            "versions": collect_versions(),
            "demo": "fur",
            "settings": {
                "epochs": settings.epochs,
                "images": settings.images,
                "n_permutations": settings.n_permutations,
                "seed": settings.seed,
                "biased_split": BIASED_SPLIT,
                "pretraining_split": PRETRAINING_SPLIT,
            },
        }
        for path in write_demo_outputs(result, args.out, provenance):
            print(f"wrote {path}")
    return 0
