# The PAM account stage alone, for logins that present no password.
#
# Why: a resume token proves the client logged in with its password before;
# it says nothing about the account now. A password login runs PAM's auth and
# account stages (pam_authenticate, then pam_acct_mgmt: expired, locked by an
# admin's policy, outside allowed hours...). A resume must run the account
# stage too, or a token would keep a disabled account in. python-pam offers
# only the combined call, so this module drives libpam's pam_start /
# pam_acct_mgmt / pam_end through python-pam's own ctypes bindings; no
# password is ever handed to the conversation (a module that prompts gets an
# empty answer, and an account module has no business prompting).
"""account_check(service, user): PAM's account stage without authentication."""

from __future__ import annotations

from ctypes import byref, c_void_p
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccountVerdict:
    """PAM's answer for one account: allowed, and PAM's reason text otherwise."""

    allowed: bool
    reason: str


def account_check(service: str, user: str) -> AccountVerdict:
    """Run pam_acct_mgmt for USER under SERVICE (blocking: call it off the reactor)."""
    # Imported here: python-pam is loaded after the daemon listens (sessiond/auth.py, load_pam).
    from pam.__internals import PAM_SUCCESS, PamAuthenticator, PamConv, PamHandle, conv_func, my_conv

    bindings = PamAuthenticator()  # loads libpam once per process; its functions are shared
    messages: list[str] = []

    @conv_func  # type: ignore[misc]
    def conversation(n_messages: int, prompts: Any, responses: Any, _app_data: Any) -> int:
        return my_conv(n_messages, prompts, responses, bindings.libc, messages, b"", "utf-8")

    conv = PamConv(conversation, c_void_p())
    handle = PamHandle()
    status = bindings.pam_start(service.encode("utf-8"), user.encode("utf-8"), byref(conv), byref(handle))
    if status != PAM_SUCCESS:
        return AccountVerdict(False, f"PAM could not start ({status})")
    try:
        status = bindings.pam_acct_mgmt(handle, 0)
        reason = bindings.pam_strerror(handle, status).decode("utf-8", "replace")
    finally:
        bindings.pam_end(handle, status)
    return AccountVerdict(status == PAM_SUCCESS, "" if status == PAM_SUCCESS else reason)
