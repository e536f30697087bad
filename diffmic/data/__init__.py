"""Data for DiffMIC: readers of real datasets (``readers``), synthetic look-alikes (``synthetic``) and tiny
on-disk fixtures in the real formats (``fixtures``)."""

from .readers import (
    ImageRecord,
    LabelledFolder,
    read_aptos2019,
    read_dataset,
    read_image_folder,
    read_isic2018,
    stratified_split,
)

__all__ = [
    "ImageRecord",
    "LabelledFolder",
    "read_aptos2019",
    "read_dataset",
    "read_image_folder",
    "read_isic2018",
    "stratified_split",
]
