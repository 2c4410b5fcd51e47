# The login's launch on sessiond's side (sessiond.launching): checked once
# PAM said yes, taken by a session that starts for the login into the agent's
# environment (SESSIOND_FIRST_LAUNCH, a SPAWN_APP's JSON) and answered like
# any launch; refused, or past the sandbox's bound on an environment value,
# it is not taken (the login answers the refusal, or launches it once
# attached), and nothing is allocated for it.
"""Tests of check_launch and SessionApps.take_first_launch."""

from __future__ import annotations

from typing import Any

from apps.publisher import LaunchPlan
from isolation.spec import MAX_ENV_VALUE_BYTES
from protocol.errors import ReasonCode
from protocol.messages import Launch, LaunchResult, SpawnApp
from sessiond.agent.settings import FIRST_LAUNCH_ENV
from sessiond.launching import MAX_LAUNCH_ARGS, FirstLaunch, LaunchRefused, SessionApps, check_launch


class Apps(SessionApps):
    def __init__(self) -> None:
        self._launches = {}
        self._next_request = 1
        self.apps = {}
        self.registry = type("R", (), {"update_session": lambda *a, **k: None})()  # type: ignore[assignment]
        self.id = "s-1"
        self.display = "native"


class Publisher:
    def plan_launch(self, user: str, app: str, args: tuple[str, ...]) -> LaunchPlan:
        if app != "xterm":
            from apps.catalog import UnknownApp  # noqa: PLC0415

            raise UnknownApp(app)
        return LaunchPlan("xterm", ("xterm", *args), "/home/u")


def test_a_checked_launch_goes_into_the_agents_environment_and_is_answered_as_a_launch() -> None:
    apps, env = Apps(), {}
    first = FirstLaunch(Launch(request=5, app="xterm"), check_launch(Publisher(), "u", Launch(request=5, app="xterm")))  # type: ignore[arg-type]
    apps.take_first_launch(first, env)
    spawn = SpawnApp.decode(env[FIRST_LAUNCH_ENV].encode())
    assert spawn == SpawnApp(request=1, app="xterm", argv=("xterm",), cwd="/home/u")
    assert first.result is not None and apps._next_request == 2
    answers: list[Any] = []
    first.result.addCallback(answers.append)
    apps.launch_finished(LaunchResult(request=1, ok=True, message="window mapped", pid=7))
    assert answers == [LaunchResult(request=1, ok=True, message="window mapped", pid=7)] and apps.apps == {7: "xterm"}


def test_an_xpra_sessions_launch_is_left_to_the_login() -> None:
    apps, env = Apps(), {}
    apps.display = "xpra"
    first = FirstLaunch(Launch(request=5, app="xterm"), check_launch(Publisher(), "u", Launch(request=5, app="xterm")))  # type: ignore[arg-type]
    apps.take_first_launch(first, env)
    assert env == {} and first.result is None and apps._launches == {}


def test_a_refused_launch_is_not_taken() -> None:
    apps, env = Apps(), {}
    checked = check_launch(Publisher(), "u", Launch(request=1, app="nope"))  # type: ignore[arg-type]
    assert isinstance(checked, LaunchRefused) and checked.code == ReasonCode.UNKNOWN_APP
    apps.take_first_launch(FirstLaunch(Launch(request=1, app="nope"), checked), env)
    assert env == {} and apps._launches == {}
    too_many = check_launch(Publisher(), "u", Launch(request=1, app="xterm", args=("f",) * (MAX_LAUNCH_ARGS + 1)))  # type: ignore[arg-type]
    assert isinstance(too_many, LaunchRefused) and too_many.code == ReasonCode.LIMIT_EXCEEDED


def test_a_launch_past_the_spec_bound_on_an_environment_value_is_left_to_the_login() -> None:
    def first_with(length: int) -> FirstLaunch:
        launch = Launch(request=1, app="xterm", args=("x" * length,))
        return FirstLaunch(launch, check_launch(Publisher(), "u", launch))  # type: ignore[arg-type]

    overhead = len(SpawnApp(request=1, app="xterm", argv=("xterm", ""), cwd="/home/u").encode())
    apps, env = Apps(), {}
    fits = first_with(MAX_ENV_VALUE_BYTES - overhead)
    apps.take_first_launch(fits, env)
    assert len(env[FIRST_LAUNCH_ENV].encode()) == MAX_ENV_VALUE_BYTES and fits.result is not None
    apps, env = Apps(), {}
    over = first_with(MAX_ENV_VALUE_BYTES - overhead + 1)
    apps.take_first_launch(over, env)
    assert env == {} and over.result is None and apps._launches == {} and apps._next_request == 1
