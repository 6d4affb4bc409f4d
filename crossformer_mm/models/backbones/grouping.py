"""How SDA and LDA split a feature map into attention groups.

Both attentions group G x G tokens. SDA takes adjacent tokens; LDA takes tokens I apart, so an LDA
group spans G * I tokens of the map in each direction and the I * I groups of one such span
interleave. SDA is thus LDA with I = 1: one :class:`Grouping` describes both, with a
``dilation`` of 1 (SDA) or I (LDA). A map no larger than G in either direction is one SDA group.

The official code pads the map at the bottom and right to whole spans, masks the padded keys
(a logit of -1e6, whose softmax weight is exactly 0) and drops the padded queries. A group of the
last span thus attends over its first ``gh' x gw'`` tokens only, exactly as an unpadded group of
that shape would, with the same relative offsets. So no padding is built here: the groups fall
into a few :class:`Region` s (at most 3 x 3) of one shape each, and a Grouping is a permutation of
the map's tokens into region-major, group-major order plus the regions' shapes. A Grouping depends
on the geometry only, so a stage builds each kind once per forward and all its blocks share it.

A Grouping is computed in Python from concrete sizes, so a captured graph (``torch.compile``,
``torch.export``, ONNX) would be pinned to the size it was captured at. While a model is being
exported, stages use the official padded layout instead, built from the sizes with integer
arithmetic only (:class:`~.captured.PaddedGrouping`); a CPU graph of ``torch.compile`` at
symbolic sizes builds the Grouping when it runs, inside ops (:class:`~.captured.RuntimeGrouping`).
"""
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

# A size: a Python int in eager mode, a SymInt under torch.compile / torch.export, an int the
# tracer records (its arithmetic becomes graph ops) under the legacy ONNX exporter.
Size = Any

# A run of groups along one direction: (span slice, offset-within-span slice, tokens per group).
Segment = Tuple[slice, slice, int]


@dataclass(frozen=True)
class Region:
    """Groups of one shape: their count per image, their shape and its DPB offset index."""
    groups: int
    shape: Tuple[int, int]  # (gh', gw'), at most the grouping's group_shape
    offset_index: Tensor    # (N', N') long: the DPB offsets row of each (query, key) pair

    @property
    def num_tokens(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class Grouping:
    """The groups of ``batch`` H x W maps: gh x gw tokens taken every ``dilation`` tokens."""
    kind: str                     # 'sda' or 'lda' (what the block asked for, after whole-map)
    height: int
    width: int
    batch: int
    dilation: int                 # 1 for SDA, I for LDA
    spans: Tuple[int, int]        # spans of gh * dilation rows / gw * dilation cols
    group_shape: Tuple[int, int]  # (gh, gw) of a group the map fills
    regions: List[Region]
    offsets: Tensor               # relative offsets (dy, dx) of table_shape, DPB's input
    order: Tensor                 # (B*H*W,) the flat map position of each grouped token
    inverse: Tensor               # (B*H*W,) the grouped position of each map token

    @staticmethod
    def build(kind: str, height: int, width: int, group_size: int, interval: int,
              device: torch.device, batch: int = 1,
              table_shape: Optional[Tuple[int, int]] = None) -> 'Grouping':
        """The groups of SDA (``kind='sda'``) or LDA; a map no larger than G is one group.

        ``table_shape``: the group shape whose relative offsets the DPB's table lists, if not
        the groups' own (a graph of symbolic sizes lists G x G's: a map smaller than a span
        has smaller LDA groups)."""
        if min(height, width) <= group_size:
            kind, dilation = 'sda', 1
            (rows, gh), (cols, gw) = (1, height), (1, width)
        else:
            dilation = 1 if kind == 'sda' else interval
            rows, gh = _span_layout(height, group_size, dilation)
            cols, gw = _span_layout(width, group_size, dilation)
        table_shape = table_shape or (gh, gw)
        # Flat map positions laid out as the official padded map, -1 on the padding.
        pos = torch.full((batch, rows * gh * dilation, cols * gw * dilation), -1, device=device)
        pos[:, :height, :width] = torch.arange(batch * height * width, device=device).view(
            batch, height, width)
        pos = pos.view(batch, rows, gh, dilation, cols, gw, dilation).permute(0, 1, 3, 4, 6, 2, 5)
        regions, order = [], []
        for r_spans, r_offsets, rh in _segments(height, rows, gh, dilation):
            for c_spans, c_offsets, cw in _segments(width, cols, gw, dilation):
                tokens = pos[:, r_spans, r_offsets, c_spans, c_offsets, :rh, :cw]
                regions.append(Region(math.prod(tokens.shape[1:5]), (rh, cw),
                                      _offset_index((rh, cw), table_shape, device)))
                order.append(tokens.reshape(-1))    # image by image, group by group
        order = torch.cat(order)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=device)
        return Grouping(kind, height, width, batch, dilation, (rows, cols), (gh, gw), regions,
                        _offsets(*table_shape, device), order, inverse)

    @property
    def attention_pairs(self) -> int:
        """(query, key) pairs attention scores per image, summed over the groups."""
        return sum(region.groups * region.num_tokens**2 for region in self.regions)


def _span_layout(size: int, group_size: int, dilation: int) -> Tuple[int, int]:
    """(number of spans, tokens per group) along one direction of length ``size``."""
    span = group_size * dilation
    if size <= span:
        return 1, math.ceil(size / dilation)
    return math.ceil(size / span), group_size


def _segments(size: int, spans: int, group: int, dilation: int) -> List[Segment]:
    """Runs of groups along one direction with equally many map tokens (groups of padding only
    are left out: their outputs are all dropped)."""
    rest = size - (spans - 1) * group * dilation   # map tokens left for the last span
    counts = [min(group, math.ceil((rest - i) / dilation)) for i in range(dilation)]
    if all(count == group for count in counts):
        return [(slice(0, spans), slice(0, dilation), group)]
    segments = [(slice(0, spans - 1), slice(0, dilation), group)] if spans > 1 else []
    start = 0
    for i in range(1, dilation + 1):
        if i == dilation or counts[i] != counts[start]:
            if counts[start] > 0:
                segments.append((slice(spans - 1, spans), slice(start, i), counts[start]))
            start = i
    return segments


def _mod(t: Tensor, m: Size) -> Tensor:
    """``t % m`` for ``t >= 0`` as ``t - t // m * m``: the dynamo ONNX exporter cannot write a
    remainder by a size that is only known at run time."""
    return t - t // m * m


def _offsets(gh: int, gw: int, device: torch.device) -> Tensor:
    """Every relative offset (dy, dx) in a gh x gw group, row by row."""
    t = torch.arange((2 * gh - 1) * (2 * gw - 1), device=device)
    return torch.stack([t // (2 * gw - 1) - (gh - 1), _mod(t, 2 * gw - 1) - (gw - 1)], -1).float()


def _offset_index(shape: Tuple[int, int], full_shape: Tuple[int, int],
                  device: torch.device) -> Tensor:
    """For each token pair of a group of ``shape``, its row of the offsets of ``full_shape``."""
    (gh, gw), (full_gh, full_gw) = shape, full_shape
    token = torch.arange(gh * gw, device=device)
    y, x = token // gw, _mod(token, gw)
    rel_y, rel_x = y[:, None] - y[None, :], x[:, None] - x[None, :]
    return (rel_y + full_gh - 1) * (2 * full_gw - 1) + rel_x + full_gw - 1
