"""CrossFormer and CrossFormer++ backbones for mmdet 3, mmseg 1 and mmpretrain 1.

Importing the package registers ``type='CrossFormer'`` in mmengine's root MODELS registry, which
the mmdet, mmseg and mmpretrain registries all fall back to, and makes torch's safe checkpoint
loading accept mmengine's own checkpoints (see :mod:`crossformer_mm.checkpoint`).
"""
from . import checkpoint  # noqa: F401  (safe loading of mmengine checkpoints)
from .models import CrossFormer
from .version import __version__

__all__ = ['CrossFormer', '__version__']
