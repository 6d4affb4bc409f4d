"""CrossFormer (ICLR 2022) and CrossFormer++ (TPAMI) backbones.

The paper's parts, one class each:

* CEL, :class:`CrossScaleEmbedding`: convolutions of several kernel sizes and one stride whose
  outputs are concatenated, so every token mixes patches of several scales.
* SDA / LDA, :class:`GroupAttention` over a :class:`~.grouping.Grouping`: self-attention within
  groups of adjacent tokens (short distance) or of tokens sampled at a fixed interval (long
  distance). Blocks alternate the two.
* DPB, :class:`DynamicPositionBias`: an MLP from relative offsets to per-head biases, so one set
  of weights serves every group size.
* ACL, :class:`AmplitudeCoolingLayer` (CrossFormer++): a depth-wise convolution and a LayerNorm
  after every third block that keep activations from growing with depth.
* PGS (CrossFormer++): a per-stage group size, which is simply the ``group_size`` list.

Captured into a graph (``torch.compile``, ``torch.export``, ONNX), the model computes the same
with the formulation of :mod:`.captured`, which serves every input size; each place where the
two differ dispatches to it in one line (``captured.active(x)``, ``captured.capturing()``,
``captured.exporting()`` or ``captured.conv2d(conv, x)``). A ``torch.compile`` that
sees concrete sizes captures the eager formulation for them.
"""
import numbers
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from mmengine.registry import MODELS
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import captured, precision
from .captured import PaddedGrouping, RuntimeGrouping
from .grouping import Grouping
from .memory import attend_groups, gelu_mlp, permute_tokens
from .official_keys import official_to_ours

NUM_STAGES = 4

#: How a stage's tokens are grouped: eager, exported, or in a CPU graph of symbolic sizes.
Groups = Union[Grouping, PaddedGrouping, RuntimeGrouping]


class DynamicPositionBias(nn.Module):
    """DPB: maps each relative offset (dy, dx) to one attention bias per head.

    A linear projection of the offset, then three LayerNorm-ReLU-Linear layers. The attention
    gives it a hidden width of dim / 16, as the official code does (the paper says dim / 4).
    """

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2, width)
        self.layers = nn.Sequential(*[
            nn.Sequential(nn.LayerNorm(width), nn.ReLU(inplace=True),
                          nn.Linear(width, width if i < 2 else num_heads)) for i in range(3)
        ])

    def forward(self, grouping: Groups) -> Tensor:
        """The (heads, num_offsets) bias of every relative offset of ``grouping``'s groups."""
        x = self.proj(grouping.offsets.to(self.proj.weight.dtype))
        x = captured.dpb_mlp(self.layers, x) if captured.capturing() else self.layers(x)
        return x.t()


class GroupAttention(nn.Module):
    """Multi-head self-attention within the groups of a :class:`Grouping` (SDA or LDA)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.dpb = DynamicPositionBias(dim // 16, num_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, grouping: Groups) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        if isinstance(grouping, PaddedGrouping):
            return captured.padded_attention(self, x, grouping)
        # The tokens in group order, so that every group is a contiguous run.
        qkv = self.qkv(permute_tokens(x.reshape(-1, x.shape[-1]), grouping.order,
                                      grouping.inverse))
        # In a graph of symbolic sizes the groups are known when it runs: an op attends.
        attend = captured.attend_groups if isinstance(grouping, RuntimeGrouping) else attend_groups
        out = self.proj(attend(qkv, self.dpb(grouping), grouping))
        return permute_tokens(out, grouping.inverse, grouping.order).view(x.shape)


class AmplitudeCoolingLayer(nn.Module):
    """ACL: depth-wise 3x3 convolution then LayerNorm, with no residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        x = x.permute(0, 3, 1, 2)
        if captured.exporting():   # the convolution's padding: the margin must read as 0
            x = captured.zero_margin(x)
        return self.norm(captured.conv2d(self.conv, x).permute(0, 2, 3, 1))


class CrossFormerFFN(nn.Module):
    """The block's MLP: Linear, GELU, Linear, added to ``identity`` through drop path.

    Eager, it keeps one copy of its widest activation (:func:`~.memory.gelu_mlp`); FLOP
    counters and captured graphs see plain ops. The parameters keep the names of mmcv's FFN
    (``layers.0.0``, ``layers.1``), under which this package's checkpoints store them.
    """

    def __init__(self, dim: int, hidden_dim: int, drop_path: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden_dim)),
                                    nn.Linear(hidden_dim, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, identity: Tensor) -> Tensor:
        fc1, fc2 = self.layers[0][0], self.layers[1]
        if torch.jit.is_tracing() or (captured.active(x) and not captured.compiling_cpu(x)):
            out = fc2(F.gelu(fc1(x)))   # the exporters' graphs and FLOP counters: plain ops
        else:
            out = gelu_mlp(x.reshape(-1, x.shape[-1]), fc1, fc2).view(x.shape)
        return identity + self.drop_path(out)


