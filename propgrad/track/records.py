"""What tracking a property along checkpoints gives: one record per checkpoint and image, tidy rows, Tab. 12.

A :class:`CheckpointScore` is what scoring one image's sequence under one checkpoint gives (every
scored column at once); it is also the line the resumable store keeps
(:meth:`CheckpointScore.to_record` / :meth:`CheckpointScore.from_record`). :func:`tidy_rows`
expands the scores into one row per checkpoint, image and scored column (``track.csv``,
``track.jsonl``), and :func:`summarise` gives the paper's Tab. 12 per image and column: the mean
score over training, the number of significant checkpoints, the number of checkpoints whose
prediction flips along the sequence and the mean Pearson correlation ρ between the property values
and the scored output (n/a when the outputs are constant at some checkpoint, as the paper notes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

#: The store's kind of a checkpoint score line.
RECORD_KIND = "track"

#: Columns of ``track.csv`` in order (``track.jsonl`` adds ``values`` and ``outputs``).
CSV_COLUMNS = (
    "checkpoint",
    "order",
    "step",
    "epoch",
    "image",
    "property",
    "source",
    "column",
    "score",
    "p",
    "p_adjusted",
    "significant",
    "p_placebo",
    "verdict",
    "flips",
    "flipped",
    "decision",
    "original_output",
    "pearson",
    "path",
)


@dataclass(frozen=True)
class CheckpointInfo:
    """Which checkpoint a score belongs to (from :class:`propgrad.track.checkpoints.Checkpoint`).

    Attributes:
        name: The checkpoint's name (file or folder name).
        path: Its path.
        kind: Its format (``"state_dict"``, ``"lightning"``, ``"hf_trainer"`` ...).
        step: Its training step, when known.
        epoch: Its epoch, when known.
        order: Its position in the ordered list (0 for the first).
        key: Its identity in the resumable store (path, size and modification time).
    """

    name: str
    path: str
    kind: str
    step: int | None
    epoch: float | None
    order: int
    key: str

    @property
    def x(self) -> float:
        """Where it goes on a training axis: its epoch, else its step, else its order."""
        for value in (self.epoch, self.step):
            if value is not None:
                return float(value)
        return float(self.order)

    @property
    def global_step(self) -> int:
        """The step a logger files it under: its step, else its position in the ordered list."""
        return int(self.step) if self.step is not None else self.order


@dataclass(frozen=True)
class CheckpointScore:
    """One image's scores under one checkpoint: every scored column of one sequence.

    Attributes:
        checkpoint: Which checkpoint.
        image: The image's index among the tracked images.
        property: The property the source changes.
        source: The source's name.
        unit: The score's unit (``"per step"``, ``"per degree"`` ...).
        columns: The scored output columns (``[None]`` for a whole-vector statistic).
        score: The statistic per scored column (E|∇X| for the default statistic).
        p: Permutation-test p-values.
        p_adjusted: p-values adjusted by the correction, or None without one.
        significant: The permutation test's decisions (adjusted p and ``min_effect`` applied).
        p_placebo: The placebo test's p-values, or None when it was not run.
        verdict: The placebo test's decisions, or None.
        flips: Decision changes along the sequence.
        flipped: Some step's decision differs from the original image's.
        decision: The decision on the original image.
        original_outputs: Transformed outputs (C,) on the original image.
        values: The property values (N,).
        outputs: Transformed outputs (N, C) along the sequence, one tuple per step (a long track keeps
            tens of thousands of rows: tuples of numbers are untracked by the garbage collector, whose
            full passes over as many lists took 5-10 % of a 100-checkpoint track).
        pearson: Pearson's ρ between the values and each scored column (NaN: constant outputs or
            a whole-vector statistic).
    """

    checkpoint: CheckpointInfo
    image: int
    property: str
    source: str
    unit: str
    columns: list[int | None]
    score: list[float]
    p: list[float]
    p_adjusted: list[float] | None
    significant: list[bool]
    p_placebo: list[float] | None
    verdict: list[bool] | None
    flips: int
    flipped: bool
    decision: int
    original_outputs: list[float]
    values: list[float]
    outputs: list[tuple[float, ...]]
    pearson: list[float]

    def to_record(self) -> dict[str, Any]:
        """The store line (``kind`` and ``key`` added; NaN kept, the store allows it)."""
        body = asdict(self)
        return {"kind": RECORD_KIND, "key": [self.checkpoint.key, self.image], **body}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CheckpointScore:
        """The score a store line holds (the inverse of :meth:`to_record`)."""
        fields = {k: v for k, v in record.items() if k not in ("kind", "key", "checksum")}
        fields["checkpoint"] = CheckpointInfo(**fields["checkpoint"])
        fields["outputs"] = [tuple(row) for row in fields["outputs"]]
        return cls(**fields)


def pearson(values: Sequence[float], outputs: Sequence[float]) -> float:
    """Pearson's ρ of outputs against property values; NaN when either is constant (ρ is undefined)."""
    return float(pearson_columns(values, np.asarray(outputs, dtype=np.float64)[:, None])[0])


