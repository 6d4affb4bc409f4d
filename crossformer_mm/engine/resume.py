"""Which checkpoint ``--resume`` continues from.

mmengine resumes from the file that ``last_checkpoint`` names; without that file it logs
"Auto resumed from the latest checkpoint None" and starts again from iteration 0, overwriting
the checkpoints of the work dir. :func:`find_resume_checkpoint` falls back to the newest
checkpoint that can be read, by the iteration it stores, and refuses to start over on top of
checkpoints it cannot read.
"""
import glob
import logging
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.logging import print_log

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
