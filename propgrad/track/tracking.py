"""The property score along a model's training checkpoints (the paper's Sec. 4.3): :class:`PropertyTracker`.

The intervention sequence of every image is generated once and reused for every checkpoint;
checkpoints load one at a time into one model (:func:`propgrad.track.checkpoints.load_checkpoint`),
and each is scored through the explainer's road: one stacked forward pass over every image's
original and steps (:func:`propgrad.explain.scoring.sequence_outputs`), the paper's permutation test
and the flips (:func:`propgrad.explain.scoring.score_outputs`), the placebo test when asked
(:func:`propgrad.explain.scoring.placebo_tests`), and the explanation's corrections and decisions
(the explainer's own). Given a store, every finished checkpoint is written at once (atomic,
checksummed lines of :class:`propgrad.harness.store.CellStore`, keyed by the checkpoint's path, size
and modification time), so an interrupted track continues from the last finished checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from propgrad.core.forward import OutputTransform, RunSettings, run_settings
from propgrad.core.progress import progress_bar
from propgrad.core.validation import check_images
from propgrad.errors import InvalidParameterError
from propgrad.explain.arguments import (
    Target,
    as_batch,
    resolve_source,
    resolve_targets,
    resolve_test_settings,
    with_forward_args,
)
from propgrad.explain.explainer import explanation_of
from propgrad.explain.result import Explanation
from propgrad.explain.scoring import (
    PropertyAxis,
    placebo_pools,
    placebo_tests,
    score_outputs_together,
    sequence_outputs,
)
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.sources.placebo_sequences import PlaceboPool
from propgrad.stats.corrections import warn_if_infeasible
from propgrad.stats.settings import DEFAULT_PLACEBOS, TestSettings
from propgrad.track.checkpoints import Checkpoint, check_same_architecture, find_checkpoints, load_checkpoint
from propgrad.track.records import CheckpointInfo, CheckpointScore, TrackSummary, pearson_columns, summarise, tidy_rows

_WARN_AT_CALLER = 4
"""``stacklevel`` of a warning about the test that points at the caller of :meth:`PropertyTracker.track`."""


class TrackSink(Protocol):
    """Where each finished checkpoint's scores also go (TensorBoard, MLflow: :mod:`propgrad.track.logging_sinks`)."""

    def log(self, scores: Sequence[CheckpointScore]) -> None:
        """Log one checkpoint's scores (one per image)."""

    def close(self) -> None:
        """Flush and close."""


@dataclass(frozen=True)
class Keeping:
    """Where each finished checkpoint of :meth:`PropertyTracker.track` also goes.

    Attributes:
        store: A ``.jsonl`` file keeping every finished checkpoint (created if missing; atomic,
            checksummed lines of :class:`propgrad.harness.store.CellStore`); a rerun with the same
            model, images, sequences and test reads them back instead of scoring them again. None:
            nothing is kept.
        sinks: Loggers each newly scored checkpoint goes to (:mod:`propgrad.track.logging_sinks`).
        model_id: What the model is, for the store (default: the model's class).
    """

    store: str | Path | None = None
    sinks: Sequence[TrackSink] = ()
    model_id: str | None = None


@dataclass(frozen=True)
class TrackTiming:
    """Where the time of one :meth:`PropertyTracker.track` call went (seconds, this session only).

    Attributes:
        total: The whole call, sequence generation and store writes included.
        load: Loading checkpoints into the model.
        forward: The model's forward passes over the sequences (and placebos).
        test: The tests, flips and records.
        generate: Generating the intervention sequences (once).
        computed: Checkpoints scored in this session.
        resumed: Checkpoints read back from the store.
    """

    total: float
    load: float
    forward: float
    test: float
    generate: float
    computed: int
    resumed: int


@dataclass(frozen=True)
class TrackResult:
    """The scores of every tracked image under every checkpoint.

    Attributes:
        scores: One :class:`~propgrad.track.records.CheckpointScore` per checkpoint and image,
            ordered by checkpoint, then image.
        checkpoints: The checkpoints, in training order.
        sequences: The one intervention sequence of each image, reused for every checkpoint.
        test: The test's settings.
        timing: Where this call's time went.
    """

    scores: tuple[CheckpointScore, ...]
    checkpoints: tuple[CheckpointInfo, ...]
    sequences: tuple[InterventionSequence, ...]
    test: TestSettings
    timing: TrackTiming = field(compare=False)

    def rows(self, *, with_curves: bool = False) -> list[dict[str, Any]]:
        """One tidy row per checkpoint, image and scored column (:func:`~propgrad.track.records.tidy_rows`)."""
        return tidy_rows(self.scores, with_curves=with_curves)

    def summary(self) -> list[TrackSummary]:
        """The paper's Tab. 12 per image and scored column (:func:`~propgrad.track.records.summarise`)."""
        return summarise(self.scores)

    def of_image(self, image: int) -> list[CheckpointScore]:
        """The scores of one image, in checkpoint order."""
        return [s for s in self.scores if s.image == image]


