"""Display numbers for the session's Xvfb skip names bound in the abstract namespace (display_number.py)."""

from __future__ import annotations

import os
import socket

from sessiond.agent.display_number import MAX_DISPLAY_PROBES, abstract_name_taken, files_taken, free_display_numbers


def test_a_bound_abstract_name_is_taken_and_an_unbound_one_is_free() -> None:
    number = 40000 + os.getpid() % 20000
    assert not abstract_name_taken(number)
    holder = socket.socket(socket.AF_UNIX)
    try:
        holder.bind(f"\0/tmp/.X11-unix/X{number}")
        holder.listen(1)
        assert abstract_name_taken(number)
    finally:
        holder.close()
    assert not abstract_name_taken(number)


def test_lock_and_socket_files_make_a_number_taken(tmp_path: object) -> None:
    tmp = str(tmp_path)
    os.mkdir(f"{tmp}/.X11-unix")
    assert not files_taken(3, tmp)
    open(f"{tmp}/.X3-lock", "w").close()
    assert files_taken(3, tmp)
    open(f"{tmp}/.X11-unix/X4", "w").close()
    assert files_taken(4, tmp)


def test_free_numbers_skip_taken_ones_lowest_first() -> None:
    taken = {0, 1, 3}
    assert list(free_display_numbers(taken=taken.__contains__))[:3] == [2, 4, 5]


def test_the_search_is_bounded() -> None:
    looked: list[int] = []

    def everything_taken(number: int) -> bool:
        looked.append(number)
        return True

    assert list(free_display_numbers(taken=everything_taken)) == []
    assert len(looked) == MAX_DISPLAY_PROBES
