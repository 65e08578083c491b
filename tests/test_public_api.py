"""The public surface: ``__all__`` names exactly what the package exports, every name imports,
and the type information ships (``py.typed``)."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import tomllib
from pathlib import Path

import agent_memory

ROOT = Path(__file__).resolve().parent.parent

SPEC_NAMES = {
    "Settings",
    "ConversationStore",
    "AsyncConversationStore",
    "RedisChatMessageHistory",
    "AgentMemoryError",
    "StoreUnavailable",
}


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(agent_memory).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert set(agent_memory.__all__) == public | {"__version__"}
    assert len(agent_memory.__all__) == len(set(agent_memory.__all__))
    assert sorted(agent_memory.__all__) == agent_memory.__all__


def test_every_name_in_all_is_importable() -> None:
    for name in agent_memory.__all__:
        module = importlib.import_module("agent_memory")
        assert getattr(module, name) is not None
        exec(f"from agent_memory import {name}", {})


def test_the_names_the_spec_promises_are_public() -> None:
    assert set(agent_memory.__all__) >= SPEC_NAMES


def test_exported_classes_say_where_they_live() -> None:
    for name in agent_memory.__all__:
        value = getattr(agent_memory, name)
        if inspect.isclass(value):
            assert value.__module__.startswith("agent_memory."), name
            assert value.__doc__, f"{name} has no docstring"


def test_py_typed_ships() -> None:
    assert importlib.resources.files("agent_memory").joinpath("py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["agent_memory"]


def test_the_lua_scripts_ship() -> None:
    folder = importlib.resources.files("agent_memory").joinpath("lua")
    assert {p.name for p in folder.iterdir() if p.name.endswith(".lua")} >= {
        "_prelude.lua",
        "append.lua",
        "create.lua",
        "delete.lua",
        "prune.lua",
        "update.lua",
    }
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "lua/*.lua" in config["tool"]["setuptools"]["package-data"]["agent_memory"]
