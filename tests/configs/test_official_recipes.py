"""Every config trains as the official CrossFormer config it names in configs/metafile.yml.

``configs/official_recipes.yml`` holds the official recipes, normalized by
:mod:`crossformer_mm.recipes` (written by ``tools/official_recipes.py`` from the official
repository; not needed here). Each config's metafile entry names its ``Recipe`` (one of them) and,
for a config that is not that official config itself, the fields it changes (``Recipe
Changes``, each with its source). Every other field must equal the record's.
"""
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

from crossformer_mm.recipes import PARAMETERS, normalize, our_parameter_name
from zoo import ROOT, models

RECORD = yaml.safe_load((ROOT / 'configs' / 'official_recipes.yml').read_text())
RECIPES = RECORD['recipes']
#: The configs that name an official CrossFormer config; the others (no official config at all)
#: name the toolbox config they derive from, as ``mmdet::...``.
NAMES = sorted(name for name, model in models().items()
               if '::' not in model['Metadata'].get('Recipe', '::'))


def recipe_of(name: str):
    meta = models()[name]['Metadata']
    return meta['Recipe'], meta.get('Recipe Changes') or {}


@pytest.mark.parametrize('name', sorted(models()))
def test_every_config_names_its_recipe(name):
    source, changes = recipe_of(name)
    if '::' in source:
        from mmengine.hub import get_config
        assert get_config(source) is not None
    else:
        assert source in RECIPES, (name, source)
    assert all(isinstance(why, str) and why for why in changes.values()), name


def test_the_record_comes_from_two_recorded_commits():
    assert sorted(RECORD['commits']) == ['crossformer', 'main']
    assert all(len(commit) == 40 for commit in RECORD['commits'].values())
    assert {key.split(':')[0] for key in RECIPES} == {'crossformer', 'main'}


@pytest.mark.parametrize('name', NAMES)
def test_config_equals_its_official_recipe(name):
    source, changes = recipe_of(name)
    official = RECIPES[source]
    ours = normalize(Config.fromfile(ROOT / 'configs' / f'{name}.py'))
    assert set(ours) == set(official), (name, sorted(set(ours) ^ set(official)))
    differ = []
    for field in sorted(ours):
        if field in changes:  # a change the metafile states, with its source, must be one
            assert ours[field] != official[field], f'{name}: {field} is not changed'
        elif ours[field] != official[field]:
            differ.append(f'{field}: ours {ours[field]!r}, official {official[field]!r}')
    assert not differ, f'{name} vs {source}:\n' + '\n'.join(differ)
    assert set(changes) <= set(ours), (name, sorted(set(changes) - set(ours)))


def test_weight_decay_kinds_name_real_parameters():
    """The names the weight decay rules are applied to are parameters of a CrossFormer++."""
    from crossformer_mm import CrossFormer
    backbone = CrossFormer(arch=dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 1, 1, 1],
                                     group_size=[2, 2, 2, 2], interval=[2, 2, 1, 1],
                                     with_acl=True))
    names = {f'backbone.{name}' for name, _ in backbone.named_parameters()}
    ours = {our_parameter_name(name) for _, name, _, _ in PARAMETERS
            if name.startswith('backbone.')}
    assert ours <= names, sorted(ours - names)
