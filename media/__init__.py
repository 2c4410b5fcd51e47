# Media codecs shared by the session agent and the thin client (Opus audio,
# display region layout and image headers). Why a package of its own: the
# client must not import sessiond/, and the agent must not import client/;
# code both need lives here, and imports neither.
"""Media codecs shared by the session agent and the thin client."""
