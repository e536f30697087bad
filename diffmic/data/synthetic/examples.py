"""Write the app's example images: one generated image per class and task, named with its true label.

Examples come from the held-out index range (never trained on) and are unambiguous: the Bayes rule on
what the image shows (``ceiling.bayes_posterior``) names their label with probability ≥ ``MIN_POSTERIOR``,
so an example answered wrongly is the model's error, never the data's. A grayscale placenta example is
also written as DICOM (ultrasound is stored that way), to show the DICOM path.

    python -m diffmic.data.synthetic.examples assets [--size 256]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..datasets import SYNTHETIC_TEST_START
from . import GENERATORS, generate_sample, label_of
from .ceiling import bayes_posterior

EXAMPLE_SEED = 0
MIN_POSTERIOR = 0.85  # the clearest the data allow for every class (a melanoma at most 0.89)


def slug(name: str) -> str:
    """A file-name friendly version of a class name ("Proliferative DR" → "proliferative_dr")."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def example_indices(task: str, per_class: int = 1) -> dict[int, list[int]]:
    """Held-out indices with each label, the first ``per_class`` of each whose Bayes posterior of its
    label is at least ``MIN_POSTERIOR``."""
    k = GENERATORS[task].num_classes
    found: dict[int, list[int]] = {c: [] for c in range(k)}
    index = SYNTHETIC_TEST_START + 500_000  # beyond the benchmark's test images too
    while any(len(v) < per_class for v in found.values()):
        label = label_of(task, index, EXAMPLE_SEED)
        if len(found[label]) < per_class:
            _, posterior = bayes_posterior(task, [index], EXAMPLE_SEED)
            if posterior[0, label] >= MIN_POSTERIOR:
                found[label].append(index)
        index += 1
    return found


def write_dicom(pixels: np.ndarray, path: Path) -> None:
    """Save a grayscale uint8 image as a minimal uncompressed DICOM (MONOCHROME2, ultrasound modality)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"  # fixed: the example is reproducible
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "US", "SYNTHETIC^EXAMPLE", "DEMO"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def write_examples(out: Path, size: int = 256, per_class: int = 1) -> list[Path]:
    """Write ``out/<task>/<label>_<class>_<n>.png`` for every task and class; returns the paths."""
    written = []
    for task, spec in GENERATORS.items():
        folder = out / task
        folder.mkdir(parents=True, exist_ok=True)
        for label, indices in example_indices(task, per_class).items():
            for n, index in enumerate(indices):
                sample = generate_sample(task, index, EXAMPLE_SEED, size)
                path = folder / f"{label}_{slug(spec.class_names[label])}_{n}.png"
                Image.fromarray(sample.image).save(path, optimize=True)
                written.append(path)
                if task == "placenta" and label == 2 and n == 0:
                    dcm = folder / f"{label}_{slug(spec.class_names[label])}_{n}.dcm"
                    write_dicom(sample.image[..., 0], dcm)
                    written.append(dcm)
    return written


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description="Write the app's example images.")
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--per-class", type=int, default=1)
    args = p.parse_args()
    for path in write_examples(args.out, args.size, args.per_class):
        print(path)


if __name__ == "__main__":
    main()
