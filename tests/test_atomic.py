import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.atomic import atomic_open, atomic_path, write_text_atomic


def test_success_replaces_target(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_old_target_and_no_temp(tmp_path, exc):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(exc), atomic_open(target) as fh:
        fh.write("half")
        raise exc()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_without_previous_target_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "sub" / "x.bin") as tmp:
        tmp.write_bytes(b"123")
        raise RuntimeError
    assert list((tmp_path / "sub").iterdir()) == []


@settings(max_examples=25, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=50))
def test_interrupted_writes_never_leave_partial_files(tmp_path_factory, text, cut):
    d = tmp_path_factory.mktemp("a")
    target = d / "t.txt"
    try:
        with atomic_open(target) as fh:
            fh.write(text[:cut])
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert list(d.iterdir()) == []
    write_text_atomic(target, text)
    assert target.read_bytes().decode("utf-8") == text
    assert [p.name for p in d.iterdir()] == ["t.txt"]


@pytest.fixture
def swallowed_stop(monkeypatch):
    """A Ctrl-C whose KeyboardInterrupt was swallowed (as in a weakref callback): only the recorded request is left."""
    from dfdet import interrupts

    monkeypatch.setattr(interrupts, "_requested", False)
    with pytest.raises(KeyboardInterrupt):
        interrupts._handle(15, None)
    assert interrupts.requested()


def test_swallowed_interrupt_still_prevents_the_commit(tmp_path, swallowed_stop):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as fh:
        fh.write("new but never committed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
