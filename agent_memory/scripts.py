"""The atomic steps, as Lua scripts run with EVALSHA (EVAL once on NOSCRIPT).

Each script is the shared prelude (``lua/_prelude.lua``) followed by its own file; the sources
and their SHA1 are computed once, at first use of this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def _load(name: str, *, prelude: bool = True) -> Script:
    folder = files("agent_memory") / "lua"
    source = (folder / f"{name}.lua").read_text(encoding="utf-8")
    if prelude:
        source = (folder / "_prelude.lua").read_text(encoding="utf-8") + "\n" + source
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


APPEND = _load("append")
CREATE = _load("create")
UPDATE = _load("update")
DELETE = _load("delete", prelude=False)
PRUNE = _load("prune", prelude=False)
RESTORE = _load("restore")
DELETE_IF_LENGTH = _load("delete_if_length", prelude=False)  # the peers' lists (migrate.py)
POP = _load("pop")  # the Agents SDK session's pop_item
ALL = (APPEND, CREATE, UPDATE, DELETE, PRUNE, RESTORE, DELETE_IF_LENGTH, POP)
