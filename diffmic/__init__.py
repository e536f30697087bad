"""DiffMIC Explorer: dual-guidance diffusion for medical image classification (Yang et al., MICCAI 2023).

    from diffmic import DiffMICPipeline, SamplingOptions
    pipe = DiffMICPipeline.from_pretrained("weights/fundus")
    print(pipe("assets/fundus/2_moderate_0.png", SamplingOptions(sampler="ddim", steps=50)).label)

Names are imported lazily, so ``import diffmic.diffusion`` does not pull in timm.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
_EXPORTS = {
    "DiffMIC": "model",
    "DiffMICPipeline": "pipeline",
    "DiffMICOutput": "pipeline",
    "SamplingOptions": "options",
    "DiffMICConfig": "config",
    "ModelLoadError": "hub",
    "ImageLoadError": "imageio",
    "DicomInfo": "dicom",
    "read_dicom_info": "dicom",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'diffmic' has no attribute {name!r}")
