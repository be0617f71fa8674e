"""Everything a stage needs to know about limits and renditions: the pipeline's group of
settings, defined (with its defaults) in filmstrip.settings."""

from filmstrip.settings import PipelineSettings as PipelineOptions

__all__ = ["PipelineOptions"]
