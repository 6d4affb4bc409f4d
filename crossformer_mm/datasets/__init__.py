from .naming import DataFileError, NameFilesOnError
from .shapes import (CLASSES, PALETTE, SEG_CLASSES, SEG_PALETTE, data_root_options,
                     make_shapes_dataset)

__all__ = [
    'CLASSES', 'PALETTE', 'SEG_CLASSES', 'SEG_PALETTE', 'DataFileError', 'NameFilesOnError',
    'data_root_options', 'make_shapes_dataset'
]
