"""Dataset ingest: uploaded files -> validated, compact ``.npy`` arrays the trainer memory-maps.

Each format has its own module; all of them write through ``common.ArrayOut`` (on-disk arrays
filled chunk by chunk, so an upload is never held whole in memory) and end in ``common.finish``,
which checks labels and values and computes the dataset's description.
"""

from app.ingest.common import IngestError, IngestLimits, Upload, convert

__all__ = ["IngestError", "IngestLimits", "Upload", "convert"]
