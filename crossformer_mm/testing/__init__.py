"""Reference implementations and data for tests and benchmarks; not used by the models."""
import os
from pathlib import Path

from .oracle import OracleCrossFormer

#: The official implementation's reference data that tests compare with: ``shared/reference/``
#: beside the checkout, or ``$CROSSFORMER_MM_REFERENCE``.
REFERENCE = Path(os.environ.get('CROSSFORMER_MM_REFERENCE')
                 or Path(__file__).resolve().parents[2].parent / 'shared' / 'reference')

__all__ = ['OracleCrossFormer', 'REFERENCE']
