"""Settings of the ``local`` auth backend (``[auth.backend_options.local]``)."""

from pydantic import BaseModel, ConfigDict, Field


class LocalAuthConfig(BaseModel):
    """argon2id cost parameters; the defaults follow the argon2-cffi recommendation (RFC 9106)."""

    model_config = ConfigDict(extra="forbid")
    time_cost: int = Field(3, ge=1, le=20)
    memory_cost_kib: int = Field(65536, ge=8192, le=4 * 1024 * 1024)
    parallelism: int = Field(4, ge=1, le=64)
