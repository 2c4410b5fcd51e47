# Why this package exists: published applications are freedesktop .desktop
# entries; this package turns them into a catalog and into argv lists that
# the session agent runs as the user (never a shell string).
"""Published-application catalog and Desktop Entry Exec expansion."""
