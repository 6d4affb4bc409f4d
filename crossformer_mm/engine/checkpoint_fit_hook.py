"""Whether a checkpoint fits a model: :class:`CheckpointFitHook` and the check it makes.

mmengine loads what matches and only warns about the rest, so evaluating the wrong file reports
the score of a partly random model. ``tools/test.py`` adds the hook unless it is given
``--allow-partial``.
"""
import re
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import HOOKS


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model it is loaded into."""


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuses a checkpoint whose weights do not fit the model, instead of mmengine's warning.

    mmengine loads what matches and warns about the rest, so evaluating the wrong file reports
    the score of a partly random model. ``tools/test.py`` adds this hook unless it is given
    ``--allow-partial``; it raises :class:`CheckpointMismatchError` naming the first missing
    and unexpected keys and shape mismatches.
    """

    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        mismatch = state_dict_mismatch(runner.model, state)
        if mismatch is not None:
            raise CheckpointMismatchError(mismatch)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP-like wrappers and a test-time-augmentation model."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def state_dict_mismatch(model: torch.nn.Module, state: Dict[str, torch.Tensor],
                        shown: int = 3) -> Optional[str]:
    """What keeps ``state`` from loading into ``model`` exactly, in one line; None if it fits.

    Names the first ``shown`` missing keys, unexpected keys and shape mismatches. Keys are
    compared as mmengine loads them (``module.`` prefixes dropped; BatchNorm's
    ``num_batches_tracked`` may be missing); non-persistent buffers, such as a data
    preprocessor's mean and std, are not part of a state dict.
    """
    own = unwrap_model(model).state_dict()
    state = {re.sub(r'^module\.', '', key): value for key, value in state.items()}
    missing = [k for k in own if k not in state and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
              if k in state and hasattr(state[k], 'shape') and state[k].shape != own[k].shape]
    parts = [_listed(n, what, names, shown) for n, what, names in (
        (len(missing), 'missing key', missing), (len(unexpected), 'unexpected key', unexpected),
        (len(shapes), 'shape mismatch (checkpoint vs model)', shapes)) if n]
    return '; '.join(parts) or None


def _listed(n: int, what: str, names: List[str], shown: int) -> str:
    plural = what.replace('mismatch', 'mismatches') if 'mismatch' in what else what + 's'
    more = f', ... ({n - shown} more)' if n > shown else ''
    return f'{n} {what if n == 1 else plural}: {", ".join(names[:shown])}{more}'
