"""Layer-wise lr decay for detectors and segmentors, whose models (unlike mmpretrain's
classifiers) do not say how deep a parameter is."""
from typing import Callable, List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` for any model with a
    ``backbone`` that has ``get_layer_depth`` (CrossFormer, mmpretrain's Swin, ...): an mmdet
    detector, an mmseg segmentor or an mmpretrain classifier.

    A backbone parameter at depth d of n gets the lr ``lr * layer_decay_rate ** (n - 1 - d)``;
    the neck and heads get the top depth's, ``lr``. The other ``paramwise_cfg`` fields are
    mmpretrain's (``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``, and
    ``custom_keys`` with ``decay_mult`` only). Frozen parameters get no group. Needs mmpretrain::

        optim_wrapper = dict(
            constructor='BackboneLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.9, norm_decay_mult=0.))
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   get_layer_depth: Optional[Callable] = None, **kwargs) -> None:
        try:
            from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
        except ImportError as error:
            raise ImportError(f'{type(self).__name__} needs mmpretrain: pip install '
                              f'"crossformer_mm[cls]" ({error})') from None
        if get_layer_depth is None:   # the model itself
            get_layer_depth = _model_layer_depth(module)
        LearningRateDecayOptimWrapperConstructor.add_params(
            self, params, module, prefix, get_layer_depth=get_layer_depth, **kwargs)


def _model_layer_depth(model: nn.Module) -> Callable:
    """``model.get_layer_depth`` (an mmpretrain classifier's), or its backbone's, which puts
    every parameter outside the backbone at the top depth."""
    if hasattr(model, 'get_layer_depth'):
        return model.get_layer_depth
    backbone = getattr(model, 'backbone', None)
    if not hasattr(backbone, 'get_layer_depth'):
        raise NotImplementedError(
            f'layer-wise lr decay needs a backbone with get_layer_depth; '
            f'{type(model).__name__}.backbone is {type(backbone).__name__}')
    return lambda name: backbone.get_layer_depth(name, prefix='backbone.')
