"""How SDA and LDA split a feature map into attention groups.

Both attentions group G x G tokens. SDA takes adjacent tokens; LDA takes tokens I apart, so an LDA
group spans G * I tokens of the map in each direction and the I * I groups of one such span
interleave. SDA is thus LDA with I = 1: one :class:`Grouping` describes both, with a
``dilation`` of 1 (SDA) or I (LDA). A map no larger than G in either direction is one SDA group.

The map is padded at the bottom and right to whole spans; padded keys are masked and padded
queries dropped. Where the map fits in one span, groups shrink to the tokens the map has, which
gives the same result with less padding. Padding only touches the last span's groups, so the
group grid splits into a few regions, each with one (N,) key mask: no (groups, N, N) mask is
built. A Grouping depends on the geometry only, so a stage builds each kind once per forward
and all its blocks share it.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor

#: Added to the attention logits of padded keys, as in the official code.
PAD_LOGIT = -1e6

# A run of groups along one direction: (span slice, offset-within-span slice, padded tokens).
Segment = Tuple[slice, slice, int]


@dataclass(frozen=True)
class Region:
    """Groups that share one key-padding pattern: a rectangle of the group grid."""
    rows: Segment
    cols: Segment
    key_mask: Optional[Tensor]  # (N,) additive mask over a group's keys; None without padding


@dataclass(frozen=True)
class Grouping:
    """The groups of one H x W map: gh x gw tokens taken every ``dilation`` tokens."""
    kind: str                     # 'sda' or 'lda' (what the block asked for, after whole-map)
    height: int
    width: int
    dilation: int                 # 1 for SDA, I for LDA
    spans: Tuple[int, int]        # spans of gh * dilation rows / gw * dilation cols
    group_shape: Tuple[int, int]  # (gh, gw)
    regions: List[Region]
    offsets: Tensor               # ((2gh-1)(2gw-1), 2) relative offsets (dy, dx), DPB's input
    index: Tensor                 # (N, N) long: the offsets row of each (query, key) pair

    @staticmethod
    def build(kind: str, height: int, width: int, group_size: int, interval: int,
              device: torch.device) -> 'Grouping':
        """The groups of SDA (``kind='sda'``) or LDA; a map no larger than G is one group."""
        if min(height, width) <= group_size:
            kind, dilation = 'sda', 1
            (rows, gh), (cols, gw) = (1, height), (1, width)
        else:
            dilation = 1 if kind == 'sda' else interval
            rows, gh = _span_layout(height, group_size, dilation)
            cols, gw = _span_layout(width, group_size, dilation)
        row_segments = _segments(height, rows, gh, dilation)
        col_segments = _segments(width, cols, gw, dilation)
        regions = [
            Region(r, c, _key_mask(gh, gw, r[2], c[2], device) if r[2] or c[2] else None)
            for r in row_segments for c in col_segments
        ]
        offsets, index = _relative_offsets(gh, gw, device)
        return Grouping(kind, height, width, dilation, (rows, cols), (gh, gw), regions,
                        offsets, index)

    @property
    def num_tokens(self) -> int:
        return self.group_shape[0] * self.group_shape[1]

    @property
    def num_groups(self) -> int:
        """Groups per image that attention runs on (groups of padding only are skipped)."""
        return sum((r[0].stop - r[0].start) * (r[1].stop - r[1].start) *
                   (c[0].stop - c[0].start) * (c[1].stop - c[1].start) for r, c in
                   ((region.rows, region.cols) for region in self.regions))

    @property
    def padded_size(self) -> Tuple[int, int]:
        (rows, cols), (gh, gw), d = self.spans, self.group_shape, self.dilation
        return rows * gh * d, cols * gw * d

    def group(self, x: Tensor) -> Tensor:
        """(B, Hp, Wp, D) -> (B, spans_h, d, spans_w, d, gh, gw, D), a view."""
        (rows, cols), (gh, gw), d = self.spans, self.group_shape, self.dilation
        x = x.view(x.shape[0], rows, gh, d, cols, gw, d, x.shape[-1])
        return x.permute(0, 1, 3, 4, 6, 2, 5, 7)

    def ungroup(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`group`, cropped to the unpadded (B, H, W, D)."""
        x = x.permute(0, 1, 5, 2, 3, 6, 4, 7).reshape(x.shape[0], *self.padded_size,
                                                        x.shape[-1])
        return x[:, :self.height, :self.width]


def _span_layout(size: int, group_size: int, dilation: int) -> Tuple[int, int]:
    """(number of spans, tokens per group) along one direction of length ``size``."""
    span = group_size * dilation
    if size <= span:
        return 1, math.ceil(size / dilation)
    return math.ceil(size / span), group_size


def _segments(size: int, spans: int, group: int, dilation: int) -> List[Segment]:
    """Runs of groups along one direction with equal padding; groups of padding only are left
    out (their outputs are all dropped)."""
    rest = size - (spans - 1) * group * dilation   # map tokens left for the last span
    pads = [group - min(group, max(0, math.ceil((rest - i) / dilation)))
            for i in range(dilation)]
    if not any(pads):
        return [(slice(0, spans), slice(0, dilation), 0)]
    segments = [(slice(0, spans - 1), slice(0, dilation), 0)] if spans > 1 else []
    start = 0
    for i in range(1, dilation + 1):
        if i == dilation or pads[i] != pads[start]:
            if pads[start] < group:
                segments.append((slice(spans - 1, spans), slice(start, i), pads[start]))
            start = i
    return segments


def _key_mask(gh: int, gw: int, pad_rows: int, pad_cols: int, device: torch.device) -> Tensor:
    """Additive (N,) mask of the padded keys: a group's last rows and columns."""
    pad = torch.zeros(gh, gw, dtype=torch.bool, device=device)
    pad[gh - pad_rows:] = True
    pad[:, gw - pad_cols:] = True
    return torch.zeros(gh * gw, device=device).masked_fill(pad.flatten(), PAD_LOGIT)


def _relative_offsets(gh: int, gw: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Every relative offset in a gh x gw group, and the offset index of each token pair."""
    dy = torch.arange(1 - gh, gh, device=device)
    dx = torch.arange(1 - gw, gw, device=device)
    offsets = torch.stack(torch.meshgrid(dy, dx, indexing='ij'), -1).flatten(0, 1).float()
    coords = torch.stack(torch.meshgrid(torch.arange(gh, device=device),
                                        torch.arange(gw, device=device), indexing='ij'))
    coords = coords.flatten(1)                                  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]               # (2, N, N)
    index = (rel[0] + gh - 1) * (2 * gw - 1) + (rel[1] + gw - 1)
    return offsets, index
