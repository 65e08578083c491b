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


def _load(name: str, *, prelude: bool = True, extra: tuple[str, ...] = ()) -> Script:
    """``name``.lua after the shared prelude and the ``extra`` preludes (e.g. _checkpoint)."""
    folder = files("agent_memory") / "lua"
    parts = [*(("_prelude",) if prelude else ()), *extra, name]
    source = "\n".join((folder / f"{part}.lua").read_text(encoding="utf-8") for part in parts)
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


APPEND = _load("append")
CREATE = _load("create")
UPDATE = _load("update")
DELETE = _load("delete", prelude=False)
PRUNE = _load("prune", prelude=False)
RESTORE = _load("restore")
DELETE_IF_LENGTH = _load("delete_if_length", prelude=False)  # the peers' lists (migrate.py)
# LangGraph checkpoints (agent_memory.langgraph): the prelude, then lua/_checkpoint.lua.
CHECKPOINT_PUT = _load("checkpoint_put", extra=("_checkpoint",))
CHECKPOINT_WRITES = _load("checkpoint_writes", extra=("_checkpoint",))
CHECKPOINT_READ = _load("checkpoint_read", extra=("_checkpoint",))
CHECKPOINT_ADMIN = _load("checkpoint_admin", extra=("_checkpoint",))
# The LangGraph store (agent_memory.langgraph.store): every item command, one script.
ITEMS = _load("items")
ALL = (
    APPEND,
    CREATE,
    UPDATE,
    DELETE,
    PRUNE,
    RESTORE,
    DELETE_IF_LENGTH,
    CHECKPOINT_PUT,
    CHECKPOINT_WRITES,
    CHECKPOINT_READ,
    CHECKPOINT_ADMIN,
    ITEMS,
)
