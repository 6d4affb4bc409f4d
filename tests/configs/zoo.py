"""The model zoo of ``configs/metafile.yml``: the one place that states each config's Params,
FLOPs and paper figures. The config tests check the models against it."""
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
METAFILE = ROOT / 'configs' / 'metafile.yml'


def models() -> Dict[str, dict]:
    """Config name -> its metafile entry."""
    return {model['Name']: model for model in yaml.safe_load(METAFILE.read_text())['Models']}


def table(dataset: str) -> Dict[str, Tuple[Optional[float], ...]]:
    """Config name -> (paper Params M, paper FLOPs G, exact Params, FLOPs as executed, FLOPs
    with LDA as the papers count it) of every config trained on ``dataset`` with a published
    result (the papers' configs)."""
    rows = {}
    for name, model in models().items():
        meta = model['Metadata']
        if model['Results'][0]['Dataset'] == dataset and model['Results'][0]['Metrics']:
            rows[name] = (meta['Paper Params (M)'], meta['Paper FLOPs (G)'], meta['Parameters'],
                          meta['FLOPs'], meta.get('FLOPs LDA as published'))
    return rows


def metrics(name: str) -> dict:
    """The paper's scores of a config, e.g. ``{'box AP': 44.4}``."""
    return models()[name]['Results'][0]['Metrics']


def recipe_cell(name: str, commits: Dict[str, str]) -> str:
    """The README zoo's Recipe cell of a config: ``official`` or ``from <the official config>``,
    linked to the official file at its recorded commit, or ``from <toolbox config>``."""
    meta = models()[name]['Metadata']
    recipe, changes = meta['Recipe'], meta.get('Recipe Changes')
    if '::' in recipe:  # e.g. mmdet::mask2former/...: no official CrossFormer config
        return f'from `{recipe}`'
    branch, path = recipe.split(':', 1)
    url = f'https://github.com/cheerss/CrossFormer/blob/{commits[branch][:7]}/{path}'
    stem = path.rsplit('/', 1)[-1].rsplit('.', 1)[0]
    return f'[official]({url})' if not changes else f'from [{stem}]({url})'


def smallest_per_head_and_family(dataset: str) -> List[str]:
    """Of the configs of ``table(dataset)``, the one with the fewest Params of each head (the
    name's part before ``_crossformer``) and backbone family (CrossFormer, CrossFormer++): the
    others differ from it in size, G / I or schedule only, which their own tests check without
    a training step (Params, FLOPs, the record of the official recipe)."""
    params = {name: row[2] for name, row in table(dataset).items()}
    smallest: Dict[tuple, str] = {}
    for name in sorted(params, key=params.get):
        smallest.setdefault((name.split('_crossformer')[0], 'crossformerpp' in name), name)
    return sorted(smallest.values())