def checkpoint_key(path: Path) -> str:
    """A checkpoint's identity in the store: its path, size and modification time (newest file of a folder)."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    mtime = max((p.stat().st_mtime_ns for p in files), default=0)
    return f"{path}|{size}|{mtime}"


def checkpoint_infos(checkpoints: Sequence[Checkpoint]) -> tuple[CheckpointInfo, ...]:
    """What the records say about each checkpoint, with its position and store key."""
    return tuple(
        CheckpointInfo(
            name=c.name,
            path=str(c.path),
            kind=c.kind,
            step=c.step,
            epoch=None if c.epoch is None else float(c.epoch),
            order=i,
            key=checkpoint_key(c.path),
        )
        for i, c in enumerate(checkpoints)
    )


def sequences_hash(images: torch.Tensor, sequences: Sequence[InterventionSequence]) -> str:
    """A content hash of the original images and their sequences (pixels and values): what the store is bound to."""
    digest = hashlib.sha256()
    for tensor in (images, *(t for s in sequences for t in (s.images, s.values))):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{t.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def _name_of(obj: Any) -> str:
    """A stable name of a setting for the store: a string as it is; a class or function by its qualified
    name; any other object (a ``Normalize``, a callable instance) by its class's, with its ``repr``."""
    if obj is None or isinstance(obj, str):
        return str(obj)
    if isinstance(obj, type) or hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}: {re.sub(r' at 0x[0-9a-fA-F]+', '', repr(obj))}"


def _test_description(test: TestSettings) -> dict[str, Any]:
    """The test's settings as JSON (a callable statistic by its name).

    Permutation stream 1 is left out, as stores written before there were streams name none (so a
    track with ``permutation_stream=1`` resumes them).
    """
    described = {f.name: (_name_of(v) if callable(v) else v) for f in fields(test) for v in [getattr(test, f.name)]}
    if test.permutation_stream == 1:
        del described["permutation_stream"]
    return described


