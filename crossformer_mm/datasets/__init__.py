from .naming import DataFileError, NameFilesOnError

__all__ = ['DataFileError', 'NameFilesOnError']
