"""The bus between the app server and the media servers (see :mod:`valt_core.bus.base`)."""

from .base import Bus, BusUnavailable, Entry, KeyExists, KeyValue, Message, Subscription, WrongRevision, subject_matches
from .local import InProcessBus

__all__ = ["Bus", "BusUnavailable", "Entry", "InProcessBus", "KeyExists", "KeyValue", "Message", "Subscription",
           "WrongRevision", "subject_matches"]