class CrossFormerBlock(nn.Module):
    """Pre-norm group attention and MLP with residuals, optionally followed by an ACL."""

    def __init__(self, dim: int, num_heads: int, drop_path: float, with_acl: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GroupAttention(dim, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = CrossFormerFFN(dim, 4 * dim, drop_path)
        self.acl = AmplitudeCoolingLayer(dim) if with_acl else None

    def forward(self, x: Tensor, grouping: Groups) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), grouping))
        x = self.ffn(self.norm2(x), identity=x)
        return x if self.acl is None else self.acl(x)


class CrossScaleEmbedding(nn.Module):
    """CEL: samples its input with several kernels of one stride and concatenates the results.

    Larger kernels get fewer output channels (out/2, out/4, ... and the last one the same as the
    one before it) to keep the cost of big kernels down. Stage 1's CEL normalizes its output;
    the later ones normalize their input tokens.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_sizes: Sequence[int], stride: int,
                 is_stem: bool) -> None:
        super().__init__()
        dims = [out_dim // 2**(i + 1) for i in range(len(kernel_sizes) - 1)]
        dims.append(out_dim - sum(dims))
        self.projs = nn.ModuleList(
            nn.Conv2d(in_dim, dim, k, stride, padding=(k - stride) // 2)
            for k, dim in zip(kernel_sizes, dims))
        self.stride, self.is_stem = stride, is_stem
        self.norm = nn.LayerNorm(out_dim if is_stem else in_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Stem: (B, C, H, W) image; later: (B, H, W, C) tokens. Returns (B, H', W', C')."""
        if not self.is_stem:
            x = self.norm(x).permute(0, 3, 1, 2)
        if captured.exporting():   # zeros to the input's size + stride: a margin out
            x = captured.pad_with_margin(x, self.stride, self.is_stem)
        x = torch.cat([captured.conv2d(proj, x) for proj in self.projs], 1).permute(0, 2, 3, 1)
        return self.norm(x) if self.is_stem else x


