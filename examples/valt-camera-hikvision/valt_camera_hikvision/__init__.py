"""An example third-party Valt camera driver for Hikvision IP cameras.

Identity and snapshots come over HTTP from the camera's ISAPI; live media is the camera's
RTSP stream. Installed with pip, it is found through the ``valt.cameras`` entry point
``hikvision``, exactly like a driver bundled with Valt.
"""

__version__ = "0.1.0"
