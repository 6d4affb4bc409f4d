"""Reference implementations for tests and benchmarks; not used by the models themselves."""
from .oracle import OracleCrossFormer

__all__ = ['OracleCrossFormer']
