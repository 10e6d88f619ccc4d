"""Settings of the ``wss`` transport (``[live.transport_options.wss]``)."""

from pydantic import BaseModel, ConfigDict, Field


class WssConfig(BaseModel):
    """How much a slow viewer may lag before it skips to the next keyframe."""

    model_config = ConfigDict(extra="forbid")
    queue_fragments: int = Field(150, ge=10, le=5000, description="Fragments (about frames) queued per viewer.")
