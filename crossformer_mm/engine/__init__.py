from .checkpoint_hook import AtomicCheckpointHook
from .checkpoints import ResumeError, find_resume_checkpoint, state_dict_mismatch
from .hooks import CheckpointFitHook, CheckpointMismatchError, RandomStateHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointFitHook', 'CheckpointMismatchError', 'RandomStateHook',
    'ResumeError', 'find_resume_checkpoint', 'state_dict_mismatch'
]