class PropertyTracker:
    """Track how strongly one property drives a model along its training checkpoints.

    Like :class:`~propgrad.PropertyGradient`, the model and how it runs go into the constructor and
    :meth:`track` does the work; here the model's weights change from checkpoint to checkpoint.

    Args:
        model: The model every checkpoint loads into (an ``nn.Module``), or a factory called once,
            without arguments, to build it.
        checkpoints: A folder, a glob, a file, or a list of them (found and ordered by training step
            or epoch by :func:`propgrad.track.checkpoints.find_checkpoints`), or a list of
            :class:`~propgrad.track.checkpoints.Checkpoint`.
        load_func: ``load_func(model, path)``, a loader of your own (as Captum's TracInCP takes);
            it returns the model to use, or None when it loaded in place.
        trust: Allow full pickles (code from the file runs); by default weights only.
        preprocess, output_transform, batch_size, show_progress: How the model runs, as for
            :class:`~propgrad.PropertyGradient`.

    Raises:
        CheckpointError: no checkpoints, repeated epochs, an unreadable file, a folder mixing
            architectures (see :mod:`propgrad.track.checkpoints`), all found before any checkpoint loads.
        InvalidParameterError: a model that is neither a module nor a factory giving one, bad run settings.

    Example:
        >>> tracker = PropertyTracker(build_model, "runs/checkpoints")
        >>> result = tracker.track(images, "alpha_patch", target=1, n_permutations=1000)
        >>> [(s.checkpoint.epoch, s.score) for s in result.of_image(0)]
    """

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module],
        checkpoints: str | Path | Sequence[str | Path] | Sequence[Checkpoint],
        *,
        load_func: Callable[[Any, Path], Any] | None = None,
        trust: bool = False,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_transform: OutputTransform = "softmax",
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            if not callable(model):
                raise InvalidParameterError(
                    f"model must be an nn.Module or a factory building one, got {type(model).__name__}"
                )
            model = model()
            if not isinstance(model, nn.Module):
                raise InvalidParameterError(
                    f"the model factory returned a {type(model).__name__}, not an nn.Module that checkpoints load into"
                )
        if load_func is not None and not callable(load_func):
            raise InvalidParameterError(f"load_func must be a callable load_func(model, path), got {load_func!r}")
        self.run_settings = run_settings(
            preprocess=preprocess, output_transform=output_transform, batch_size=batch_size, show_progress=show_progress
        )
        self.model = model
        self.load_func = load_func
        self.trust = bool(trust)
        given = list(checkpoints) if isinstance(checkpoints, (list, tuple)) else None
        if given and all(isinstance(c, Checkpoint) for c in given):
            self.checkpoints: tuple[Checkpoint, ...] = tuple(given)  # type: ignore[arg-type]
        else:
            self.checkpoints = tuple(find_checkpoints(checkpoints, load_func=load_func, trust=self.trust))  # type: ignore[arg-type]
        if load_func is None:  # every file's keys and shapes, before any loads: no architecture changes half-way
            check_same_architecture(self.checkpoints, trust=self.trust)

    def track(
        self,
        images: torch.Tensor,
        source: str | InterventionSource | None = None,
        target: Target = None,
        additional_forward_args: Any = None,
        *,
        source_params: dict[str, Any] | None = None,
        sequences: Sequence[InterventionSequence] | None = None,
        n_permutations: int = 10_000,
        alpha: float = 0.01,
        seed: int = 0,
        n_placebos: int | None = None,
        settings: TestSettings | None = None,
        keep: Keeping | None = None,
    ) -> TrackResult:
        """Score every image's sequence under every checkpoint, in training order.

        Args:
            images: One image (3, H, W) or several (B, 3, H, W), float in [0, 1].
            source, target, additional_forward_args, source_params: As for
                :meth:`propgrad.PropertyGradient.attribute` (a target column keeps its meaning
                across checkpoints; None scores every column).
            sequences: Instead of a ``source``: one ready intervention sequence per image (a suite's
                interventions, sequences saved from an expensive source), used as they are.
            n_permutations, alpha, seed, settings: The test, as for ``attribute``; the rarer options
                (``min_effect``, ``correction``, ``statistic``, ``per`` ...) go in ``settings``
                (:func:`propgrad.stats.settings.test_settings`).
            n_placebos: M of the placebo test. None (default): none, unless ``settings`` carries
                its own M: it costs up to M extra sequences per image at every checkpoint, so
                tracking runs the paper's permutation test alone unless asked.
            keep: Where each finished checkpoint also goes (:class:`Keeping`: the resumable store,
                loggers); None: nowhere.

        Returns:
            A :class:`TrackResult`.

        Raises:
            InvalidParameterError: bad images, source, target or test (checked before any
                checkpoint loads); CheckpointError: a checkpoint that does not load or fit.
            SettingsMismatchError: the store holds a track of other settings.
        """
        started = time.perf_counter()
        if n_placebos is None:
            n_placebos = DEFAULT_PLACEBOS if settings is not None else 0
        keep = keep if keep is not None else Keeping()
        if not isinstance(keep, Keeping):
            raise InvalidParameterError(f"keep must be a propgrad.track.Keeping or None, got {type(keep).__name__}")
        test = resolve_test_settings(
            settings,
            n_permutations=n_permutations,
            alpha=alpha,
            seed=seed,
            n_placebos=n_placebos,
            min_effect=0.0,
            correction=None,
        )
        batch = check_images(
            images if isinstance(images, torch.Tensor) and images.dim() == 4 else as_batch(images),
            "images",
            batched=True,
        )
        if (source is None) == (sequences is None):
            raise InvalidParameterError(
                "give either a source or the ready sequences (one per image), not both or neither"
            )
        src: Any = _GivenSequences() if sequences is not None else resolve_source(source, source_params)
        run = with_forward_args(self.run_settings, additional_forward_args, batch.shape[0])
        targets = resolve_targets(target, batch.shape[0])
        infos = checkpoint_infos(self.checkpoints)

        generating = time.perf_counter()
        if sequences is not None:
            sequences = _checked_sequences(sequences, batch)
        else:
            sequences = tuple(
                src.generate_trusted(image, seed=test.seed, show_progress=run.show_progress) for image in batch
            )
        pools = placebo_pools(sequences, test)
        generate_s = time.perf_counter() - generating
        cells = None
        if keep.store is not None:
            from propgrad.harness.store import CellStore

            cells = CellStore(
                Path(keep.store),
                {
                    "what": "propgrad track",
                    "model": keep.model_id or _name_of(type(self.model)),
                    "sequences": sequences_hash(batch, sequences),
                    "source": src.name or type(src).__name__,
                    "targets": targets,
                    "test": _test_description(test),
                    "output_transform": _name_of(run.output_transform),
                    "preprocess": _name_of(run.preprocess) if run.preprocess is not None else None,
                    "load_func": None if self.load_func is None else _name_of(self.load_func),
                },
            )
        job = _Scoring(run, batch, targets, src.name or type(src).__name__)
        scores: list[CheckpointScore] = []
        load_s = forward_s = test_s = 0.0
        computed = resumed = 0
        model = self.model
        with progress_bar(len(infos), "checkpoints", enabled=run.show_progress) as bar:
            for checkpoint, info in zip(self.checkpoints, infos):
                stored = [cells.get([info.key, i]) for i in range(len(sequences))] if cells is not None else []
                if stored and all(r is not None for r in stored):
                    scores += [CheckpointScore.from_record(r) for r in stored]  # type: ignore[arg-type]
                    resumed += 1
                    bar.update(1)
                    continue
                t0 = time.perf_counter()
                loaded = load_checkpoint(model, checkpoint, trust=self.trust, load_func=self.load_func)
                model = model if loaded is None else loaded
                t1 = time.perf_counter()
                blocks = sequence_outputs(model, batch, sequences, run)
                t2 = time.perf_counter()
                checkpoint_scores = self._score(model, job, info, blocks, sequences, pools, test)
                new, placebo_s, scoring_s = checkpoint_scores
                load_s += t1 - t0
                forward_s += t2 - t1 + placebo_s
                test_s += scoring_s
                if computed == 0:
                    _warn_if_infeasible(new[0], test)
                if cells is not None:
                    cells.append([s.to_record() for s in new])
                for sink in keep.sinks:
                    sink.log(new)
                scores += new
                computed += 1
                bar.update(1)
        timing = TrackTiming(
            total=time.perf_counter() - started,
            load=load_s,
            forward=forward_s,
            test=test_s,
            generate=generate_s,
            computed=computed,
            resumed=resumed,
        )
        return TrackResult(tuple(scores), infos, sequences, test, timing)

    @staticmethod
    def _score(
        model: Any,
        job: _Scoring,
        info: CheckpointInfo,
        blocks: list[torch.Tensor],
        sequences: Sequence[InterventionSequence],
        pools: Sequence[PlaceboPool | None],
        test: TestSettings,
    ) -> tuple[list[CheckpointScore], float, float]:
        """One checkpoint's scores from its outputs; with the placebo forward time and the test time."""
        t0 = time.perf_counter()
        axes = [PropertyAxis.of(seq, test.per) for seq in sequences]
        scored = score_outputs_together(blocks, job.targets, axes, test)
        placebo_s = 0.0
        placebos: list[Any] = [None] * len(scored)
        if any(pool is not None for pool in pools):
            t_placebo = time.perf_counter()
            placebos = placebo_tests(model, job.images, pools, scored, job.run, test)
            placebo_s = time.perf_counter() - t_placebo
        explanations = [
            explanation_of(s, seq, p, test, source=job.source) for s, seq, p in zip(scored, sequences, placebos)
        ]
        return _checkpoint_scores(info, explanations), placebo_s, time.perf_counter() - t0 - placebo_s


