"""Deployment: ONNX export and its check in ONNX Runtime, mmdeploy on current PyTorch
(:mod:`.export`), and DPB folding for static graphs (:mod:`.fold_dpb`).

The backbone's own capture formulation, which makes one graph serve every input size, is part
of the model: :mod:`crossformer_mm.models.backbones.captured`.
"""
from .export import (Comparison, TensorOutputs, build_model, compare_onnxruntime, export_onnx,
                     mmdeploy_export, mmdeploy_torch2onnx)
from .fold_dpb import FoldedPositionBias, fold_position_bias

__all__ = [
    'Comparison', 'FoldedPositionBias', 'TensorOutputs', 'build_model', 'compare_onnxruntime',
    'export_onnx', 'fold_position_bias', 'mmdeploy_export', 'mmdeploy_torch2onnx'
]
