"""Both stores' public methods show the real signatures and return types of the plans they run
(what ``help()``, ``inspect`` and IDEs show), not ``-> Plan[...]``."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from agent_memory import AsyncConversationStore, ConversationStore
from agent_memory.core import OPERATIONS, StoreCore

STORES = [ConversationStore, AsyncConversationStore]


def _plan_signature(name: str) -> tuple[list[inspect.Parameter], Any]:
    signature = inspect.signature(getattr(StoreCore, name), eval_str=True)
    return list(signature.parameters.values())[1:], typing.get_args(signature.return_annotation)[2]


def test_every_public_plan_of_the_core_is_an_operation() -> None:
    plans = {
        name
        for name, member in inspect.getmembers(StoreCore, inspect.isgeneratorfunction)
        if not name.startswith("_")
    }
    assert plans == set(OPERATIONS)


@pytest.mark.parametrize("store", STORES)
def test_store_methods_have_the_plans_signatures_and_results(store: type[Any]) -> None:
    for name in OPERATIONS:
        method = getattr(store, name)
        params, result = _plan_signature(name)
        signature = inspect.signature(method)
        assert list(signature.parameters.values())[1:] == params, name
        assert signature.return_annotation == result, name
        assert "Plan" not in str(signature), name
        assert typing.get_type_hints(method)["return"] == result, name
        assert method.__name__ == name
        assert method.__qualname__ == f"{store.__name__}.{name}"
        assert method.__doc__
        assert method.__doc__ == getattr(StoreCore, name).__doc__
        assert inspect.iscoroutinefunction(method) is (store is AsyncConversationStore), name


@pytest.mark.parametrize("store", STORES)
def test_every_public_method_of_a_store_has_a_real_signature(store: type[Any]) -> None:
    for name, member in inspect.getmembers(store, callable):
        if name.startswith("_") or isinstance(member, type):
            continue
        signature = inspect.signature(member)
        assert "Plan[" not in str(signature.return_annotation), name
        assert signature.return_annotation is not inspect.Signature.empty, name


def test_a_bound_method_shows_the_callers_view() -> None:
    store = ConversationStore.__new__(ConversationStore)
    signature = inspect.signature(store.get_messages)
    assert str(signature).startswith("(conversation_id: str, *, limit: int | None = None")
    assert "list[agent_memory.codec.StoredMessage]" in str(signature)
