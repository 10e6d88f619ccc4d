"""The events Valt tells plugins about, as typed values.

Each event is a frozen dataclass naming its hook; the core emits one with
``await plugins.notify(RecordingStarted(recording_id=7, room_id=3))``, which calls the hook
through pluggy, so hook wrappers and pluggy's call monitoring see every event.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class PluginEvent:
    """Base of the events; ``hook`` is the name of the hook the event calls."""

    hook: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        """The hook's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class CameraStatusChanged(PluginEvent):
    """A camera's ingest state changed (``online``, ``offline``, ``no_frames``, ``error``)."""

    hook: ClassVar[str] = "valt_camera_status_changed"
    camera_id: int
    status: str
    previous: str


@dataclass(frozen=True)
class RecordingStarted(PluginEvent):
    """A recording of a room started."""

    hook: ClassVar[str] = "valt_recording_started"
    recording_id: int
    room_id: int


@dataclass(frozen=True)
class RecordingPaused(PluginEvent):
    """A running recording was paused."""

    hook: ClassVar[str] = "valt_recording_paused"
    recording_id: int


@dataclass(frozen=True)
class RecordingResumed(PluginEvent):
    """A paused recording was resumed."""

    hook: ClassVar[str] = "valt_recording_resumed"
    recording_id: int


@dataclass(frozen=True)
class RecordingStopped(PluginEvent):
    """A recording ended: ``stopped``, or ``interrupted`` (found cut off at the next start); an
    uploaded one is announced ``stopped`` once it is made."""

    hook: ClassVar[str] = "valt_recording_stopped"
    recording_id: int
    state: str


@dataclass(frozen=True)
class SegmentWritten(PluginEvent):
    """A segment of a track was written to storage and indexed."""

    hook: ClassVar[str] = "valt_segment_written"
    recording_id: int
    track_id: int
    segment_id: int
    key: str


@dataclass(frozen=True)
class ClipReady(PluginEvent):
    """A clip job finished and its files can be downloaded."""

    hook: ClassVar[str] = "valt_clip_ready"
    clip_id: int


@dataclass(frozen=True)
class MarkerAdded(PluginEvent):
    """A marker was put on a recording (live or in review)."""

    hook: ClassVar[str] = "valt_marker_added"
    marker_id: int
    recording_id: int


@dataclass(frozen=True)
class MarkerChanged(PluginEvent):
    """A marker's text, time, duration or colour was changed."""

    hook: ClassVar[str] = "valt_marker_changed"
    marker_id: int
    recording_id: int


@dataclass(frozen=True)
class MarkerRemoved(PluginEvent):
    """A marker was deleted; its row is gone when the hook is called."""

    hook: ClassVar[str] = "valt_marker_removed"
    marker_id: int
    recording_id: int


#: Every event, by hook name.
EVENTS: dict[str, type[PluginEvent]] = {
    e.hook: e for e in (CameraStatusChanged, RecordingStarted, RecordingPaused, RecordingResumed,
                        RecordingStopped, SegmentWritten, ClipReady, MarkerAdded, MarkerChanged, MarkerRemoved)
}
