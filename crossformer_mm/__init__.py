"""CrossFormer and CrossFormer++ backbones for mmdet 3, mmseg 1 and mmpretrain 1.

Importing the package registers what configs name in mmengine's root registries, which the
mmdet, mmseg and mmpretrain registries all fall back to: the ``CrossFormer`` backbone, the hooks
(``AtomicCheckpointHook``, ``RandomStateHook``, ...) and the ``NameFilesOnError`` dataset type. It
also lets torch's safe checkpoint loading accept the classes mmengine writes into checkpoints
(see :mod:`crossformer_mm.checkpoint`), and changes nothing else.
"""
from . import checkpoint  # noqa: F401  (safe loading of mmengine checkpoints)
from . import datasets, engine  # noqa: F401  (registered types)
from .models import CrossFormer
from .version import __version__

__all__ = ['CrossFormer', '__version__']
