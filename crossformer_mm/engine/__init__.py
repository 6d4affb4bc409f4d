from .checkpoint_fit_hook import CheckpointFitHook, CheckpointMismatchError, state_dict_mismatch
from .checkpoint_hook import AtomicCheckpointHook
from .optimizers import BackboneLayerDecayOptimWrapperConstructor
from .random_state_hook import RandomStateHook
from .resume import ResumeError, find_resume_checkpoint

__all__ = [
    'AtomicCheckpointHook', 'BackboneLayerDecayOptimWrapperConstructor', 'CheckpointFitHook',
    'CheckpointMismatchError', 'RandomStateHook', 'ResumeError', 'find_resume_checkpoint',
    'state_dict_mismatch'
]
