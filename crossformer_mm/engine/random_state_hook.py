"""Keeping the random state in checkpoints: :class:`RandomStateHook`."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def get_random_state() -> dict:
    """The state of python's, numpy's and torch's global random number generators."""
    return dict(python=random.getstate(), numpy=np.random.get_state(legacy=False),
                torch=torch.get_rng_state())


def set_random_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Keeps the random state in checkpoints, so that ``--resume`` continues a run exactly.

    mmengine resumes the weights, optimizer, schedulers and data order but not the random
    state, so a resumed run would draw other drop-path masks and RoI samples than an
    uninterrupted one. The state is restored just before the first iteration after resuming,
    not on loading: the training loop first replays the dataloader up to the resumed iteration.
    With ``num_workers > 0`` the data pipeline's randomness lives in the workers, which that
    replay restores; with ``num_workers=0`` it shares the main process's state and the two
    runs part ways. Under distributed training every rank gets rank 0's state.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_state'] = get_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'random_state' in checkpoint:
            self._pending = dict(checkpoint['random_state'],
                                 iter=checkpoint.get('meta', {}).get('iter'))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # After ``load_from`` (iteration 0, not a resume) the saved state does not apply.
        if self._pending is not None and self._pending['iter'] == runner.iter:
            set_random_state(self._pending)
        self._pending = None
