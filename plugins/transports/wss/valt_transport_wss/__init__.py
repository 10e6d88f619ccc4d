"""Valt's ``wss`` transport: a camera's live fMP4 over a WebSocket, into the browser's MSE."""
