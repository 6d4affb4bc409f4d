"""Params and FLOPs of the models of this package, counted the way the papers count them.

FLOPs are mmengine's :class:`~mmengine.analysis.FlopAnalyzer` counts: one multiply-add is one
FLOP, convolutions and linear layers count their weights' multiply-adds (no bias), norms count a
few per element, element-wise ops are free. The analyzer traces the model, so it sees every
``matmul``, but it has no handle for ``aten::scaled_dot_product_attention``, the fused op
CrossFormer's group attention runs, and would skip it as hook-based counters (mmcv 1.x's
``get_model_complexity_info``) skip the attention products. :func:`sdpa_flop_jit` counts them:
q k^T and attn v, ``B * heads * N * M * head_dim`` multiply-adds each, as they are computed
(this backbone never attends over padding). Nor has it one for ``aten::baddbmm``, which torch's
multi-head attention runs for a masked q k^T (Mask2Former's decoder): :func:`baddbmm_flop_jit`.

The papers' detection and segmentation FLOPs count long distance attention as section 3.2
describes it, groups of ``ceil(H / I) x ceil(W / I)`` tokens, ``I x I`` of them; the official
code (and ours) attends within ``G x G`` tokens taken ``I`` apart, which is far cheaper once a
map is larger than ``G * I``; and the official code attends over the padding of maps that G
does not divide. ``lda_as_published=True`` counts the attention products the papers' way
instead (see :func:`published_pairs`), which brings the detection counts within 1% of
Tables III and IV.

The model is run as the official ``get_flops.py`` tools ran it, on one random image:
backbone, neck and heads without post-processing (``mode='tensor'``); a two-stage detector runs
mmdet 2's ``forward_dummy`` on 1000 proposals, the first 100 of which go through the mask head(s),
so that the count does not depend on what a randomly initialised RPN proposes. DINO and
Mask2Former get data samples that hold the image size only (mmseg's Mask2Former head, which
the segmentor's tensor mode calls without them, is called with them).
"""
import inspect
import math
from contextlib import contextmanager
from typing import Any, Iterator, List, NamedTuple, Sequence, Tuple, Union

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import bmm_flop_jit, get_shape
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from .models.backbones.crossformer import GroupAttention
from .models.backbones.grouping import Grouping

#: Proposals fed to the RoI head of a two-stage detector, and how many reach its mask head
#: (mmdet 2's ``forward_dummy``, which the published FLOPs of Mask R-CNNs were counted with).
NUM_PROPOSALS, NUM_MASK_ROIS = 1000, 100


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``aten::scaled_dot_product_attention``: q k^T plus attn v.

    q is (..., N, E), k (..., M, E) and v (..., M, Ev): N * M * E + N * M * Ev multiply-adds per
    leading index. The softmax, scale and mask are element-wise and free, as everywhere else.
    """
    q, k, v = (get_shape(val) for val in inputs[:3])
    *batch, n, e = q
    m, ev = k[-2], v[-1]
    return int(torch.Size(batch).numel()) * n * m * (e + ev)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``aten::baddbmm``, ``input + batch1 @ batch2``: the product's multiply-adds, as
    for ``aten::bmm`` (the sum is element-wise). torch's multi-head attention takes q k^T so
    when it has a mask, as Mask2Former's masked attention does."""
    return bmm_flop_jit(inputs[1:3], outputs)


def parse_input_shape(shape: Sequence[int]) -> Tuple[int, int, int]:
    """(H, W), (S,) or (C, H, W) -> (C, H, W); a square image for one number, 3 channels."""
    shape = tuple(shape)
    if len(shape) == 1:
        shape = (3, shape[0], shape[0])
    elif len(shape) == 2:
        shape = (3, ) + shape
    if len(shape) != 3 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1
                              for s in shape):
        raise ValueError(f'input shape must be one, two (H, W) or three (C, H, W) positive '
                         f'integers, got {shape}')
    return shape


