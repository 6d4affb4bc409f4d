"""Which checkpoint ``--resume`` continues from, and whether a checkpoint fits a model.

mmengine resumes from the file that ``last_checkpoint`` names; without that file it logs
"Auto resumed from the latest checkpoint None" and starts again from iteration 0, overwriting
the checkpoints of the work dir. :func:`find_resume_checkpoint` falls back to the newest
checkpoint that can be read, by the iteration it stores, and refuses to start over on top of
checkpoints it cannot read. :func:`state_dict_mismatch` is the check ``tools/test.py`` makes
before it evaluates: mmengine only warns when the weights do not fit, and then reports the
score of a randomly initialised model.
"""
import glob
import logging
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from ..checkpoint import read_checkpoint


class ResumeError(ValueError):
    """``--resume`` found checkpoints but none it can continue from."""


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from, or None when the work dir holds no checkpoint files.

    ``last_checkpoint`` decides when it names a readable file; otherwise every ``*.pth`` of the
    work dir is read and the one with the highest stored (iteration, epoch) wins. Files that
    cannot be read are named in a warning. Raises :class:`ResumeError` when there are
    checkpoint files but none can be resumed from.
    """
    pointed = _read_pointer(work_dir)
    if pointed is not None:
        problem = _resume_problem(pointed)
        if problem is None:
            return pointed
        print_log(f'last_checkpoint names {pointed}, which cannot be resumed from ({problem}); '
                  f'looking for the newest complete checkpoint in {work_dir}', logger='current',
                  level=logging.WARNING)
    files = sorted(glob.glob(osp.join(glob.escape(work_dir), '*.pth')))
    found: List[Tuple[Tuple[int, int], str]] = []
    skipped = []
    for path in files:
        try:
            checkpoint = read_checkpoint(path)
            problem = _checkpoint_problem(checkpoint)
        except Exception as err:  # anything unreadable is skipped, and named
            problem = str(err)
        if problem is None:
            meta = checkpoint['meta']
            found.append(((meta['iter'], meta.get('epoch', 0)), path))
        else:
            skipped.append(path)
            print_log(f'Skipping {path}: {problem}', logger='current', level=logging.WARNING)
    if found:
        step, path = max(found)
        print_log(f'Resuming from {path} (iteration {step[0]}, epoch {step[1]}), the newest '
                  f'complete checkpoint in {work_dir}', logger='current')
        return path
    if skipped:
        raise ResumeError(
            f'--resume: none of the {len(skipped)} checkpoint files in {work_dir} can be resumed '
            f'from ({", ".join(osp.basename(p) for p in skipped[:5])}'
            f'{" ..." if len(skipped) > 5 else ""})')
    if pointed is not None:
        print_log(f'No checkpoint in {work_dir} to resume from; training from the start',
                  logger='current', level=logging.WARNING)
    return None


def _read_pointer(work_dir: str) -> Optional[str]:
    """The path in ``work_dir/last_checkpoint``, if there is one."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def _resume_problem(path: str) -> Optional[str]:
    """Why the checkpoint at ``path`` cannot be resumed from, or None if it can."""
    try:
        return _checkpoint_problem(read_checkpoint(path))
    except Exception as err:
        return str(err)


def _checkpoint_problem(checkpoint) -> Optional[str]:
    """Why a loaded checkpoint is not one a training run saved, or None."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('meta'), dict):
        return 'not an mmengine checkpoint (no meta)'
    if not isinstance(checkpoint['meta'].get('iter'), int):
        return 'its meta stores no iteration'
    if 'optimizer' not in checkpoint:
        return 'it holds no optimizer state (saved for evaluation, not for resuming)'
    return None


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
