"""Settings of the ``nas`` storage backend (``[storage.options]``).

The password is a :class:`~pydantic.SecretStr`: its repr and str are masked, and the backend
hands its value to the SMB client only, never to a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from valt_core.storage.spool import SpoolSettings


class NasStorageConfig(SpoolSettings):
    """Which share (or mounted path) holds recordings, and how the spool in front of it behaves."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["smb", "mount"] = Field("smb", description=(
        "``smb``: Valt speaks SMB 3 to the server itself; ``mount``: the share is already mounted "
        "(by the operating system) at ``mount_path``."))
    server: str | None = Field(None, description="Host name or address of the SMB server (mode smb).")
    port: int = Field(445, ge=1, le=65535, description="TCP port of the SMB server.")
    share: str | None = Field(None, description="Name of the share on the server (mode smb), e.g. ``recordings``.")
    path: str = Field("", description=(
        "Folder inside the share (or below ``mount_path``) that holds Valt's files; empty for its top."))
    user: str | None = Field(None, description="SMB account Valt signs in with (mode smb).")
    password: SecretStr | None = Field(None, description=(
        "Password of ``user``; set it through VALT_* environment overrides or a private settings file."))
    domain: str | None = Field(None, description="Domain (or workgroup) of ``user``; unset for a local account.")
    encrypt: bool = Field(False, description=(
        "Encrypt SMB traffic (SMB 3 encryption). Signing is always required, whatever this says."))
    mount_path: Path | None = Field(None, description="Where the share is mounted (mode mount).")
    allow_unmounted: bool = Field(False, description=(
        "Mode mount: accept a ``mount_path`` that is not a mount point. Off by default, so a NAS that "
        "failed to mount does not silently fill the local disk."))
    timeout_s: float = Field(10.0, gt=0, description=(
        "Limit of each single call to the share (connect, open, write...)."))
    fsync: bool = Field(True, description="fsync the spool on every flush, so a power cut keeps flushed data.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.replace("\\", "/").strip("/")
        if value and any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("path must be slash-separated folder names, without '.' or '..'")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> "NasStorageConfig":
        if self.mode == "smb":
            missing = [name for name in ("server", "share", "user") if not getattr(self, name)]
            if self.password is None:
                missing.append("password")
            if missing:
                raise ValueError(f"mode 'smb' needs {', '.join(missing)}")
        elif self.mount_path is None:
            raise ValueError("mode 'mount' needs mount_path")
        return self

    def where(self) -> str:
        """The share as a person names it (no credentials): ``//server/share/path`` or the mount path."""
        if self.mode == "mount":
            return str(self.mount_path)
        port = "" if self.port == 445 else f":{self.port}"
        return f"//{self.server}{port}/{self.share}" + (f"/{self.path}" if self.path else "")
