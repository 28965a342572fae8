"""Dataset ingest: uploaded files -> validated, compact ``.npy`` arrays the trainer memory-maps.

Each format has its own module and ``formats`` holds the table of them; all of them write
through ``common.ArrayOut`` (on-disk arrays filled chunk by chunk, so an upload is never held
whole in memory) and end in ``common.finish``, which checks labels and values and computes the
dataset's description.
"""

from app.core.datasets.ingest.common import IngestError, IngestLimits, Upload
from app.core.datasets.ingest.formats import FORMATS, convert

__all__ = ["FORMATS", "IngestError", "IngestLimits", "Upload", "convert"]
