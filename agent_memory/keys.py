"""The key schema and id encoding: pure functions, no I/O.

Layout (``P`` is the prefix, ``E`` the encoded conversation id)::

    P:c:{E}:s    stream   the messages, one entry each (field ``m`` = JSON)
    P:c:{E}:h    hash     conversation metadata
    P:c:{E}:i    hash     message id -> stream cursor (idempotent appends)
    P:c:{E}:t    hash     append call tokens -> fingerprint and cursors, for the idempotency TTL
    P:c:{E}:k    zset     LangGraph checkpoints: ``ns NUL checkpoint_id`` (lex order)
    P:c:{E}:d    hash     LangGraph checkpoint records and channel values (see langgraph/)
    P:c:{E}:w    zset     LangGraph pending writes, in ``writes_sort_key`` order (lex)
    P:c:{E}:r    zset     LangGraph run id -> its checkpoints (``run NUL ns NUL id``)
    P:x:all      zset     conversation id -> last activity (ms)
    P:x:u:U      zset     per user (U = encoded user id)
    P:x:a:A      zset     per agent
    P:x:runs     zset     LangGraph ``run NUL thread id`` (delete_for_runs across threads)
    P:x:ua:U:A   zset     per (user, agent) pair (``:`` is escaped in U and A)
    P:x:ttl      zset     one member ``ttl``: the longest TTL (ms) any write to these indexes
                          used; an entry older than now minus it has certainly expired

All of one conversation's keys share the hash tag ``{E}``, so one script touches them all on a
single server or a cluster. The encoding is injective: ``%`` and every brace, glob or separator
character is written as ``%XX`` (UTF-8 bytes, upper-case hex), nothing else is
changed, so distinct ids give distinct key names and no id can form another's hash tag or a
glob pattern (``-`` and ``^`` only mean something inside ``[...]``, which cannot occur).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_memory.errors import InvalidConversationId

MAX_ID_LENGTH = 256
_SPECIAL = frozenset("%{}*?[]\\:")
_GLOB = frozenset("*?[]\\")


def encode_id(raw: str) -> str:
    """Injective, glob- and brace-safe encoding of an id for use inside key names."""
    if not _SPECIAL.intersection(raw):
        return raw
    return "".join(
        "".join(f"%{b:02X}" for b in ch.encode()) if ch in _SPECIAL else ch for ch in raw
    )


def decode_id(encoded: str) -> str:
    """Inverse of :func:`encode_id`."""
    if "%" not in encoded:
        return encoded
    out = bytearray()
    i = 0
    while i < len(encoded):
        if encoded[i] == "%":
            out.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            out += encoded[i].encode()
            i += 1
    return out.decode()


def tenant_prefix(prefix: str, tenant: str) -> str:
    """The key prefix of one tenant's conversations, ``P:t:<encoded tenant>``: the REST API's
    keys of that tenant and ``agent-memory mcp --tenant`` use the same one."""
    return f"{prefix}:t:{encode_id(tenant)}"


def validate_id(value: object, what: str = "conversation id") -> str:
    """Return ``value`` if it is a usable id, else raise InvalidConversationId naming it."""
    if not isinstance(value, str):
        raise InvalidConversationId(f"{what} must be a string", field=what)
    if not value:
        raise InvalidConversationId(f"{what} must not be empty", field=what)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidConversationId(
            f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed "
            "(a fixed limit: ids are part of Redis key names; use a digest of a longer id, "
            "e.g. hashlib.sha256(id.encode()).hexdigest())",
            field=what,
        )
    for ch in value:
        code = ord(ch)
        if code < 32 or 127 <= code < 160:
            raise InvalidConversationId(
                f"{what} contains the control character U+{code:04X}; ids cannot hold control "
                "characters (a fixed rule: ids are part of key names and logs)",
                field=what,
            )
        if 0xD800 <= code < 0xE000:
            raise InvalidConversationId(
                f"{what} contains a lone UTF-16 surrogate (U+{code:04X}), which cannot be "
                "stored as UTF-8",
                field=what,
            )
    return value


def glob_escape(text: str) -> str:
    """Escape glob characters so ``text`` matches only itself in SCAN MATCH."""
    return "".join("\\" + ch if ch in _GLOB else ch for ch in text)


@dataclass(frozen=True, slots=True)
class ConversationKeys:
    stream: str
    meta: str
    ids: str
    tokens: str
    checkpoints: str
    data: str
    writes: str
    runs: str

    @property
    def all(self) -> tuple[str, str, str, str]:
        """The keys the store's own scripts take (KEYS[1..4])."""
        return (self.stream, self.meta, self.ids, self.tokens)

    @property
    def thread(self) -> tuple[str, str, str, str]:
        """The keys of a LangGraph thread's checkpoints (agent_memory.langgraph)."""
        return (self.checkpoints, self.data, self.writes, self.runs)


@dataclass(frozen=True, slots=True)
class KeySchema:
    """Key names under one prefix (the prefix is validated by Settings)."""

    prefix: str

    def conversation(self, conversation_id: str) -> ConversationKeys:
        base = f"{self.prefix}:c:{{{encode_id(conversation_id)}}}:"
        return ConversationKeys(*(base + kind for kind in ("s", "h", "i", "t", "k", "d", "w", "r")))

    @property
    def index_all(self) -> str:
        return f"{self.prefix}:x:all"

    def index_user(self, user_id: str) -> str:
        return f"{self.prefix}:x:u:{encode_id(user_id)}"

    def index_agent(self, agent_id: str) -> str:
        return f"{self.prefix}:x:a:{encode_id(agent_id)}"

    def index_pair(self, user_id: str, agent_id: str) -> str:
        return f"{self.prefix}:x:ua:{encode_id(user_id)}:{encode_id(agent_id)}"

    @property
    def ttl_marker(self) -> str:
        return f"{self.prefix}:x:ttl"

    @property
    def index_runs(self) -> str:
        return f"{self.prefix}:x:runs"

    @property
    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every key of this prefix and nothing else."""
        return glob_escape(self.prefix) + ":*"