@dataclass(frozen=True)
class _Scoring:
    """What scoring every checkpoint shares: how the model runs, the images, their targets and the source's name."""

    run: RunSettings
    images: torch.Tensor
    targets: list[int | None]
    source: str


class _GivenSequences:
    """What the explanations name as their source when the sequences were given ready."""

    name = "given sequences"


def _checked_sequences(sequences: Any, images: torch.Tensor) -> tuple[InterventionSequence, ...]:
    """Ready sequences checked once: one InterventionSequence per image, its frames the image's size."""
    given = list(sequences) if isinstance(sequences, (list, tuple)) else None
    if given is None or len(given) != images.shape[0]:
        raise InvalidParameterError(
            f"sequences must be a list of one InterventionSequence per image ({images.shape[0]}), got "
            f"{len(given) if given is not None else type(sequences).__name__}"
        )
    for i, seq in enumerate(given):
        if not isinstance(seq, InterventionSequence):
            raise InvalidParameterError(f"sequences[{i}] is a {type(seq).__name__}, not an InterventionSequence")
        if tuple(seq.images.shape[1:]) != tuple(images.shape[1:]):
            raise InvalidParameterError(
                f"sequences[{i}] has frames of shape {tuple(seq.images.shape[1:])} but image {i} has shape "
                f"{tuple(images.shape[1:])}; the model scores both, so they must be the same size"
            )
    return tuple(given)


