"""RandomStateHook: the random state goes into the checkpoint and comes back exactly at the
first iteration of the resumed run, not after ``load_from``."""
import random
from types import SimpleNamespace

import numpy as np
import torch

from crossformer_mm.engine import RandomStateHook


def draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def saved_then_drawn(hook: RandomStateHook, iteration: int):
    """A checkpoint of iteration ``iteration`` and what the generators drew after saving it."""
    checkpoint = {'meta': {'iter': iteration}}
    hook.before_save_checkpoint(None, checkpoint)
    assert set(checkpoint['random_state']) == {'python', 'numpy', 'torch'}
    return checkpoint, draws()


def test_resume_restores_the_state_at_its_first_iteration():
    checkpoint, expected = saved_then_drawn(RandomStateHook(), 4)
    draws()  # the run goes on, then is killed
    resumed = RandomStateHook()
    resumed.after_load_checkpoint(None, checkpoint)
    draws()  # the training loop replays the dataloader before the first iteration
    resumed.before_train_iter(SimpleNamespace(iter=4), 0)
    assert draws() == expected
    # Once only: later iterations draw on.
    resumed.before_train_iter(SimpleNamespace(iter=5), 0)
    assert draws() != expected


def test_load_from_keeps_the_state_of_the_new_run():
    """``load_from`` without resuming starts at iteration 0: the saved state does not apply."""
    checkpoint, expected = saved_then_drawn(RandomStateHook(), 4)
    hook = RandomStateHook()
    hook.after_load_checkpoint(None, checkpoint)
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    fresh = draws()
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    hook.before_train_iter(SimpleNamespace(iter=0), 0)
    assert draws() == fresh != expected
    hook.before_train_iter(SimpleNamespace(iter=4), 0)  # the pending state was dropped
    assert draws() != expected


def test_checkpoint_without_random_state_changes_nothing():
    hook = RandomStateHook()
    hook.after_load_checkpoint(None, {'meta': {'iter': 2}})
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    hook.before_train_iter(SimpleNamespace(iter=2), 0)
    assert torch.equal(torch.rand(3), expected)
