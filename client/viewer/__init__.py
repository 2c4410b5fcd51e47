"""The native viewer (svclient view): Qt windows for the windows of a session."""
