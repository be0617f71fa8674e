"""A photo's lifecycle, in one place for the api, the worker and the reconciler.

:mod:`~filmstrip.photos.jobs` decides which job a photo needs next (the upload's ready job,
the follow-up with the stages left for later, the remake of a damaged derivative) and holds
the job's one codec. :class:`PhotoLifecycle` makes each change of state with its catalog
write, its job and its event (under the once-key of the photo's outcome where a client must
hear it once): accepted, started, ready, failed, retried, re-queued, remade. It takes the
catalog, queue and publisher its role opened; the pipeline's stages know nothing of it.
"""

from filmstrip.photos.jobs import (
    decode_job,
    encode_job,
    follow_up_job,
    owed_stages,
    photo_pipeline,
    photo_priority,
    ready_job,
    remake_job,
    split_stages,
)
from filmstrip.photos.lifecycle import PhotoLifecycle, completion_once_key

__all__ = [
    "PhotoLifecycle",
    "completion_once_key",
    "decode_job",
    "encode_job",
    "follow_up_job",
    "owed_stages",
    "photo_pipeline",
    "photo_priority",
    "ready_job",
    "remake_job",
    "split_stages",
]
