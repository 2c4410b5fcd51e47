"""SandboxSpec validation and the strict JSON codec (no root needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isolation.accounts import Account
from isolation.spec import (
    MAX_ARGV,
    MAX_ENV_VARS,
    MAX_KEEP_FDS,
    MAX_SPEC_BYTES,
    SandboxSpec,
    SpecError,
    env_name_allowed,
    from_json,
    to_json,
)

ACCOUNT = Account(name="alice", uid=1500, gid=1500, groups=(27, 1500),
                  home="/home/alice", shell="/bin/bash")


def make_spec(**changes: Any) -> SandboxSpec:
    fields: dict[str, Any] = {
        "account": ACCOUNT,
        "session_id": "s-1_A",
        "argv": ("/usr/bin/agent", "--fd", "3"),
        "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SESSIOND_SESSION": "s-1_A"},
    }
    fields.update(changes)
    return SandboxSpec(**fields)


def test_valid_spec_defaults() -> None:
    spec = make_spec()
    assert spec.private_tmp is True
    assert spec.working_dir() == "/home/alice"
    assert make_spec(cwd="/srv").working_dir() == "/srv"
    assert spec.namespaces == ("mount", "ipc", "uts")
    assert spec.keep_fds == ()


def test_env_is_a_frozen_private_copy() -> None:
    env = {"PATH": "/bin"}
    spec = make_spec(env=env)
    env["PATH"] = "/evil"
    env["TERM"] = "xterm"
    assert dict(spec.env) == {"PATH": "/bin"}
    with pytest.raises(TypeError):
        spec.env["PATH"] = "/x"  # type: ignore[index]


@pytest.mark.parametrize("name", ["PATH", "LANG", "LC_ALL", "LC_TIME", "TERM", "SESSIOND_X"])
def test_env_names_allowed(name: str) -> None:
    assert env_name_allowed(name)


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "PYTHONPATH", "HOME", "USER", "XDG_RUNTIME_DIR", "SHELL",
     "", "PATH=", "1PATH", "SESSIOND-X", "LC_ALL\n"],
)
def test_env_names_refused(name: str) -> None:
    assert not env_name_allowed(name)
    with pytest.raises(SpecError):
        make_spec(env={name: "x"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"argv": ()}, "argv"),
        ({"argv": ["/bin/true"]}, "argv"),
        ({"argv": ("bin/true",)}, "absolute"),
        ({"argv": ("/bin/true", "a\0b")}, "NUL"),
        ({"argv": ("/bin/true",) * (MAX_ARGV + 1)}, "entries"),
        ({"argv": ("/bin/true", 3)}, "string"),
        ({"session_id": ""}, "session id"),
        ({"session_id": "a/b"}, "session id"),
        ({"session_id": "abc\n"}, "session id"),
        ({"session_id": "x" * 65}, "session id"),
        ({"env": {"PATH": "/bin\0/x"}}, "NUL"),
        ({"env": {f"SESSIOND_{i}": "v" for i in range(MAX_ENV_VARS + 1)}}, "more than"),
        ({"env": {"PATH": 1}}, "string"),
        ({"cwd": "relative"}, "absolute"),
        ({"private_tmp": 1}, "private_tmp"),
        ({"keep_fds": (2,)}, "keep_fds"),
        ({"keep_fds": (3, 3)}, "duplicates"),
        ({"keep_fds": (True,)}, "keep_fds"),
        ({"keep_fds": tuple(range(3, 4 + MAX_KEEP_FDS))}, "keep_fds"),
        ({"namespaces": ("ipc",)}, "mandatory"),
        ({"namespaces": ("mount", "user")}, "not supported"),
            ({"hostname": "box", "namespaces": ("mount", "ipc")}, "uts namespace"),
            ({"hostname": "-bad-"}, "not a valid host name"),
            ({"hostname": "a" * 65}, "longer than"),
            ({"cgroup": 1}, "cgroup"),
        ({"namespaces": ("mount", "mount")}, "duplicates"),
    ],
)
def test_invalid_specs(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_spec(**changes)


@pytest.mark.parametrize(
    "account",
    [
        replace(ACCOUNT, uid=0),
        replace(ACCOUNT, gid=0),
        replace(ACCOUNT, groups=(0, 1500)),
        replace(ACCOUNT, uid=-1),
        replace(ACCOUNT, uid=True),
        replace(ACCOUNT, name=""),
        replace(ACCOUNT, home="home/alice"),
        replace(ACCOUNT, shell="bash"),
        replace(ACCOUNT, groups=[1500]),  # type: ignore[arg-type]
    ],
)
def test_invalid_accounts(account: Account) -> None:
    with pytest.raises(SpecError):
        make_spec(account=account)


def test_json_round_trip() -> None:
    spec = make_spec(cwd="/tmp", keep_fds=(3, 5), private_tmp=False,
                     namespaces=("mount",))
    data = to_json(spec)
    assert from_json(data) == spec
    assert to_json(from_json(data)) == data
    full = make_spec(namespaces=("mount", "ipc", "uts", "pid", "net"), hostname="sess.example",
                     cgroup=True)
    assert from_json(to_json(full)) == full


_ids = st.integers(min_value=1, max_value=2**31)
_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                max_size=40)


@given(
    uid=_ids, gid=_ids, groups=st.lists(_ids, max_size=8),
    session_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    args=st.lists(_text, max_size=6),
    env=st.dictionaries(st.from_regex(r"SESSIOND_[A-Z0-9_]{1,10}", fullmatch=True),
                        _text, max_size=5),
    keep=st.sets(st.integers(min_value=3, max_value=64), max_size=4),
)
def test_json_round_trip_property(uid: int, gid: int, groups: list[int], session_id: str,
                                  args: list[str], env: dict[str, str],
                                  keep: set[int]) -> None:
    account = Account("u", uid, gid, tuple(groups), "/home/u", "")
    spec = SandboxSpec(account=account, session_id=session_id,
                       argv=("/bin/x", *args), env=env, keep_fds=tuple(sorted(keep)))
    assert from_json(to_json(spec)) == spec


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(to_json(make_spec()))
    return doc


def _enc(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _mutations() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    doc = _doc()
    doc["extra"] = 1
    cases.append(("unknown key", doc))
    doc = _doc()
    del doc["cwd"]
    cases.append(("missing key", doc))
    doc = _doc()
    doc["account"]["admin"] = True
    cases.append(("unknown key", doc))
    doc = _doc()
    doc["version"] = 1  # the previous format: no hostname/cgroup
    cases.append(("version", doc))
    doc = _doc()
    doc["version"] = True
    cases.append(("version", doc))
    doc = _doc()
    doc["account"]["uid"] = 1500.0
    cases.append(("uid", doc))
    doc = _doc()
    doc["account"]["uid"] = 0
    cases.append(("root", doc))
    doc = _doc()
    doc["argv"] = "/bin/sh"
    cases.append(("array", doc))
    doc = _doc()
    doc["env"] = [["PATH", "/bin"]]
    cases.append(("env", doc))
    doc = _doc()
    doc["env"]["LD_PRELOAD"] = "/tmp/x.so"
    cases.append(("not allowed", doc))
    return cases


@pytest.mark.parametrize(("message", "doc"), _mutations())
def test_from_json_strict(message: str, doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=message):
        from_json(_enc(doc))


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"not json", b"\xff\xfe", b'{"version": NaN}', b"{" * 100_000],
)
def test_from_json_garbage(data: bytes) -> None:
    with pytest.raises(SpecError):
        from_json(data)


def test_from_json_duplicate_key() -> None:
    data = to_json(make_spec())
    data = data[:-1] + b',"cwd":"/root"}'
    with pytest.raises(SpecError, match="duplicate"):
        from_json(data)


def test_size_bound_is_enforced_both_ways() -> None:
    big = make_spec(env={f"SESSIOND_{i}": "v" * 4000 for i in range(MAX_ENV_VARS)})
    with pytest.raises(SpecError, match="more than"):
        to_json(big)
    padded = to_json(make_spec()) + b" " * (MAX_SPEC_BYTES)
    with pytest.raises(SpecError, match="more than"):
        from_json(padded)
    # Just under the bound still decodes (whitespace is legal JSON).
    ok = to_json(make_spec())
    assert from_json(ok + b" " * (MAX_SPEC_BYTES - len(ok))) == make_spec()
