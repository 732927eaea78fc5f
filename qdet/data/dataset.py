"""Processed records -> torchvision detection samples (image tensor, target dict)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from qdet.core.files import files_with_suffix
from qdet.data.gtsdb import mirrored_names
from qdet.data.processed import read_classes, read_split
from qdet.data.records import DataError, ImageRecord
from qdet.serving.image_input import ImageReadError, read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}


def load_image(path) -> torch.Tensor:
    """An RGB float image in [0, 1], CxHxW, as displayed (the one reader predict and serving use)."""
    return read_image(str(path))


class DetectionDataset(Dataset):
    """Images with boxes in XYXY pixel edges, labels 1..K (0 is background), negatives allowed.

    ``hflip`` flips half of the samples and swaps the labels of mirrored class pairs
    (``mirror``: class name -> the name of its mirror image).
    """

    def __init__(
        self,
        records: list[ImageRecord],
        classes: list[str],
        hflip: bool = False,
        mirror: dict[str, str] | None = None,
        color_jitter: float = 0.0,
    ) -> None:
        self.records = records
        self.classes = classes
        self.index = {name: i + 1 for i, name in enumerate(classes)}
        self.hflip = hflip
        self.mirror = mirror or {}
        self.jitter = v2.ColorJitter(color_jitter, color_jitter) if color_jitter > 0 else None

    def __len__(self) -> int:
        return len(self.records)

    def target(self, i: int) -> dict[str, torch.Tensor]:
        r = self.records[i]
        boxes = torch.tensor(
            [[b.x_min, b.y_min, b.x_max, b.y_max] for b in r.boxes], dtype=torch.float32
        ).reshape(-1, 4)
        labels = torch.tensor([self.index[b.class_name] for b in r.boxes], dtype=torch.int64)
        return {
            "boxes": boxes,
            "labels": labels,
            "image_id": torch.tensor(i),
            "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
            "iscrowd": torch.zeros(len(r.boxes), dtype=torch.int64),
        }

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = load_image(self.records[i].source)
        target = self.target(i)
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
            width = image.shape[-1]
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
            target["boxes"] = boxes
            if self.mirror:
                names = [self.classes[int(k) - 1] for k in target["labels"]]
                target["labels"] = torch.tensor(
                    [self.index[self.mirror.get(n, n)] for n in names], dtype=torch.int64
                )
        if self.jitter is not None:
            image = self.jitter(image)
        return image, target


def flip_policy(dataset: str, classes: str, hflip: str) -> tuple[bool, dict[str, str]]:
    """(flip or not, mirror pairs). ``auto`` leaves flips off for GTSDB: a flip mirrors digits
    and turns "keep left" into "keep right"; with ``on`` the mirrored pairs swap labels."""
    flip = hflip == "on" or (hflip == "auto" and dataset != "gtsdb")
    return flip, (mirrored_names(classes) if dataset == "gtsdb" else {})


def collate(batch):
    return tuple(zip(*batch, strict=True))


def load_split(processed: Path, split: str) -> DetectionDataset:
    """A split of a processed dataset, unaugmented (calibration, evaluation, benchmark)."""
    return DetectionDataset(read_split(processed, split), read_classes(processed))


def training_datasets(
    processed: Path, dataset: str, classes_mode: str, hflip: str, color_jitter: float
) -> tuple[DetectionDataset, DetectionDataset]:
    """(augmented train split, plain valid split) of a processed dataset: what train and qat use."""
    classes = read_classes(processed)
    flip, mirror = flip_policy(dataset, classes_mode, hflip)
    train = DetectionDataset(read_split(processed, "train"), classes, flip, mirror, color_jitter)
    return train, DetectionDataset(read_split(processed, "valid"), classes)


class ImageFolder(Dataset):
    """The images of a folder (and its subfolders), by name, as ``(image, None)`` samples:
    unlabeled images, all that calibration needs (observers see no boxes). A file that cannot be
    read stops the stage with its path; the file list is checked when the set is made."""

    def __init__(self, folder: Path) -> None:
        self.paths = files_with_suffix(folder, IMAGE_SUFFIXES)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, None]:
        path = self.paths[index]
        try:
            return load_image(path), None
        except (ImageReadError, OSError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from exc


def calibration_set(source: str, folder: Path, train: DetectionDataset) -> Dataset:
    """PTQ's calibration images as ``calibrate.source`` says: ``train`` (the unaugmented train
    split), or the images in ``folder`` (frames from where the detector will run: no boxes)."""
    if source == "train":
        return train
    if not folder.is_dir():
        raise DataError(
            f"calibrate.source: folder: no folder {folder}; create it with the images to calibrate on"
        )
    images = ImageFolder(folder)
    if not len(images):
        raise DataError(
            f"calibrate.source: folder: {folder} holds no image (looked for "
            f"{' '.join(sorted(IMAGE_SUFFIXES))}); put the images to calibrate on there, or set "
            "calibrate.source: train"
        )
    return images
