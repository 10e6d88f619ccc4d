"""Settings of the ``local`` storage backend (``[storage.options]``)."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class LocalStorageConfig(BaseModel):
    """Where files go; defaults to ``DATA_DIR/media`` (filled in by the core)."""

    model_config = ConfigDict(extra="forbid")
    path: Path = Field(description="Directory that holds every recording and clip.")
    fsync: bool = Field(True, description=(
        "Make each flush durable (batched: one syncfs for the flushes of a moment), so a power cut "
        "keeps flushed data."))