def pearson_columns(values: Sequence[float] | np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Pearson's ρ of each column of ``outputs`` (..., N, C) against the property values (..., N).

    ``r = sum(xc * yc) / sqrt(sum(xc**2) * sum(yc**2))`` on the centred values and column, clipped to
    [-1, 1] as ``numpy.corrcoef`` clips it. Leading dimensions are a batch (the images of one
    checkpoint, in one pass). Returns (..., C) float64: NaN where the column or the values are
    constant, or there are fewer than 2 steps.
    """
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64).reshape(*x.shape, -1)
    n = x.shape[-1]
    if n < 2:
        return np.full(y.shape[:-2] + y.shape[-1:], np.nan)
    xc = x - x.sum(axis=-1, keepdims=True) / n
    yc = y - y.sum(axis=-2, keepdims=True) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.einsum("...n,...nc->...c", xc, yc)
        den = np.sqrt(np.einsum("...n,...n->...", xc, xc)[..., None] * np.einsum("...nc,...nc->...c", yc, yc))
        r = np.clip(num / den, -1.0, 1.0)
    undefined = (y.max(axis=-2) == y.min(axis=-2)) | (x.max(axis=-1) == x.min(axis=-1))[..., None]
    return np.where(undefined, np.nan, r)


def tidy_rows(scores: Sequence[CheckpointScore], *, with_curves: bool = False) -> list[dict[str, Any]]:
    """One row per checkpoint, image and scored column, in the columns of :data:`CSV_COLUMNS`.

    Args:
        scores: The checkpoint scores, in any order (rows come out ordered by checkpoint, image, column).
        with_curves: Add ``values`` and the scored column's ``outputs`` along the sequence (for JSONL).
    """
    rows = []
    for s in sorted(scores, key=lambda s: (s.checkpoint.order, s.image)):
        ck = s.checkpoint
        for k, column in enumerate(s.columns):
            row = {
                "checkpoint": ck.name,
                "order": ck.order,
                "step": ck.step,
                "epoch": ck.epoch,
                "image": s.image,
                "property": s.property,
                "source": s.source,
                "column": column,
                "score": s.score[k],
                "p": s.p[k],
                "p_adjusted": None if s.p_adjusted is None else s.p_adjusted[k],
                "significant": s.significant[k],
                "p_placebo": None if s.p_placebo is None else s.p_placebo[k],
                "verdict": None if s.verdict is None else s.verdict[k],
                "flips": s.flips,
                "flipped": s.flipped,
                "decision": s.decision,
                "original_output": None if column is None else s.original_outputs[column],
                "pearson": s.pearson[k],
                "path": ck.path,
            }
            if with_curves:
                row["values"] = s.values
                row["outputs"] = s.outputs if column is None else [out[column] for out in s.outputs]
            rows.append(row)
    return rows


@dataclass(frozen=True)
class TrackSummary:
    """The paper's Tab. 12 for one image and scored column over the checkpoints.

    Attributes:
        image: The image's index.
        column: The scored column (None: a whole-vector statistic).
        n_checkpoints: Checkpoints tracked.
        mean_score: Mean score over the checkpoints.
        n_significant: Checkpoints whose permutation test is significant.
        n_verdict: Checkpoints whose placebo test is significant (None: not run).
        n_flipped: Checkpoints whose prediction flips somewhere along the sequence.
        mean_pearson: Mean Pearson ρ over the checkpoints; NaN (n/a) when ρ is undefined at some
            checkpoint (constant outputs), as in the paper.
        n_pearson: Checkpoints where ρ is defined.
        first_score, last_score: The score at the first and the last checkpoint.
    """

    image: int
    column: int | None
    n_checkpoints: int
    mean_score: float
    n_significant: int
    n_verdict: int | None
    n_flipped: int
    mean_pearson: float
    n_pearson: int
    first_score: float
    last_score: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN stays NaN: strict JSON writers turn it into null with a reason)."""
        return asdict(self)


def summarise(scores: Sequence[CheckpointScore]) -> list[TrackSummary]:
    """Tab. 12 per image and scored column, from the checkpoint scores (ordered by image, column)."""
    rows = tidy_rows(scores)
    groups: dict[tuple[int, int | None], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["image"], row["column"]), []).append(row)
    out = []
    for (image, column), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])
    ):
        rhos = [float(r["pearson"]) for r in group]
        verdicts = [r["verdict"] for r in group]
        out.append(
            TrackSummary(
                image=image,
                column=column,
                n_checkpoints=len(group),
                mean_score=float(np.mean([r["score"] for r in group])),
                n_significant=sum(bool(r["significant"]) for r in group),
                n_verdict=None if any(v is None for v in verdicts) else sum(bool(v) for v in verdicts),
                n_flipped=sum(bool(r["flipped"]) for r in group),
                mean_pearson=float(np.mean(rhos)),  # NaN as soon as one checkpoint's rho is undefined
                n_pearson=sum(not math.isnan(r) for r in rhos),
                first_score=float(group[0]["score"]),
                last_score=float(group[-1]["score"]),
            )
        )
    return out
