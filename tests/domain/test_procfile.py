from __future__ import annotations

import pytest

from dockyard.domain.procfile import parse_procfile
from dockyard.errors import ProcfileError


def test_types_and_commands_are_read_in_order() -> None:
    data = b"# comment\nweb: python3 -m http.server $PORT\n\nworker:   python3 worker.py  \n"
    assert parse_procfile(data) == {
        "web": "python3 -m http.server $PORT",
        "worker": "python3 worker.py",
    }


def test_a_command_may_contain_colons() -> None:
    assert parse_procfile(b"web: gunicorn app:app --bind 0.0.0.0:$PORT\n") == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT"
    }


def test_crlf_and_a_byte_order_mark_are_accepted() -> None:
    assert parse_procfile("\ufeffweb: ./run\r\n".encode()) == {"web": "./run"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"web: ok\nworker:\n", 'Procfile line 2: "worker" has no command'),
        (b"web: a\nweb: b\n", 'Procfile line 2: process type "web" is defined twice'),
        (b"web: a\njust some text\n", 'Procfile line 2: "just some text" is not'),
        (b"web: a\nbad type!: x\n", 'Procfile line 2: "bad type!: x" is not'),
        (b"web: ok\n\xff\xfe: x\n", "Procfile line 2: the file is not valid UTF-8"),
        (b"# only a comment\n", "Procfile defines no process types"),
    ],
)
def test_bad_procfiles_name_the_line_and_the_fix(data: bytes, message: str) -> None:
    with pytest.raises(ProcfileError) as info:
        parse_procfile(data)
    assert message in info.value.message
