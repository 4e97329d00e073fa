"""Hand-written digits in the phone boxes: features and a classifier with a confidence (R5.2).

The training data are real people's hand-writing that ships inside scikit-learn: ``load_digits``
(UCI "optdigits": 1,797 digits written on forms by 13 people, 32 × 32 bitmaps counted into 8 × 8
blocks of 4 × 4 pixels, so each feature is 0–16). Nothing is downloaded. A fixed, stratified split
keeps ``HELD_OUT_SHARE`` of it aside: the classifier never sees those digits, and the FAX benchmark
writes exactly those into its sheets.

A box read off a FAX is turned into the same 64 numbers the data set holds: the ink's bounding box
is scaled (keeping its proportions) to fit 32 × 32, centred, and counted in 4 × 4 blocks. To make
the classifier expect what a FAX does to a digit, each training digit is also re-drawn a few times
as a bitmap — thicker or thinner, slanted, sampled at standard and fine FAX resolution — and
counted again. Training takes a few seconds and happens once per process (``classifier()``).

Two models vote: an RBF support-vector machine (the more accurate; its probabilities Platt-scaled on
folds that hold every copy of a digit out together) and a distance-weighted 10-nearest-neighbour
vote (which knows when a digit looks like nothing it has seen). The confidence is their averaged
probability of the chosen digit: on the benchmark corpus the SVM alone was sure (≈ 0.95) of most of
its mistakes, while the pair disagree on them, so the average falls below the acceptance threshold.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

HELD_OUT_SHARE = 0.3
SPLIT_SEED = 1797
AUGMENTED_COPIES = 5
GLYPH = 32  # optdigits' bitmap side
BLOCK = 4  # optdigits' block side: 8 × 8 features of 0–16


def digit_set(part: Literal["train", "held_out"]) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: images are 8 × 8 float arrays of 0–16, labels 0–9."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    train_x, held_x, train_y, held_y = train_test_split(
        data.images,
        data.target,
        test_size=HELD_OUT_SHARE,
        stratify=data.target,
        random_state=SPLIT_SEED,
    )
    if part == "train":
        return train_x, train_y
    if part == "held_out":
        return held_x, held_y
    raise ValueError("part is 'train' or 'held_out'")


def features(ink: np.ndarray) -> np.ndarray | None:
    """64 optdigits-style features of a box's ink (2-D, non-zero = ink), or None if there is none."""
    rows = np.flatnonzero(ink.any(axis=1))
    columns = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    crop = (ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1] > 0).astype(np.float32)
    height, width = crop.shape
    scale = GLYPH / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = np.clip(cv2.resize(crop, size, interpolation=interpolation), 0, 1)
    glyph = np.zeros((GLYPH, GLYPH), np.float32)
    top, left = (GLYPH - size[1]) // 2, (GLYPH - size[0]) // 2
    glyph[top : top + size[1], left : left + size[0]] = scaled
    blocks = glyph.reshape(GLYPH // BLOCK, BLOCK, GLYPH // BLOCK, BLOCK).sum(axis=(1, 3))
    return blocks.reshape(-1)


def bitmap(image: np.ndarray, *, threshold: float = 0.4, size: int = GLYPH) -> np.ndarray:
    """A smooth black-and-white glyph (uint8 0/1, ``size`` square) from an 8 × 8 optdigits image."""
    grey = cv2.resize((image / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return (grey >= threshold).astype(np.uint8)


@dataclass(frozen=True)
class Prediction:
    digit: str
    confidence: float  # calibrated probability of ``digit``


class DigitClassifier:
    """An SVM and a nearest-neighbour vote over the 64 features; their probabilities averaged."""

    def __init__(self, models: list):
        self._models = models

    @classmethod
    def train(cls, *, seed: int = 0) -> DigitClassifier:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import GroupKFold
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.svm import SVC

        images, labels = digit_set("train")
        rng = np.random.default_rng(seed)
        x = [image.reshape(-1) for image in images]
        y = list(labels)
        origin = list(range(len(images)))  # which written digit each sample was drawn from
        for _ in range(AUGMENTED_COPIES):
            for index, (image, label) in enumerate(zip(images, labels, strict=True)):
                feature = features(_as_faxed(image, rng))
                if feature is not None:
                    x.append(feature)
                    y.append(label)
                    origin.append(index)
        # Calibrate on digits whose every copy was held out of the fold's training: copies of the
        # same digit on both sides would teach the calibration that the model is never wrong.
        x, y = np.asarray(x, np.float32), np.asarray(y)
        folds = list(GroupKFold(n_splits=3).split(x, y, groups=origin))
        svm = CalibratedClassifierCV(SVC(C=10, gamma="scale"), cv=folds, ensemble=False).fit(x, y)
        neighbours = KNeighborsClassifier(n_neighbors=10, weights="distance").fit(x, y)
        return cls([svm, neighbours])

    def predict(self, batch: list[np.ndarray]) -> list[Prediction]:
        if not batch:
            return []
        x = np.asarray(batch, np.float32)
        classes = self._models[0].classes_  # the labels 0–9, sorted, in every model
        probabilities = np.mean([model.predict_proba(x) for model in self._models], axis=0)
        best = probabilities.argmax(axis=1)
        return [Prediction(str(classes[i]), float(p[i])) for i, p in zip(best, probabilities, strict=True)]


_lock = threading.Lock()
_classifier: DigitClassifier | None = None


def classifier() -> DigitClassifier:
    """The process's classifier, trained on first use (a few seconds) and kept in memory."""
    global _classifier
    if _classifier is None:
        with _lock:
            if _classifier is None:
                _classifier = DigitClassifier.train()
    return _classifier


def _as_faxed(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One training digit drawn as a pen would, slanted and thickened a little, then sampled the
    way a FAX samples a 6–9 mm digit (8 dots per mm across; 3.85 or 7.7 lines per mm down)."""
    glyph = bitmap(image, threshold=rng.uniform(0.3, 0.55), size=64)
    angle = rng.uniform(-8, 8)
    shear = rng.uniform(-0.2, 0.2)
    matrix = cv2.getRotationMatrix2D((32, 32), angle, rng.uniform(0.85, 1.0))
    matrix[0, 1] += shear
    matrix[0, 2] -= shear * 32
    glyph = cv2.warpAffine(glyph, matrix, (64, 64), flags=cv2.INTER_NEAREST)
    stroke = rng.integers(-1, 3)
    if stroke > 0:
        glyph = cv2.dilate(glyph, np.ones((stroke + 1, stroke + 1), np.uint8))
    elif stroke < 0:
        eroded = cv2.erode(glyph, np.ones((2, 2), np.uint8))
        glyph = eroded if eroded.sum() > glyph.sum() / 3 else glyph
    height_mm = rng.uniform(6, 9)
    lines_per_mm = rng.choice([3.85, 7.7])
    size = (max(4, round(height_mm * 8)), max(4, round(height_mm * lines_per_mm)))
    sampled = cv2.resize(glyph.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    restored = cv2.resize(
        sampled.astype(np.uint8), (size[0], round(height_mm * 8)), interpolation=cv2.INTER_NEAREST
    )
    return restored
