"""The captured formulation: one graph of the backbone that serves every input size.

Eager, a stage groups its tokens with a :class:`~.grouping.Grouping`, a permutation computed in
Python from the map's concrete size (the fastest: the last span's groups are simply smaller).
A graph captured from that (``torch.compile``, ``torch.export``, ONNX) would be pinned to the
size it saw. While the model is being captured (:func:`capturing`), ``crossformer.py`` hands
each place where the two differ to this module instead, one dispatch each:

* grouping (:func:`groupings`), for a graph that serves every size:

  - exporters (``torch.export``, ONNX), whose graphs hold plain ops: :class:`PaddedGrouping`,
    the official padded layout (constant G x G groups over the map padded to whole spans,
    padded keys masked, padded queries dropped), whose sizes are integer arithmetic on the
    input's, and attention over it, :func:`padded_attention` (the mask rides in q and k, so
    that PyTorch's fused kernel runs);
  - a CPU graph of ``torch.compile`` at symbolic sizes: :class:`RuntimeGrouping`, the eager
    Grouping built when the graph runs, inside ops (:func:`attend_groups`), which attends over
    no padded slot; the MLP's inference chunks are an op too (``memory.gelu_mlp``);
* the DPB's LayerNorms: :func:`dpb_mlp` with a two-pass variance (ONNX Runtime's one-pass
  variance turns negative on DPB's few features);
* the whole-map rule (a map no larger than G is one group): a guard under ``torch.compile``,
  arithmetic for the legacy ONNX exporter, a ``torch.cond`` branch for ``torch.export``
  (:func:`stage_blocks`);
* only while exporting (:func:`exporting`), a margin row and column on every stage map, so that
  no size is ever 1 (:func:`zero_margin`, :func:`pad_with_margin`, :func:`drop_margin`);
* only while ``torch.compile`` captures a CPU graph, every convolution (CEL, ACL) as an op
  inductor does not see into (:func:`conv2d`), so that the (B, H, W, C) stage maps and the
  convolutions keep PyTorch's layouts.

The formulation computes exactly the official semantics. ``tests/models/backbones/test_export.py``
runs it eagerly (with and without the margin) against the eager path and the official-style
oracle, and checks the graphs of every capture route against eager at sizes that cross the
whole-map transitions.
"""
import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, ContextManager, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx.experimental import _config as fx_config
from torch.fx.experimental import symbolic_shapes

from . import memory
from .grouping import Grouping, Size, _mod, _offset_index, _offsets

if TYPE_CHECKING:   # the model imports this module
    from .crossformer import CrossFormerStage, GroupAttention


def capturing() -> bool:
    """Whether the model is being captured into a graph (``torch.compile``, ``torch.export``,
    the dynamo or the legacy ONNX exporter) that should serve other input sizes than the one
    it sees. Plain ``torch.jit.trace``, which FLOP counters use, is not: it sees the eager
    path."""
    return (torch.compiler.is_compiling() or torch.compiler.is_exporting()
            or torch.onnx.is_in_onnx_export())


def active(x: Tensor) -> bool:
    """Whether the grouping and MLP of the (B, H, W, C) map ``x`` take this formulation:
    while captured, except by a ``torch.compile`` that sees concrete sizes (``dynamic=False``,
    or the default's first graph), which captures the eager formulation for that size, the
    faster. A new input size then gets a graph of symbolic sizes (``torch.compile``'s
    automatic dynamic shapes), this formulation, which serves the sizes after it."""
    compiled_at_concrete_size = (torch.compiler.is_compiling()
                                 and not torch.compiler.is_exporting()
                                 and all(map(_static, x.shape[:3])))
    return capturing() and not compiled_at_concrete_size


def _static(size: Size) -> bool:
    """Whether a size is fixed in the graph being compiled. Dynamo shows a symbolic size to
    ``isinstance`` as an int; ``has_static_value`` is its way to ask (a torch without it counts
    every compiled size as symbolic)."""
    has_static_value = getattr(symbolic_shapes, 'has_static_value', None)
    return has_static_value is not None and has_static_value(size)


def exporting() -> bool:
    """Whether ``torch.export`` (or the dynamo ONNX exporter) is capturing the model: stage maps
    then carry a margin, see :func:`zero_margin`."""
    return torch.compiler.is_exporting()