class _TensorForward(nn.Module):
    """Runs a model without post-processing, with the image tensor as its only input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Any:
        model = self.model
        if getattr(model, 'with_rpn', False) and getattr(model, 'with_roi_head', False):
            return _two_stage_forward(model, inputs)
        if not isinstance(model, BaseModel):
            return model(inputs)
        samples = _data_samples(inputs)
        head = getattr(model, 'decode_head', None)
        if head is not None and 'batch_data_samples' in inspect.signature(head.forward).parameters:
            # mmseg's Mask2Former head, which the segmentor's tensor mode calls without them.
            return head(model.extract_feat(inputs), samples)
        return model(inputs, samples, mode='tensor')


def _data_samples(inputs: Tensor) -> List[BaseDataElement]:
    """The image sizes of the batch, which DETR-like detectors (DINO) read in tensor mode."""
    shape = tuple(inputs.shape[-2:])
    meta = dict(img_shape=shape, batch_input_shape=shape, pad_shape=shape, ori_shape=shape)
    return [BaseDataElement(metainfo=meta) for _ in range(len(inputs))]


def _two_stage_forward(model: nn.Module, inputs: Tensor) -> tuple:
    """mmdet 2's ``forward_dummy``: every box stage on the proposals, every mask stage on 100.

    mmdet 3's tensor mode instead takes the RPN's post-NMS proposals (data dependent) and, for
    Cascade R-CNN, runs the mask heads on all of them.
    """
    x = model.extract_feat(inputs)
    outs = (model.rpn_head(x), )
    height, width = inputs.shape[-2:]
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(NUM_PROPOSALS, 2, 2, generator=generator) * torch.tensor([width, height])
    boxes = torch.cat([xy.min(1).values, xy.max(1).values], 1).to(inputs)
    rois = torch.cat([boxes.new_zeros(NUM_PROPOSALS, 1), boxes], 1)
    roi_head = model.roi_head
    stages = [(i, ) for i in range(roi_head.num_stages)] if hasattr(roi_head, 'num_stages') \
        else [()]
    for stage in stages:
        if roi_head.with_bbox:
            bbox = roi_head._bbox_forward(*stage, x, rois)
            outs += (bbox['cls_score'], bbox['bbox_pred'])
        if roi_head.with_mask:
            outs += (roi_head._mask_forward(*stage, x, rois[:NUM_MASK_ROIS])['mask_preds'], )
    return outs


def published_pairs(grouping: Grouping) -> int:
    """(query, key) attention pairs per image of one block, counted as the papers count them.

    LDA as section 3.2 describes it: ``I * I`` groups of ``ceil(H / I) * ceil(W / I)`` tokens.
    SDA as the official code runs it: every group of the padded map holds G x G tokens.
    """
    if grouping.kind == 'lda':
        interval = grouping.dilation
        tokens = math.ceil(grouping.height / interval) * math.ceil(grouping.width / interval)
        return interval**2 * tokens**2
    (rows, cols), (gh, gw) = grouping.spans, grouping.group_shape
    return rows * cols * (gh * gw)**2


def published_correction(x_shape: Sequence[int], grouping: Grouping) -> int:
    """FLOPs to add to one block's attention products (q k^T and attn v) as executed, which
    skip all padding, to count them as the papers do (:func:`published_pairs`)."""
    batch, channels = int(x_shape[0]), int(x_shape[-1])
    return 2 * batch * channels * (published_pairs(grouping) - grouping.attention_pairs)


@contextmanager
def _published_attention(model: nn.Module, total: List[int]) -> Iterator[None]:
    """Sum :func:`published_correction` over the group attentions that run."""
    def hook(module: nn.Module, args: tuple) -> None:
        total[0] += published_correction(args[0].shape, args[1])

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, GroupAttention)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class Complexity(NamedTuple):
    params: int
    flops: int            # attention as executed
    published_flops: int  # long distance attention as the papers count it


def count_complexity(model: nn.Module, input_shape: Union[int, Sequence[int]]) -> Complexity:
    """Params, and FLOPs both as executed and as published, from one trace of ``model`` on one
    image of ``input_shape`` ((H, W) or (C, H, W)).

    ``model`` is a built mmdet / mmseg / mmpretrain model or any module taking an image batch.
    Parameters are all of the model's (frozen ones included); FLOPs are multiply-adds with the
    attention products included (see the module docstring).
    """
    if isinstance(input_shape, int):
        input_shape = (input_shape, )
    shape = parse_input_shape(input_shape)
    params = parameter_count(model)['']
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        inputs = torch.randn(1, *shape, device=device)
        analyzer = FlopAnalyzer(_TensorForward(model), (inputs, ))
        analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
        analyzer.set_op_handle('aten::baddbmm', baddbmm_flop_jit)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        correction = [0]
        with torch.no_grad(), _published_attention(model, correction):
            flops = analyzer.total()
    finally:
        model.train(was_training)
    # Exact integers: a trace may give the shapes as tensors (the correction is then an int64
    # tensor) and a head's FLOP handle a float; their sum would be rounded to float32.
    return Complexity(int(params), int(flops), int(flops) + int(correction[0]))
