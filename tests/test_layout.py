"""The package's layout keeps its rules: no import cycle inside agent_memory, the sans-IO core
(plan.py, plans/) imports no redis-py, each rule is defined once, every module says its job."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import agent_memory
from agent_memory import codec, models, rules

PACKAGE = Path(agent_memory.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, *, top_level_only: bool) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from pkg import mod`` names the
    submodule when there is one); with ``top_level_only``, only what runs at import."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    return {
        name: {m for m in _imports(name, top_level_only=top_level_only) if m in MODULES}
        for name in MODULES
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a depth-first search), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_import_walker_sees_the_package() -> None:
    graph = _graph(top_level_only=False)
    assert {"agent_memory.plan", "agent_memory.plans.messages", "agent_memory.store"} <= set(graph)
    assert "agent_memory.plans.context" in graph["agent_memory.plans.messages"]
    assert "agent_memory.core" in graph["agent_memory._base"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_inside_agent_memory() -> None:
    """Counting every import: lazy ones inside functions and TYPE_CHECKING ones too."""
    assert _cycle(_graph(top_level_only=False)) is None


def _is_redis(module: str) -> bool:
    return module == "redis" or module.startswith("redis.")


def test_the_sans_io_core_imports_no_redis_module() -> None:
    core = [n for n in MODULES if n == "agent_memory.plan" or n.startswith("agent_memory.plans")]
    assert len(core) >= 7
    for name in core:  # not even lazily
        assert not any(map(_is_redis, _imports(name, top_level_only=False))), name
    graph = _graph(top_level_only=True)
    loaded, todo = set(core), list(core)
    while todo:  # everything importing the core loads
        for dep in graph[todo.pop()] - loaded:
            loaded.add(dep)
            todo.append(dep)
    assert "agent_memory.store" not in loaded
    for name in loaded:
        assert not any(map(_is_redis, _imports(name, top_level_only=True))), name


def test_every_module_says_its_job_at_the_top() -> None:
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{name} has no module docstring"


def test_the_plans_modules_stay_readable_in_one_sitting() -> None:
    for name, path in MODULES.items():
        if name.startswith("agent_memory.plans") or name in (
            "agent_memory.plan",
            "agent_memory.core",
        ):
            assert len(path.read_text(encoding="utf-8").splitlines()) <= 250, name


def test_the_role_vocabulary_is_defined_once() -> None:
    assert models.Role is rules.Role
    assert set(typing.get_args(rules.Role)) == rules.ROLES
    assert set(codec._CLASSES) == rules.ROLES  # every role has its LangChain class


def test_the_cursor_rule_takes_ascii_digits_only() -> None:
    assert rules.is_cursor("1700000000000-0")
    assert rules.is_cursor(rules.LAST_CURSOR)
    assert not rules.is_cursor(f"{rules.MAX_U64 + 1}-0")
    assert not rules.is_cursor("\u0661\u0662-0")  # Arabic-Indic digits match \d, not the rule
    assert not rules.is_cursor("1-0\n")
    assert not rules.is_cursor(17)