def _at_most(a: Size, b: Size) -> Size:
    """1 if ``a <= b`` else 0, for positive ``a``, ``b``: ``2b // (a + b)``. Arithmetic, not a
    comparison, so that a captured graph computes it instead of fixing it at capture time."""
    return 2 * b // (a + b)


@dataclass(frozen=True)
class PaddedGrouping:
    """The official padded groups of H x W maps, for one graph that serves every input size.

    Every group has the shape (gh, gw): G x G, or (H + 1) x (W + 1) for a map no larger than G
    in either direction (one whole-map group, plus padding). The map is padded at the bottom
    and right to whole spans of gh * dilation rows and gw * dilation columns. ``rows`` /
    ``cols`` give the map position of every (group, slot); ``padded`` marks the slots of
    padding (masked keys, dropped queries; their position is 0, any map token would do), and
    ``inverse`` gives the (group, slot) of every token of the map, and of its margin if it has
    one (see :func:`zero_margin`). Everything is integer arithmetic on the sizes, with no
    reshape of a size-dependent dimension, so that a captured graph follows the input's size.
    """
    kind: str
    group_shape: Tuple[Size, Size]  # (gh, gw)
    dilation: Size                  # 1 for SDA and whole-map groups, I for LDA
    offsets: Tensor                 # ((2gh-1)(2gw-1), 2) relative offsets (dy, dx), DPB's input
    offset_index: Tensor            # (N, N): the offsets row of each (query, key) pair
    rows: Tensor                    # (groups, N): map row of each slot (0 on padding)
    cols: Tensor                    # (groups, N): map column of each slot (0 on padding)
    padded: Tensor                  # (groups, N) bool: the slots of padding
    inverse: Tuple[Tensor, Tensor]  # (H, W) group and slot of each token (+ margin, if any)

    @staticmethod
    def build(kind: str, height: Size, width: Size, group_size: int, interval: int,
              device: torch.device, whole: Optional[bool] = None,
              margin: int = 0) -> 'PaddedGrouping':
        """SDA (``kind='sda'``) or LDA groups; a map no larger than G is one group.

        ``whole`` says whether the map is one group; ``None`` computes it from the sizes with
        arithmetic (for the legacy ONNX exporter, which records arithmetic on sizes but no
        control flow; dynamo instead branches with ``torch.cond``, as its symbolic shapes would
        grow unwieldy with group shapes that are arithmetic on the sizes). ``margin``: the
        rows and columns of the map past H and W (see :func:`zero_margin`), 0 or 1.
        """
        dilation = 1 if kind == 'sda' else interval
        if whole is None:
            whole_h, whole_w = _at_most(height, group_size), _at_most(width, group_size)
            whole = whole_h + whole_w - whole_h * whole_w    # min(H, W) <= G
            gh = group_size + whole * (height + 1 - group_size)
            gw = group_size + whole * (width + 1 - group_size)
            dilation = dilation - whole * (dilation - 1)
        elif whole:
            gh, gw, dilation = height + 1, width + 1, 1
        else:
            gh = gw = group_size
        span_h, span_w = gh * dilation, gw * dilation
        if whole is True:
            spans_w = 1
            groups = 1
        else:
            spans_w = (width + span_w - 1) // span_w
            groups = (height + span_h - 1) // span_h * spans_w * dilation * dilation
        # Groups in the official order: spans (row-major), then offsets within a span
        # (row-major); slots row-major within a group. A whole-map group gets one more row and
        # column of padding and the groups one more of padding only (it lands past the map), so
        # that no size is 1 at any input size: dynamo would have to specialise on it.
        group = torch.arange(groups + 1, device=device)
        slot = torch.arange(gh * gw, device=device)
        per_span = dilation * dilation
        row = ((group // (spans_w * per_span)) * span_h
               + _mod(group // dilation, dilation))[:, None] + (slot // gw * dilation)[None, :]
        col = (_mod(group // per_span, spans_w) * span_w + _mod(group, dilation))[:, None] \
            + (_mod(slot, gw) * dilation)[None, :]
        padded = (row >= height) | (col >= width)
        # The (group, slot) of map token (r, c): the same decomposition read backwards. A
        # margin row and column take row and column 0's.
        r = torch.arange(height + margin, device=device)[:, None]
        c = torch.arange(width + margin, device=device)[None, :]
        if margin:
            r, c = _mod(r, height), _mod(c, width)
        r_in, c_in = _mod(r, span_h), _mod(c, span_w)      # within the span
        inv_group = ((r // span_h) * spans_w * per_span + _mod(r_in, dilation) * dilation
                     + (c // span_w) * per_span + _mod(c_in, dilation))
        inv_slot = r_in // dilation * gw + c_in // dilation
        return PaddedGrouping(kind, (gh, gw), dilation, _offsets(gh, gw, device),
                              _offset_index((gh, gw), (gh, gw), device),
                              torch.where(padded, 0, row), torch.where(padded, 0, col), padded,
                              (inv_group, inv_slot))


@dataclass(frozen=True)
class RuntimeGrouping:
    """The eager :class:`~.grouping.Grouping` of B x H x W maps, built when the graph runs,
    inside ops, from the concrete sizes: how a CPU graph of symbolic sizes groups tokens.

    That graph (``torch.compile`` from its second input size on) then attends exactly as eager
    does, with no padded slot: the padded layout attends over whole spans (at 800 x 1216,
    stage 1's LDA over 448 columns for 304) and ran at 0.78x eager there. The graph holds what
    is the same at every size: the kind, G, I and the DPB's offsets; :func:`grouping_order`
    gives the token permutation and :func:`attend_groups` the attention, region by region.
    """
    kind: str
    size: Tuple[Size, Size, Size]   # (B, H, W)
    group_size: int
    interval: int
    group_shape: Tuple[Size, Size]  # the groups' largest shape, whose offsets the DPB gets
    offsets: Tensor                 # DPB's input: every relative offset (dy, dx) of group_shape
    order: Tensor                   # (B*H*W,) as Grouping's
    inverse: Tensor                 # (B*H*W,)

    @staticmethod
    def build(kind: str, x: Tensor, group_size: int, interval: int,
              whole: bool) -> 'RuntimeGrouping':
        """The groups of the (B, H, W, C) map ``x``; ``whole``: whether it is one group."""
        size = tuple(x.shape[:3])
        shape = _table_shape(*size[1:], group_size, whole)
        order, inverse = _grouping_order(x, kind, list(size), group_size, interval)
        return RuntimeGrouping(kind, size, group_size, interval, shape,
                               _offsets(*shape, x.device), order, inverse)


@functools.lru_cache(maxsize=16)
def _grouping(kind: str, size: Tuple[int, int, int], group_size: int, interval: int,
              device: torch.device) -> Grouping:
    """The eager Grouping, once per geometry: the ops of one forward ask for it per block."""
    b, h, w = size
    return Grouping.build(kind, h, w, group_size, interval, device, b,
                          _table_shape(h, w, group_size, min(h, w) <= group_size))


def _table_shape(height: Size, width: Size, group_size: int, whole: bool) -> Tuple[Size, Size]:
    """The group shape whose offsets a graph of symbolic sizes has the DPB compute: G x G
    (smaller LDA groups take a part of its offsets), or for one whole-map group the padded
    layout's (H + 1) x (W + 1), so that no size is 1 (dynamo would specialise on it) and a
    folded DPB (:mod:`crossformer_mm.deploy.fold_dpb`) serves both."""
    return (height + 1, width + 1) if whole else (group_size, group_size)


@torch.library.custom_op('crossformer_mm::grouping_order', mutates_args=())
def _grouping_order(x: Tensor, kind: str, size: List[int], group_size: int,
                    interval: int) -> Tuple[Tensor, Tensor]:
    """(order, inverse) of the eager Grouping of ``size`` = (B, H, W) maps on ``x``'s device."""
    grouping = _grouping(kind, tuple(size), group_size, interval, x.device)
    return grouping.order.clone(), grouping.inverse.clone()


@_grouping_order.register_fake
def _(x: Tensor, kind: str, size: List[int], group_size: int,
      interval: int) -> Tuple[Tensor, Tensor]:
    tokens = size[0] * size[1] * size[2]
    return x.new_empty(tokens, dtype=torch.long), x.new_empty(tokens, dtype=torch.long)


def attend_groups(qkv: Tensor, table: Tensor, grouping: RuntimeGrouping) -> Tensor:
    """:func:`~.memory.attend_groups` over ``grouping``'s groups, as an op."""
    return _attend_groups(qkv, table, grouping.kind, list(grouping.size), grouping.group_size,
                          grouping.interval)


@torch.library.custom_op('crossformer_mm::attend_groups', mutates_args=())
def _attend_groups(qkv: Tensor, table: Tensor, kind: str, size: List[int], group_size: int,
                   interval: int) -> Tensor:
    grouping = _grouping(kind, tuple(size), group_size, interval, qkv.device)
    return memory.attend_groups(qkv, table, grouping, memory.attend_cpu)


@_attend_groups.register_fake
def _(qkv: Tensor, table: Tensor, kind: str, size: List[int], group_size: int,
      interval: int) -> Tensor:
    return qkv.new_empty(qkv.shape[0], qkv.shape[1] // 3)


@torch.library.custom_op('crossformer_mm::attend_groups_backward', mutates_args=())
def _attend_groups_backward(grad: Tensor, qkv: Tensor, table: Tensor, kind: str,
                            size: List[int], group_size: int,
                            interval: int) -> Tuple[Tensor, Tensor]:
    grouping = _grouping(kind, tuple(size), group_size, interval, qkv.device)
    return memory.attend_groups_backward(grad, qkv, table, grouping)


@_attend_groups_backward.register_fake
def _(grad: Tensor, qkv: Tensor, table: Tensor, kind: str, size: List[int], group_size: int,
      interval: int) -> Tuple[Tensor, Tensor]:
    return torch.empty_like(qkv), torch.empty_like(table)


def _attend_groups_setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    ctx.save_for_backward(*inputs[:2])
    ctx.geometry = inputs[2:]


def _attend_groups_grad(ctx, grad: Tensor) -> tuple:
    return (*_attend_groups_backward(grad, *ctx.saved_tensors, *ctx.geometry),
            None, None, None, None)


_attend_groups.register_autograd(_attend_groups_grad, setup_context=_attend_groups_setup_context)


def groupings(stage: 'CrossFormerStage', x: Tensor, kinds: Sequence[str],
              whole: Optional[bool] = None) -> List[Union[PaddedGrouping, RuntimeGrouping]]:
    """The stage's groups of the (B, H, W, C) map ``x`` (with its margin while exporting):
    :class:`RuntimeGrouping` in a CPU graph of ``torch.compile``, :class:`PaddedGrouping` in
    other captures (every exporter: their graphs hold plain ops only).

    ``whole``: whether the map is one group, as :func:`stage_blocks` decided; ``None`` under
    ``torch.compile`` makes it a guard (sizes recompile only where a stage's maps turn into or
    out of one whole-map group: ``torch.cond`` fails inside compile today), and under the
    legacy ONNX exporter arithmetic on the sizes (:meth:`PaddedGrouping.build`).
    """
    margin = int(exporting())
    h, w = x.shape[1] - margin, x.shape[2] - margin
    if whole is None and not torch.jit.is_tracing():
        whole = bool(torch.sym_min(h, w) <= stage.group_size)
    if compiling_cpu(x):
        return [RuntimeGrouping.build(kind, x, stage.group_size, stage.interval, whole)
                for kind in kinds]
    return [PaddedGrouping.build(kind, h, w, stage.group_size, stage.interval, x.device,
                                 whole, margin) for kind in kinds]


def compiling_cpu(x: Tensor) -> bool:
    """Whether ``torch.compile`` (not an export) is capturing a CPU graph with ``x``."""
    return (torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and x.device.type == 'cpu')


def stage_blocks(stage: 'CrossFormerStage', x: Tensor) -> Tensor:
    """``torch.export``: the stage's blocks with the official whole-map rule as a branch of
    the graph (``torch.cond``), on a map that carries a margin."""

    def whole_map(x: Tensor) -> Tensor:
        return stage.blocks_forward(x, whole=True)

    def grouped(x: Tensor) -> Tensor:
        return stage.blocks_forward(x, whole=False)

    whole = torch.sym_min(*x.shape[1:3]) - 1 <= stage.group_size   # less the margin
    return torch.cond(whole, whole_map, grouped, (x, ))


def masked_logit(dtype: torch.dtype) -> float:
    """A logit whose softmax weight is exactly 0, as the official -1e6, within ``dtype``."""
    return -1e6 if torch.finfo(dtype).max > 1e6 else -3e4


def padded_attention(attn: 'GroupAttention', x: Tensor, grouping: PaddedGrouping) -> Tensor:
    """``attn`` over the official padded groups, (B, H, W, C) -> (B, H, W, C), no size fixed.

    The padded keys' mask rides along as one more channel of q (1) and k (the masked logit
    on padding, 0 elsewhere), so that the attention keeps one (heads, N, N) bias for all
    groups instead of a (groups, heads, N, N) mask; padded queries are never gathered back.
    v gets a zero channel too and the bias a batch axis: with one head size for q, k and v
    and a 4-D mask, PyTorch's fused CPU kernel runs instead of the math path.
    """
    b = x.shape[0]
    heads = attn.num_heads
    head_dim = attn.qkv.in_features // heads  # from the module: a size the tracer keeps fixed
    qkv = attn.qkv(x)[:, grouping.rows, grouping.cols]       # (B, groups, N, 3C)
    q, k, v = qkv.unflatten(-1, (3, heads, head_dim)).permute(3, 0, 1, 4, 2, 5).unbind(0)
    mask = grouping.padded.to(q.dtype) * masked_logit(q.dtype)          # (groups, N)
    mask = mask[None, :, None, :, None].expand(b, -1, heads, -1, -1)
    out = F.scaled_dot_product_attention(   # 4-D for the exporters: (B * groups, heads, ...)
        F.pad(q, (0, 1), value=1.).flatten(0, 1), torch.cat([k, mask], -1).flatten(0, 1),
        F.pad(v, (0, 1)).flatten(0, 1),
        attn_mask=attn.dpb(grouping)[:, grouping.offset_index].to(q.dtype)[None],
        scale=head_dim**-0.5)[..., :head_dim].unflatten(0, (b, -1))  # (B, groups, heads, N, d)
    out = out.transpose(2, 3)[:, grouping.inverse[0], grouping.inverse[1]]
    return attn.proj(out.flatten(-2))


def dpb_mlp(layers: nn.Sequential, x: Tensor) -> Tensor:
    """The DPB's LayerNorm-ReLU-Linear layers with :func:`two_pass_layer_norm`."""
    for norm, relu, linear in layers:
        x = linear(relu(two_pass_layer_norm(x, norm)))
    return x


def two_pass_layer_norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    """``norm(x)`` with the variance taken of ``x - mean``, in plain ops.

    ONNX Runtime's LayerNormalization (opset 17+, both exporters) takes the variance as
    ``mean(x^2) - mean(x)^2``. DPB's LayerNorms have few features (dim / 16: 2 for a stage of
    32 channels) and inputs that grow with the offsets, so for two nearly equal features this
    cancels to a negative variance larger than ``eps`` and the bias turns NaN: a whole-map
    group of 9 x 25 tokens (offsets up to 24) does it. The two-pass variance cannot be
    negative; the graph stays as cheap (DPB runs on the offsets, not on the tokens).
    """
    x = x - x.mean(-1, keepdim=True)
    x = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + norm.eps)
    return x * norm.weight + norm.bias


def zero_margin(x: Tensor) -> Tensor:
    """An exported (..., H + 1, W + 1) map with its margin (last row and column) set to 0.

    While exporting, stage maps are one row and column larger than the image gives (the
    margin), so that no size is 1 at any input size: ``torch.export`` may not guard on a size
    being 1 (a 32 x 32 image gives stage 4 a 1 x 1 map), and every convolution, broadcast and
    contiguity check would. ``torch.compile`` may guard (it recompiles for such sizes), and the
    legacy exporter records no guards, so they go without: the margin costs compiled CPU
    inference 20-30% at 800 x 1216. The margin holds no map token; a convolution, whose
    padding is 0 at the map's edge, must see it as 0.
    """
    h, w = x.shape[-2:]
    keep = ((torch.arange(h, device=x.device) < h - 1)[:, None]
            & (torch.arange(w, device=x.device) < w - 1)[None, :])
    return x * keep.to(x.dtype)


def pad_with_margin(x: Tensor, stride: int, is_stem: bool) -> Tensor:
    """A CEL's (B, C, H, W) input padded with zeros to its size + ``stride``, so that its
    output has a margin; a later CEL's input has one already (zeroed: its convolutions must
    read it as padding)."""
    if is_stem:
        return F.pad(x, (0, stride, 0, stride))
    return F.pad(zero_margin(x), (0, stride - 1, 0, stride - 1))


def drop_margin(x: Tensor) -> Tensor:
    """An exported (..., H + 1, W + 1) map less its margin (see :func:`zero_margin`).

    Its H or W can be 1, and a tensor's contiguity depends on whether a size is 1, so
    ``torch.export`` would guard on it and reject inputs below 64 px. The result is a new
    contiguous tensor (a view's strides would be checked again after this op) whose strides are
    taken size-obliviously (as if no size were 1): only this op's metadata depends on it.
    """
    with _size_oblivious_strides():
        x = x.index_select(-2, torch.arange(x.shape[-2] - 1, device=x.device))
        return x.index_select(-1, torch.arange(x.shape[-1] - 1, device=x.device))


def _size_oblivious_strides() -> ContextManager:
    """torch's switch for size-oblivious reasoning (torch >= 2.7.1; before, nothing changes)."""
    if hasattr(fx_config, 'backed_size_oblivious'):
        return fx_config.patch(backed_size_oblivious=True)
    return contextlib.nullcontext()


def conv2d(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``; while ``torch.compile`` (not an export) captures a CPU graph, through an op
    that inductor does not see into (:func:`opaque_conv2d`)."""
    if compiling_cpu(x):
        return opaque_conv2d(conv, x)
    return conv(x)


def opaque_conv2d(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` (one stride and padding for both axes) through an op that inductor does not
    see into, so that a CPU graph with the backbone has no convolution of inductor's own.

    Inductor then makes every 4-D tensor upstream of a convolution channels-last as if it were
    (B, C, H, W) (``layout_optimization``, always on for CPU graphs with a convolution, for
    oneDNN). The stage maps are (B, H, W, C): they would get H as their fastest dimension, so
    that every LayerNorm and residual add of a stage reads across strides, and copies turn
    layouts back and forth (CrossFormer-S, 512 x 512, 2 threads: compiled inference at 0.84x
    eager with aten's convolutions, 1.05x through this op). In training it also keeps the
    stem's weight gradient in PyTorch's layout: for 3 input channels and kernels up to 32 x 32,
    oneDNN's channels-last one is 14x slower. The op computes exactly what ``conv(x)``
    computes, in the layout eager PyTorch picks, and in autocast's dtype where autocast is on
    (it does not reach into a custom op).
    """
    weight, bias = conv.weight, conv.bias
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    return _conv2d(x, weight, bias, conv.stride[0], conv.padding[0], conv.groups)


@torch.library.custom_op('crossformer_mm::conv2d', mutates_args=())
def _conv2d(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int,
            groups: int) -> Tensor:
    return F.conv2d(x, weight, bias, stride, padding, 1, groups)


@_conv2d.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int,
      groups: int) -> Tensor:
    return F.conv2d(x, weight, bias, stride, padding, 1, groups)


@torch.library.custom_op('crossformer_mm::conv2d_backward', mutates_args=())
def _conv2d_backward(grad: Tensor, x: Tensor, weight: Tensor, stride: int, padding: int,
                     groups: int, input_grad: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """The gradients of :func:`_conv2d` for (x, weight, bias); ``x``'s is empty unless
    ``input_grad`` (the stem's input, an image, needs none). Each in the layout of its input,
    as the fake kernel says."""
    grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]], [stride] * 2, [padding] * 2, [1, 1], False, [0, 0],
        groups, [input_grad, True, True])
    grad_x = _in_layout_of(grad_x, x) if input_grad else x.new_empty(0)
    return grad_x, _in_layout_of(grad_weight, weight), grad_bias


@_conv2d_backward.register_fake
def _(grad: Tensor, x: Tensor, weight: Tensor, stride: int, padding: int, groups: int,
      input_grad: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return (torch.empty_like(x) if input_grad else x.new_empty(0), torch.empty_like(weight),
            grad.new_empty(weight.shape[0]))


def _in_layout_of(t: Tensor, like: Tensor) -> Tensor:
    return t if t.stride() == like.stride() else torch.empty_like(like).copy_(t)


def _conv2d_setup_context(ctx, inputs: Tuple, output: Tensor) -> None:
    x, weight, _, stride, padding, groups = inputs
    ctx.save_for_backward(x, weight)
    ctx.stride, ctx.padding, ctx.groups = stride, padding, groups


def _conv2d_grad(ctx, grad: Tensor) -> Tuple:
    x, weight = ctx.saved_tensors
    input_grad = ctx.needs_input_grad[0]
    grad_x, grad_weight, grad_bias = _conv2d_backward(grad, x, weight, ctx.stride, ctx.padding,
                                                      ctx.groups, input_grad)
    return grad_x if input_grad else None, grad_weight, grad_bias, None, None, None


_conv2d.register_autograd(_conv2d_grad, setup_context=_conv2d_setup_context)
