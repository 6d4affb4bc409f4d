from .checkpoint_fit_hook import CheckpointFitHook, CheckpointMismatchError, state_dict_mismatch
from .checkpoint_hook import AtomicCheckpointHook
from .optimizers import BackboneLayerDecayOptimWrapperConstructor
from .random_state_hook import RandomStateHook
from .reduced_precision import ReducedPrecisionHook, compute_layers_in
from .resume import ResumeError, find_resume_checkpoint

__all__ = [
    'AtomicCheckpointHook', 'BackboneLayerDecayOptimWrapperConstructor', 'CheckpointFitHook',
    'CheckpointMismatchError', 'RandomStateHook', 'ReducedPrecisionHook', 'ResumeError',
    'compute_layers_in', 'find_resume_checkpoint', 'state_dict_mismatch'
]
