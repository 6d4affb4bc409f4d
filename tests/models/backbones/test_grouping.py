"""Grouping: which tokens SDA and LDA put together, without the official code's padding."""
from typing import List

import pytest
import torch
import torch.nn.functional as F

from crossformer_mm.models.backbones.grouping import Grouping
from crossformer_mm.testing.oracle import group, group_geometry

CPU = torch.device('cpu')


def our_groups(grouping: Grouping) -> List[tuple]:
    """The groups as tuples of flat (B, H, W) map positions, in grouped order."""
    groups, start = [], 0
    for region in grouping.regions:
        count = grouping.batch * region.groups * region.num_tokens
        tokens = grouping.order[start:start + count].view(-1, region.num_tokens)
        groups += [tuple(t.tolist()) for t in tokens]
        start += count
    assert start == grouping.order.numel()
    return groups


def official_groups(kind: str, b: int, h: int, w: int, g: int, i: int) -> List[tuple]:
    """The oracle's (official) groups of the padded map, padding removed, empty ones dropped."""
    size, dilation = group_geometry(h, w, g, i, lda=kind == 'lda')
    span = size * dilation
    pos = torch.arange(b * h * w).view(b, h, w, 1)
    pos = F.pad(pos + 1, (0, 0, 0, -w % span, 0, -h % span)) - 1     # -1 on the padding
    return [tuple(t[t >= 0].tolist()) for t in group(pos, size, dilation)[..., 0] if (t >= 0).any()]


@pytest.mark.parametrize('kind, b, h, w, g, i', [
    ('sda', 1, 56, 56, 7, 8), ('lda', 1, 56, 56, 7, 8), ('sda', 2, 14, 20, 7, 2),
    ('lda', 2, 14, 20, 7, 2), ('lda', 1, 56, 56, 4, 4), ('lda', 1, 200, 304, 14, 16),
    ('sda', 1, 200, 304, 14, 16), ('lda', 1, 57, 35, 4, 3), ('sda', 1, 7, 10, 7, 1),
    ('lda', 1, 15, 17, 14, 16), ('lda', 3, 50, 76, 7, 2),
])
def test_groups_are_the_official_groups_without_padding(kind, b, h, w, g, i):
    grouping = Grouping.build(kind, h, w, g, i, CPU, batch=b)
    ours = our_groups(grouping)
    assert sorted(ours) == sorted(official_groups(kind, b, h, w, g, i))
    # Every map token exactly once, and the inverse permutation really inverts it.
    assert torch.equal(grouping.order.sort().values, torch.arange(b * h * w))
    assert torch.equal(grouping.order[grouping.inverse], torch.arange(b * h * w))
    for region in grouping.regions:
        assert region.shape[0] <= grouping.group_shape[0]
        assert region.shape[1] <= grouping.group_shape[1]


def test_sda_groups_are_adjacent_and_lda_groups_are_strided():
    sda = Grouping.build('sda', 16, 16, 4, 4, CPU)
    lda = Grouping.build('lda', 16, 16, 4, 4, CPU)
    assert our_groups(sda)[0] == (0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51)
    assert our_groups(lda)[0] == (0, 4, 8, 12, 64, 68, 72, 76, 128, 132, 136, 140, 192, 196,
                                  200, 204)


def test_lda_groups_span_g_times_i():
    """An LDA group holds G x G tokens I apart: a 32-wide map with G=4, I=4 has two spans."""
    lda = Grouping.build('lda', 32, 32, 4, 4, CPU)
    assert lda.group_shape == (4, 4) and lda.spans == (2, 2)
    [region] = lda.regions
    assert region.groups == 64 and region.shape == (4, 4)
    assert our_groups(lda)[0][:4] == (0, 4, 8, 12)


def test_last_span_groups_hold_only_map_tokens():
    """304 columns, G = 14, I = 16: a span of 224, then 80 columns = 5 per offset."""
    lda = Grouping.build('lda', 200, 304, 14, 16, CPU)
    assert lda.group_shape == (13, 14)   # 200 rows fit one span: ceil(200 / 16) rows
    shapes = {region.shape: region.groups for region in lda.regions}
    # Rows: offsets 0-7 hold 13 rows, 8-15 hold 12; columns: 14 in span 1, 5 in span 2.
    assert shapes == {(13, 14): 8 * 16, (13, 5): 8 * 16, (12, 14): 8 * 16, (12, 5): 8 * 16}
    assert lda.attention_pairs == 128 * (182**2 + 65**2 + 168**2 + 60**2)


def test_small_maps_are_one_whole_map_group():
    grouping = Grouping.build('lda', 7, 10, 7, 1, CPU)
    assert grouping.kind == 'sda' and grouping.group_shape == (7, 10)
    assert [(r.groups, r.shape) for r in grouping.regions] == [(1, (7, 10))]


@pytest.mark.parametrize('kind', ['sda', 'lda'])
def test_offset_index_gives_each_pair_its_relative_offset(kind):
    grouping = Grouping.build(kind, 9, 11, 3, 2, CPU)
    assert len(grouping.regions) > 1          # smaller groups index the same offsets
    for region in grouping.regions:
        gh, gw = region.shape
        coords = torch.stack(torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing='ij'),
                             -1).view(-1, 2)
        rel = coords[:, None] - coords[None]
        assert torch.equal(grouping.offsets[region.offset_index], rel.float())