def _warn_if_infeasible(first: CheckpointScore, test: TestSettings) -> None:
    """Warn once, as the explainer does, when K (or M) is too small for anything to pass the correction."""
    n_tests = len(first.columns)
    if test.correction is not None:
        warn_if_infeasible(n_tests, test.n_permutations, test.alpha, test.correction, stacklevel=_WARN_AT_CALLER)
    if test.n_placebos:
        warn_if_infeasible(
            n_tests, test.n_placebos, test.alpha, test.correction, what="placebos", stacklevel=_WARN_AT_CALLER
        )


def _as_list(tensor: torch.Tensor | None) -> list[Any] | None:
    """A tensor's values as a flat list (a 0-d tensor as one value), None for None."""
    return None if tensor is None else [v for v in tensor.detach().cpu().reshape(-1).tolist()]


def _checkpoint_scores(info: CheckpointInfo, explanations: Sequence[Explanation]) -> list[CheckpointScore]:
    """The records of every image's explanation under one checkpoint (Pearson's ρ of all in one pass)."""
    outputs = [e.outputs.detach().cpu().double().numpy() for e in explanations]
    values = [e.sequence.values.detach().cpu().double().numpy() for e in explanations]
    columns = [_scored_columns(e, o.shape[1]) for e, o in zip(explanations, outputs)]
    picked = [o[:, [0 if c is None else c for c in cols]] for o, cols in zip(outputs, columns)]
    if len({p.shape for p in picked}) == 1:
        rhos = list(pearson_columns(np.stack(values), np.stack(picked)))
    else:
        rhos = [pearson_columns(v, p) for v, p in zip(values, picked)]
    return [
        _checkpoint_score(info, i, e, o, v, cols, [math.nan if c is None else r for c, r in zip(cols, rho.tolist())])
        for i, (e, o, v, cols, rho) in enumerate(zip(explanations, outputs, values, columns, rhos))
    ]


def _scored_columns(e: Explanation, n_columns: int) -> list[int | None]:
    """The columns an explanation scored: its target, every column, or ``[None]`` for a whole-vector statistic."""
    if e.score.dim() == 0 and e.target is None:
        return [None]
    return [e.target] if e.target is not None else list(range(n_columns))


def _checkpoint_score(
    info: CheckpointInfo,
    image: int,
    e: Explanation,
    outputs: np.ndarray,
    values: np.ndarray,
    columns: list[int | None],
    rhos: list[float],
) -> CheckpointScore:
    """The record of one image's explanation under one checkpoint, from its outputs and values as numpy arrays."""
    original = e.original_outputs if e.original_outputs is not None else e.outputs[0]
    return CheckpointScore(
        checkpoint=info,
        image=image,
        property=e.sequence.property_name,
        source=e.source,
        unit=e.score_unit,
        columns=columns,
        score=_as_list(e.score.double()),  # type: ignore[arg-type]
        p=_as_list(e.p_value.double()),  # type: ignore[arg-type]
        p_adjusted=_as_list(e.p_value_adjusted),
        significant=[bool(v) for v in _as_list(e.significant)],  # type: ignore[union-attr]
        p_placebo=None if e.placebo is None else _as_list(e.placebo.p_value.double()),
        verdict=None if e.verdict is None else [bool(v) for v in _as_list(e.verdict)],  # type: ignore[union-attr]
        flips=int(e.flips.n_flips),
        flipped=bool(e.flips.flipped_anywhere),
        decision=int(e.flips.reference_decision),
        original_outputs=original.detach().cpu().double().reshape(-1).tolist(),
        values=values.tolist(),
        outputs=[tuple(row) for row in outputs.tolist()],
        pearson=rhos,
    )


def describe_checkpoints(checkpoints: Sequence[CheckpointInfo], *, hashes: bool = True) -> list[dict[str, Any]]:
    """The checkpoint list of a track's provenance: name, path, kind, step, epoch, size and sha256."""
    from propgrad.core.cache import file_sha256

    out = []
    for c in checkpoints:
        path = Path(c.path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        entry: dict[str, Any] = {
            "name": c.name,
            "path": c.path,
            "kind": c.kind,
            "step": c.step,
            "epoch": c.epoch,
            "size": sum(p.stat().st_size for p in files),
        }
        if hashes:
            if path.is_file():
                entry["sha256"] = file_sha256(path)
            else:
                digest = hashlib.sha256()
                for p in files:
                    digest.update(f"{p.relative_to(path).as_posix()}:{file_sha256(p)};".encode())
                entry["sha256"] = digest.hexdigest()
        out.append(entry)
    return out


def settings_json(test: TestSettings) -> dict[str, Any]:
    """The test's settings as JSON for a track's provenance."""
    return json.loads(json.dumps(_test_description(test)))
