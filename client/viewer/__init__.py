# The native viewer (`svclient view`): each window of a seamless session as a
# top-level window of the local desktop, drawn with Qt 6 (PySide6, an
# optional extra: requirements-viewer.txt). The protocol is the client
# library's (client/session.py, client/windows.py); this package only moves
# its state into Qt widgets and local input back into it. docs/viewer.md.
"""svclient view: the Qt viewer of a session's windows."""
