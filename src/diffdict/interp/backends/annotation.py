"""Grounded explainer/judge for the shapes world: explanations are planted concepts.

Explain (``criterion``):

* ``image`` (default): the concept that best tells the explainer's top images from its
  non-activating ones -- balanced accuracy of "the image contains c" over the explanation
  examples, which is exactly the question the judge will be asked on held-out images. Ties
  (common: several concepts present in every top image) go to the concept holding the larger
  share of the heatmaps' activation mass, i.e. what the highlighted tokens show.
* ``token``: the concept whose token mask best correlates (Pearson, over all tokens of the
  explanation examples, non-activating images with zero heat) with the activation. It favours
  narrow masks and mis-names small part-features (the top arm of every cross) by whichever
  mask happens to overlap them; kept for comparison.

Either way further concepts are ANDed (up to ``max_concepts``) while that raises the criterion.
``token`` without token masks correlates image labels with each image's maximum activation.

Judge: 1 when the image's annotation contains every explained concept, else 0 (``soft``: the
fraction of explained concepts present). That question is image-level: a feature firing on a
few scattered tokens of every light-background image passes it as ``background=light``. The
token-level question (`token_agreement`) asks where the feature fires: its active tokens on the
held-out images against the explained concepts' token masks, as precision and recall.

Annotations come either from an annotator object (``.concepts``, ``annotate(images) ->
list[set[str]]``, optional ``token_masks(images, grid) -> bool [B, gh, gw, C]``) or from plain
arrays keyed by prompt id (`AnnotationBackend.from_arrays`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Backend, Example, Explanation, Judgement


class AnnotationBackend(Backend):
    name = "annotation"

    CRITERIA = ("image", "token")

    def __init__(self, annotator=None, max_concepts: int = 1, soft: bool = False, criterion: str = "image"):
        if annotator is None:
            raise ValueError(
                "annotation backend needs an annotator (the shapes world's Annotator, or "
                "AnnotationBackend.from_arrays(...)); it is only available for the toy world"
            )
        self.annotator = annotator
        self.concepts = list(annotator.concepts)
        if criterion not in self.CRITERIA:
            raise ValueError(f"annotation backend: criterion '{criterion}' is not one of {list(self.CRITERIA)}")
        self.max_concepts, self.soft, self.criterion = int(max_concepts), bool(soft), criterion
        self._label_memo: dict[int, np.ndarray] = {}
        self._mask_memo: dict[tuple, dict[int, np.ndarray]] = {}

    @classmethod
    def from_arrays(cls, concepts, prompt_ids, labels, token_masks=None, **kw) -> AnnotationBackend:
        return cls(ArrayAnnotator(concepts, prompt_ids, labels, token_masks), **kw)

    def _memo(self, memo: dict, examples: Sequence[Example], compute) -> np.ndarray:
        """Per prompt id memo: an image reappears across features, the annotator runs once on it."""
        new = list({e.prompt_id: e for e in examples if e.prompt_id not in memo}.values())
        if new:
            memo.update(zip((e.prompt_id for e in new), compute(new)))
        return np.stack([memo[e.prompt_id] for e in examples])

    def _labels(self, examples: Sequence[Example]) -> np.ndarray:
        a = self.annotator
        if hasattr(a, "labels_for"):
            return a.labels_for([e.prompt_id for e in examples])

        def compute(exs):
            sets = a.annotate(np.stack([e.image for e in exs]))
            return np.array([[c in s for c in self.concepts] for s in sets], bool).reshape(len(exs), -1)

        return self._memo(self._label_memo, examples, compute)

    def _masks(self, examples: Sequence[Example], grid) -> np.ndarray | None:
        a = self.annotator
        if hasattr(a, "masks_for"):
            return a.masks_for([e.prompt_id for e in examples])
        if not hasattr(a, "token_masks"):
            return None
        memo = self._mask_memo.setdefault(tuple(grid), {})
        return self._memo(
            memo, examples, lambda exs: np.asarray(a.token_masks(np.stack([e.image for e in exs]), tuple(grid)), bool)
        )

    def explain(self, feature: int, top: Sequence[Example], negatives: Sequence[Example] = ()) -> Explanation:
        exs = [*top, *negatives]
        grid = top[0].heat.shape
        if self.criterion == "image":
            X = self._labels(exs).astype(np.float64)  # [n, C] image contains c
            y = np.r_[np.ones(len(top)), np.zeros(len(negatives))]
            # tie-break: share of the top images' activation mass inside each concept's tokens
            # (the negatives carry no heat, so only the top images' masks are needed)
            mass = np.stack([e.heat for e in top]).astype(np.float64).reshape(len(top), -1)
            masks = self._masks(top, grid)
            share = (
                np.einsum("nt,ntc->c", mass, masks.reshape(len(top), -1, X.shape[1])) / max(mass.sum(), 1e-12)
                if masks is not None
                else np.zeros(X.shape[1])
            )

            def score(Z):
                return _balanced_accuracy(y, Z) + 1e-3 * share  # share ∈ [0, 1]: only breaks ties
        else:
            heat = np.stack([e.heat if e.heat is not None else np.zeros(grid, np.float32) for e in exs]).astype(
                np.float64
            )
            masks = self._masks(exs, grid)
            if masks is not None:
                y, X = heat.reshape(-1), masks.reshape(-1, len(self.concepts)).astype(np.float64)
            else:  # image level: labels vs max activation per image
                y, X = heat.reshape(len(exs), -1).max(1), self._labels(exs).astype(np.float64)

            def score(Z):
                return _corr(y, Z)

        chosen: list[int] = []
        current, best = np.ones(len(X)), -np.inf
        for _ in range(self.max_concepts):
            r = score(current[:, None] * X)
            r[chosen] = -np.inf
            j = int(np.argmax(r))
            if r[j] <= best:
                break
            chosen.append(j)
            best, current = r[j], current * X[:, j]
        names = tuple(self.concepts[j] for j in chosen)
        return Explanation(feature, " & ".join(names), concepts=names)

    def judge(self, explanation: Explanation, example: Example) -> Judgement:
        return self.judge_many([(explanation, example)])[0]

    def judge_many(self, items):
        if not items:
            return []
        labels = self._labels([ex for _, ex in items])  # one annotator call for the batch
        out = []
        for (e, _), lab in zip(items, labels):
            if not e.concepts:
                out.append(Judgement(None, ok=False, error="explanation has no concepts"))
                continue
            have = lab[[self.concepts.index(c) for c in e.concepts]]
            out.append(Judgement(float(have.mean()) if self.soft else float(have.all())))
        return out

    def token_agreement(
        self, explanation: Explanation, examples: Sequence[Example], active: np.ndarray
    ) -> tuple[int, int, int] | None:
        """(|active ∩ explained|, |active|, |explained|) over the tokens of `examples`, where
        `active` is bool [n, gh, gw] (the feature's active tokens) and "explained" the AND of
        the explained concepts' token masks; None without token masks or concepts."""
        if not explanation.concepts or not len(examples):
            return None
        masks = self._masks(examples, active.shape[1:])
        if masks is None:
            return None
        explained = masks[..., [self.concepts.index(c) for c in explanation.concepts]].all(-1)
        return int((active & explained).sum()), int(active.sum()), int(explained.sum())


def _balanced_accuracy(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each binary column of X [n, C] as a predictor of binary y [n]; a
    class with no examples counts as chance (0.5) so a one-sided comparison ranks by the other."""
    pos, neg = y > 0, y <= 0
    tpr = X[pos].mean(0) if pos.any() else np.full(X.shape[1], 0.5)
    tnr = 1 - X[neg].mean(0) if neg.any() else np.full(X.shape[1], 0.5)
    return (tpr + tnr) / 2


def _corr(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Pearson correlation of y [n] with each column of X [n, C]; 0 for constant columns."""
    yc, Xc = y - y.mean(), X - X.mean(0)
    den = np.sqrt((yc**2).sum() * (Xc**2).sum(0))
    return np.divide(yc @ Xc, den, out=np.zeros(X.shape[1]), where=den > 0)


class ArrayAnnotator:
    """Annotations as arrays keyed by prompt id: ``labels`` bool [n, C], ``token_masks`` bool [n, gh, gw, C]."""

    def __init__(self, concepts, prompt_ids, labels, token_masks=None):
        self.concepts = list(concepts)
        self._row = {int(p): i for i, p in enumerate(np.asarray(prompt_ids))}
        self.labels = np.asarray(labels, bool)
        self.token_masks_arr = None if token_masks is None else np.asarray(token_masks, bool)
        if self.labels.shape != (len(self._row), len(self.concepts)):
            raise ValueError(f"labels shape {self.labels.shape} != ({len(self._row)}, {len(self.concepts)})")

    def _rows(self, pids):
        try:
            return [self._row[int(p)] for p in pids]
        except KeyError as e:
            raise KeyError(f"no annotation for prompt_id {e.args[0]}") from None

    def labels_for(self, pids) -> np.ndarray:
        return self.labels[self._rows(pids)]

    def masks_for(self, pids) -> np.ndarray | None:
        return None if self.token_masks_arr is None else self.token_masks_arr[self._rows(pids)]
