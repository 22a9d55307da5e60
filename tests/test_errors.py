"""Errors survive pickling (a pool sends a worker's exception to the parent that way), every class in the module."""

from __future__ import annotations

import inspect
import multiprocessing
import pickle

import pytest

import dfdet.errors as errors
from dfdet.errors import InputError


def error_classes() -> list[type[BaseException]]:
    """Every exception class defined in dfdet.errors, so a class added later is covered without editing this file."""
    return [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, BaseException) and c.__module__ == errors.__name__
    ]


def instances(cls: type[BaseException]) -> list[BaseException]:
    """`cls` built from its signature: required arguments only, then every argument (e.g. with and without a fix)."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except ValueError:  # no __init__ of its own: Exception's (*args)
        return [cls("<what>"), cls()]

    def value(p: inspect.Parameter) -> object:
        return 7 if p.annotation in (int, "int") else f"<{p.name}>"

    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [value(p) for p in positional if p.default is p.empty]
    return [cls(*required), cls(*(value(p) for p in positional))]


def test_the_module_has_the_classes_we_expect() -> None:
    names = {c.__name__ for c in error_classes()}
    assert {"DfdetError", "InputError", "UsageError", "PartialSuccess"} <= names


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_round_trip_keeps_type_message_fix_exit_code_and_attributes(cls: type[BaseException]) -> None:
    for e in instances(cls):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e)
        assert str(back) == str(e) and back.args == e.args
        assert vars(back) == vars(e)  # fix, path, reason, skipped, ...
        assert getattr(back, "fix", None) == getattr(e, "fix", None)
        assert getattr(back, "exit_code", None) == getattr(e, "exit_code", None)


def test_input_error_round_trip_in_detail() -> None:
    e = InputError("a/b.wav", "too short for the recipe", "pass --skip-bad")
    back = pickle.loads(pickle.dumps(e))
    assert (back.path, back.reason, back.fix, back.exit_code) == (
        "a/b.wav",
        "too short for the recipe",
        "pass --skip-bad",
        1,
    )
    assert str(back) == "a/b.wav: too short for the recipe (pass --skip-bad)"


def fail_on(path: str) -> None:
    """Pool work function (module level, so spawn workers can import it)."""
    raise InputError(path, "too short for the recipe", "pass --skip-bad")


def test_a_worker_input_error_reaches_the_parent() -> None:
    """Before errors pickled, the pool's result thread died unpickling this and `imap` waited forever."""
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        it = pool.imap(fail_on, ["x.wav"])
        with pytest.raises(InputError) as err:
            it.next(timeout=60)  # a hang fails as multiprocessing.TimeoutError instead
        assert str(err.value) == "x.wav: too short for the recipe (pass --skip-bad)"
        assert err.value.path == "x.wav" and err.value.fix == "pass --skip-bad"
    finally:
        pool.terminate()
