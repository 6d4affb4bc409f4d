"""The model zoo: configs/metafile.yml covers every config, model-index.yml imports it, and the
README's model tables say what the metafile says."""
import re

import pytest
import yaml
from mmengine.config import Config

from zoo import METAFILE, ROOT, models, recipe_cell

RECORD = yaml.safe_load((ROOT / 'configs' / 'official_recipes.yml').read_text())

TASKS = {'COCO': ('Object Detection', 'Instance Segmentation', 'Panoptic Segmentation'),
         'ADE20K': ('Semantic Segmentation', ), 'ImageNet-1k': ('Image Classification', )}


def config_names() -> set:
    return {path.stem for path in (ROOT / 'configs').glob('*.py')}


def test_every_config_has_one_entry():
    names = [model['Name'] for model in yaml.safe_load(METAFILE.read_text())['Models']]
    assert len(names) == len(set(names))
    assert set(names) == config_names()


def test_model_index_imports_the_metafile():
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert [ROOT / path for path in index['Import']] == [METAFILE]


@pytest.mark.parametrize('name', sorted(models()))
def test_entry_matches_its_config(name):
    model = models()[name]
    meta, result = model['Metadata'], model['Results'][0]
    assert model['Config'] == f'configs/{name}.py'
    assert model['In Collection'] == ('CrossFormer++' if meta['Arch'].startswith('pp') else
                                      'CrossFormer')
    assert result['Task'] in TASKS[result['Dataset']] and result['Dataset'] == meta['Training Data']
    backbone = Config.fromfile(ROOT / model['Config']).model.backbone
    assert backbone.arch == meta['Arch']
    # The config's G / I, or the preset's when it states none (the ImageNet configs).
    from crossformer_mm import CrossFormer
    arch = CrossFormer.arch_zoo[meta['Arch']]
    group_size = backbone.get('group_size', arch['group_size'])
    interval = backbone.get('interval', arch['interval'])
    as_list = lambda v: [v] * 4 if isinstance(v, int) else list(v)  # noqa: E731
    assert (as_list(group_size), as_list(interval)) == (meta['Group Size'], meta['Interval'])
    if meta['Paper Params (M)'] is not None:  # the paper's Params, to its 0.1M
        assert abs(meta['Parameters'] / 1e6 - meta['Paper Params (M)']) < 0.1


def readme_rows() -> dict:
    """Config name -> the cells of its row in the README's model zoo tables."""
    rows = {}
    for line in (ROOT / 'README.md').read_text().splitlines():
        found = re.match(r'\| \[(\w+)\]\(configs/\w+\.py\) \|', line)
        if found:
            rows[found.group(1)] = [cell.strip() for cell in line.strip('|').split('|')]
    return rows


def _giga(value: str) -> float:
    return float(value.rstrip('GM'))


def _shows(cell: str, count: int) -> bool:
    """Whether a README cell such as ``40.8M`` is ``count`` (units) rounded as printed."""
    digits = len(cell.rstrip('GM').split('.')[1])
    return round(count / 1e9 if cell.endswith('G') else count / 1e6, digits) == _giga(cell)


@pytest.mark.parametrize('name', sorted(models()))
def test_readme_zoo_agrees_with_the_metafile(name):
    row = readme_rows()[name]
    model = models()[name]
    meta = model['Metadata']
    _, backbone, gi, paper_params, paper_flops, scores, params, flops, recipe = row
    assert recipe == recipe_cell(name, RECORD['commits'])
    assert backbone == meta['Backbone']
    group_size, interval = (cells.split(',') for cells in gi.split(' / '))
    assert [int(g) for g in group_size] in ([meta['Group Size'][0]], meta['Group Size'])
    assert [int(i) for i in interval] == meta['Interval']
    for cell, paper in ((paper_params, meta['Paper Params (M)']),
                        (paper_flops, meta['Paper FLOPs (G)'])):
        assert (cell == '-') if paper is None else _giga(cell) == paper
    published = list(model['Results'][0]['Metrics'].values())  # none: no published result
    assert ([float(s) for s in scores.split(' / ')] == published) if published else scores == '-'
    assert _shows(params, meta['Parameters'])
    counts = [meta['FLOPs'], meta.get('FLOPs LDA as published')]
    cells = flops.split(' / ')
    assert len(cells) == len([c for c in counts if c is not None])
    assert all(_shows(cell, count) for cell, count in zip(cells, counts))


def test_readme_lists_every_model():
    assert set(readme_rows()) == set(models())