class CrossFormerStage(nn.Module):
    """A CEL, then blocks that alternate SDA (even index) and LDA (odd index)."""

    def __init__(self, cel: CrossScaleEmbedding, dim: int, depth: int, num_heads: int,
                 group_size: int, interval: int, drop_paths: Sequence[float], with_acl: bool,
                 with_cp: bool) -> None:
        super().__init__()
        self.cel = cel
        self.group_size, self.interval, self.with_cp = group_size, interval, with_cp
        # ACL after every third block except the stage's last.
        self.blocks = nn.ModuleList(
            CrossFormerBlock(dim, num_heads, drop_paths[i],
                             with_acl=with_acl and (i + 1) % 3 == 0 and i != depth - 1)
            for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        x = self.cel(x)
        if captured.exporting():   # the whole-map rule as a branch of the graph
            return captured.stage_blocks(self, x)
        return self.blocks_forward(x)

    def blocks_forward(self, x: Tensor, whole: Optional[bool] = None) -> Tensor:
        """The blocks on the CEL's (B, H, W, C) output; ``whole``: whether the map is one
        group, where a captured graph decides it (:func:`.captured.stage_blocks`)."""
        groupings = self.groupings(x, whole)
        for i, block in enumerate(self.blocks):
            grouping = groupings[i % 2]
            if self.with_cp and x.requires_grad:
                x = checkpoint(block, x, grouping, use_reentrant=False)
            else:
                x = block(x, grouping)
        return x

    def groupings(self, x: Tensor, whole: Optional[bool] = None) -> List[Groups]:
        """The SDA and (with two blocks or more) LDA groups of the (B, H, W, C) map ``x``.

        Two formulations of the same official semantics. Eager: a :class:`Grouping`, which
        attends without padding (the last span's groups are smaller), the fastest; it is built
        in Python from the concrete sizes. Exported: a :class:`~.captured.PaddedGrouping`,
        constant G x G groups over the map padded to whole spans, with the padded keys
        masked; its sizes are arithmetic on the input's, so one graph serves every input size.
        Padding LDA spans to G * I costs too much at detection sizes (e.g. 304 columns attend
        as 448 in stage 1 at 800 x 1216), hence two; a CPU graph of ``torch.compile`` at
        symbolic sizes builds the eager one when it runs (:class:`~.captured.RuntimeGrouping`).
        All are tested equal to each other and to the official-style oracle.
        """
        kinds = ('sda', 'lda')[:len(self.blocks)]
        if captured.active(x):
            return captured.groupings(self, x, kinds, whole)
        b, h, w = (int(s) for s in x.shape[:3])  # ints even while a FLOP counter traces
        return [Grouping.build(kind, h, w, self.group_size, self.interval, x.device, b)
                for kind in kinds]


def _arch(dims: int, depths: List[int], heads: List[int], group_size: List[int],
          interval: List[int], with_acl: bool) -> dict:
    return dict(embed_dims=dims, depths=depths, num_heads=heads, group_size=group_size,
                interval=interval, with_acl=with_acl)


_CF_G, _CF_I = [7, 7, 7, 7], [8, 4, 2, 1]
_PP_G, _PP_I = [4, 4, 14, 7], [4, 2, 1, 1]


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_int_sequence(value) -> bool:
    """A list or tuple of integers; a string is not one (it would split into letters)."""
    return isinstance(value, (list, tuple)) and all(_is_integer(v) for v in value)


def _integer(name: str, value) -> int:
    """``value`` as an int; other types (float, str, bool) are refused, naming ``name``."""
    if not _is_integer(value):
        raise TypeError(f'{name} must be an integer, got {type(value).__name__} {value!r}')
    return int(value)


def _per_stage(name: str, value) -> List[int]:
    """One integer >= 1 per stage, from one int for all stages or a list of them."""
    if _is_integer(value):
        value = [value] * NUM_STAGES
    if not _is_int_sequence(value):
        raise TypeError(f'{name} must be an integer or a list of {NUM_STAGES} integers, got '
                        f'{type(value).__name__} {value!r}')
    if len(value) != NUM_STAGES:
        raise ValueError(f'{name} needs one value per stage ({NUM_STAGES}), got '
                         f'{len(value)}: {list(value)}')
    if any(v < 1 for v in value):
        raise ValueError(f'{name} values must be integers >= 1, got {list(value)}')
    return [int(v) for v in value]


@MODELS.register_module()
class CrossFormer(BaseModule):
    """CrossFormer / CrossFormer++ backbone for mmdet, mmseg and mmpretrain.

    Args:
        arch: a preset name (``'t'``, ``'s'``, ``'b'``, ``'l'``, ``'pp-s'``, ``'pp-b'``,
            ``'pp-l'``, ``'pp-h'`` or the long names ``'tiny'``, ``'pp-small'``, ...) or a
            dict with ``embed_dims``, ``depths``, ``num_heads``, ``group_size``, ``interval``
            and ``with_acl`` (amplitude cooling layers, CrossFormer++).
        group_size: per-stage SDA group size G (or one int for all), overriding the preset;
            the dense-task setting is ``[14, 14, 7, 7]``.
        interval: per-stage LDA interval I, overriding the preset; dense: ``[16, 8, 2, 1]``.
        in_channels: input image channels.
        drop_path_rate: stochastic depth rate, rising linearly over all blocks.
        out_indices: stages whose (B, C, H, W) feature maps are returned.
        out_norm_cfg: a norm layer (e.g. ``dict(type='LN')``) applied to each returned map;
            ``None`` returns them as the blocks leave them, as the official dense backbone.
        frozen_stages: freeze stage 1's CEL (0) and the first k stages (k >= 1); -1 freezes
            nothing. Frozen parts stay in eval mode and get no gradients.
        with_cp: activation checkpointing of every block during training.
        compute_dtype: ``'bfloat16'`` or ``'float16'`` (also ``'bf16'``, ``'fp16'``): compute
            under autocast to that dtype and return the maps in the input's dtype (float32),
            for inference and training, on CPU and CUDA (see :mod:`.precision`); ``None``
            computes in the parameters' dtype. ONNX exports ignore it.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads an official ImageNet,
            mmdet 2.x or mmseg 0.x checkpoint as it is, or one of this package.
    """
    arch_zoo: Dict[str, dict] = {
        't': _arch(64, [1, 1, 8, 6], [2, 4, 8, 16], _CF_G, _CF_I, False),
        's': _arch(96, [2, 2, 6, 2], [3, 6, 12, 24], _CF_G, _CF_I, False),
        'b': _arch(96, [2, 2, 18, 2], [3, 6, 12, 24], _CF_G, _CF_I, False),
        'l': _arch(128, [2, 2, 18, 2], [4, 8, 16, 32], _CF_G, _CF_I, False),
        'pp-s': _arch(64, [2, 2, 18, 2], [2, 4, 8, 16], _PP_G, _PP_I, True),
        'pp-b': _arch(96, [2, 2, 18, 2], [3, 6, 12, 24], _PP_G, _PP_I, True),
        'pp-l': _arch(128, [2, 2, 18, 2], [4, 8, 16, 32], _PP_G, _PP_I, True),
        'pp-h': _arch(128, [6, 6, 18, 2], [4, 8, 16, 32], _PP_G, _PP_I, True),
    }
    arch_aliases = {
        'tiny': 't', 'small': 's', 'base': 'b', 'large': 'l', 'pp-small': 'pp-s',
        'pp-base': 'pp-b', 'pp-large': 'pp-l', 'pp-huge': 'pp-h'
    }
    stem_kernels = (4, 8, 16, 32)
    cel_kernels = (2, 4)

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 group_size: Union[int, Sequence[int], None] = None,
                 interval: Union[int, Sequence[int], None] = None,
                 in_channels: int = 3,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm_cfg: Optional[dict] = None,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 compute_dtype: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self._resolve_arch(arch, group_size, interval)
        self.embed_dims: int = arch['embed_dims']
        self.depths: List[int] = arch['depths']
        self.num_heads: List[int] = arch['num_heads']
        self.group_size: List[int] = arch['group_size']
        self.interval: List[int] = arch['interval']
        self.with_acl: bool = arch['with_acl']
        self.in_channels = in_channels
        self.compute_dtype = compute_dtype
        self._autocast_dtype = precision.resolve_dtype(compute_dtype)
        self.out_indices = self._check_out_indices(out_indices)
        if not -1 <= _integer('frozen_stages', frozen_stages) <= NUM_STAGES:
            raise ValueError(f'frozen_stages must be in [-1, {NUM_STAGES}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        if not isinstance(drop_path_rate, numbers.Real) or isinstance(drop_path_rate, bool):
            raise TypeError(f'drop_path_rate must be a number in [0, 1), got '
                            f'{type(drop_path_rate).__name__} {drop_path_rate!r}')
        if not 0 <= drop_path_rate < 1:  # also refuses NaN
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')

        dims = [self.embed_dims * 2**i for i in range(NUM_STAGES)]
        dprs = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(NUM_STAGES):
            if i == 0:
                cel = CrossScaleEmbedding(in_channels, dims[0], self.stem_kernels, 4, True)
            else:
                cel = CrossScaleEmbedding(dims[i - 1], dims[i], self.cel_kernels, 2, False)
            first = sum(self.depths[:i])
            self.stages.append(
                CrossFormerStage(cel, dims[i], self.depths[i], self.num_heads[i],
                                 self.group_size[i], self.interval[i],
                                 dprs[first:first + self.depths[i]], self.with_acl, with_cp))
        self.num_features = dims
        self.out_norm_cfg = out_norm_cfg
        if out_norm_cfg is not None:
            for i in self.out_indices:
                self.add_module(f'norm{i}', build_norm_layer(out_norm_cfg, dims[i])[1])
        self._freeze_stages()

    @classmethod
    def _resolve_arch(cls, arch: Union[str, dict], group_size, interval) -> dict:
        if isinstance(arch, str):
            key = cls.arch_aliases.get(arch.lower(), arch.lower())
            if key not in cls.arch_zoo:
                raise ValueError(f'Unknown CrossFormer arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_zoo) + sorted(cls.arch_aliases)} or a dict')
            arch = cls.arch_zoo[key]
        elif not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        required = {'embed_dims', 'depths', 'num_heads', 'group_size', 'interval', 'with_acl'}
        if set(arch) != required:
            raise ValueError(f'arch dict must have exactly the keys {sorted(required)}; '
                             f'missing {sorted(required - set(arch))}, '
                             f'unknown {sorted(set(arch) - required)}')
        arch = dict(arch)
        if group_size is not None:
            arch['group_size'] = group_size
        if interval is not None:
            arch['interval'] = interval
        for key in ('depths', 'num_heads', 'group_size', 'interval'):
            arch[key] = _per_stage(key, arch[key])
        dims = arch['embed_dims'] = _integer('embed_dims', arch['embed_dims'])
        if dims < 16 or dims % 8:
            raise ValueError(f'embed_dims must be a multiple of 8 and at least 16, got {dims}')
        for i, heads in enumerate(arch['num_heads']):
            if (dims * 2**i) % heads:
                raise ValueError(f'stage {i + 1}: dim {dims * 2**i} is not divisible by '
                                 f'num_heads {heads}')
        return arch

    @staticmethod
    def _check_out_indices(out_indices: Sequence[int]) -> tuple:
        if _is_integer(out_indices):
            out_indices = (out_indices, )
        if not _is_int_sequence(out_indices):
            raise TypeError(f'out_indices must be a stage index or a sequence of them, got '
                            f'{type(out_indices).__name__} {out_indices!r}')
        out_indices = tuple(int(i) + NUM_STAGES if i < 0 else int(i) for i in out_indices)
        if not out_indices or any(not 0 <= i < NUM_STAGES for i in out_indices):
            raise ValueError(f'out_indices must be stage indices in [0, {NUM_STAGES - 1}], '
                             f'got {out_indices}')
        return out_indices

    def forward(self, x: Tensor) -> tuple:
        """(B, C, H, W) images -> the (B, C_i, H_i, W_i) maps of the stages in out_indices."""
        dtype = self._autocast_dtype
        if dtype is None or torch.onnx.is_in_onnx_export():
            return self._forward(x)
        with precision.autocast(x.device.type, dtype):
            outs = self._forward(x)
        return tuple(out.to(x.dtype) for out in outs)

    def _forward(self, x: Tensor) -> tuple:
        if not torch.jit.is_tracing():   # traced sizes would fix the check at the example's
            self._check_input(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                out = x if self.out_norm_cfg is None else getattr(self, f'norm{i}')(x)
                out = out.permute(0, 3, 1, 2)
                outs.append(captured.drop_margin(out) if captured.exporting()
                            else out.contiguous())
        return tuple(outs)

    def _check_input(self, x: Tensor) -> None:
        """Refuse what the stages cannot take, with the shape in the message."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'CrossFormer expects (B, {self.in_channels}, H, W) images, got '
                             f'shape {tuple(x.shape)}')
        if min(x.shape[2:]) < 32:
            raise ValueError(f'CrossFormer needs images of at least 32 x 32 (stage 4 has '
                             f'stride 32), got {tuple(x.shape[2:])}')

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.stages[0].cel)
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_indices and self.out_norm_cfg is not None:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'CrossFormer':
        super().train(mode)
        self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple:
        """The layer-wise lr decay depth of a parameter, and the number of depths, as mmpretrain's
        ``SwinTransformer.get_layer_depth`` counts them (for its
        ``LearningRateDecayOptimWrapperConstructor``).

        Depths follow the order of computation: 0 is the stem (stage 1's CEL), then one depth per
        block, stage after stage, and the top depth, ``sum(depths) + 1``, takes what runs after
        the last block: the out norms ``norm{i}`` and any parameter whose name does not start
        with ``prefix`` (a model's neck and heads). The CEL of stage i + 1 shares the depth of
        stage i's last block: it runs between that block and the next stage's first, where Swin
        merges patches, and Swin counts its patch merging with the block before it. An ACL
        (CrossFormer++) runs at the end of its block, after the MLP, and so shares its depth.

        Args:
            param_name: the parameter's name in the model.
            prefix: the backbone's name prefix in the model, e.g. ``'backbone.'``.

        Returns:
            (depth, number of depths).
        """
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        parts = param_name[len(prefix):].split('.')
        if parts[0] != 'stages':   # the out norms
            return num_layers - 1, num_layers
        stage = int(parts[1])
        first = sum(self.depths[:stage])
        if parts[2] == 'cel':
            return first, num_layers
        return first + int(parts[3]) + 1, num_layers   # stages.{stage}.blocks.{j}...

    def init_weights(self) -> None:
        """Truncated-normal init, or the checkpoint of ``init_cfg=dict(type='Pretrained')``: an
        official one or this package's, read by mmengine's CheckpointLoader (any scheme) with
        safe loading, see :func:`~crossformer_mm.checkpoint.load_pretrained`."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            from ...checkpoint import load_pretrained  # which imports this package's models
            load_pretrained(self, self.init_cfg['checkpoint'])
            self._is_init = True
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1., bias=0.)
        super().init_weights()

    #: The version of this backbone's key names that ``state_dict()`` records. State dicts
    #: without it (the official code's, one built by hand) may use the official names.
    _version = 2

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """Convert official key names in a state dict of an earlier version, as mmpretrain's
        Swin does for its own renames."""
        version = local_metadata.get('version')
        if version is None or version < 2:
            keys = [key for key in state_dict if key.startswith(prefix)]
            ours = official_to_ours({key[len(prefix):]: state_dict.pop(key) for key in keys})
            state_dict.update((prefix + key, value) for key, value in ours.items())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)
