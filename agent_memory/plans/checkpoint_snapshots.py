"""The saver's private copies of a thread's messages (:class:`Snapshot`) and of the list it
last wrote or read (:class:`Remembered`): compared in bulk with what the next put sends,
rebuilt in bulk as new objects for a cached read (:mod:`.checkpoint_messages`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson
from langchain_core.messages import BaseMessage


def _empty_like(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """A new empty extras dict, or None when the model keeps none."""
    return None if extra is None else {}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A private copy of a message as it was written or read: its fields as JSON (``None``
    when they are not JSON-native: such a message never matches and is sent again) and a
    copy of the object for the rest of its state (class, fields set; extras deep-copied)."""

    fields: bytes | None
    template: BaseMessage

    @classmethod
    def of(cls, message: BaseMessage) -> Snapshot:
        try:
            fields: bytes | None = orjson.dumps(message.__dict__)
        except TypeError:
            fields = None
        template = message.__copy__()
        if template.__pydantic_extra__:  # shallow in __copy__: the caller's nested objects
            object.__setattr__(
                template, "__pydantic_extra__", copy.deepcopy(template.__pydantic_extra__)
            )
        return cls(fields, template)

    def matches(self, message: Any) -> bool:
        """Whether ``message`` is equal to this one, at any depth (one ``orjson.dumps``)."""
        template = self.template
        if type(message) is not type(template) or self.fields is None:
            return False
        if message.__pydantic_extra__ != template.__pydantic_extra__:
            return False
        try:
            return orjson.dumps(message.__dict__) == self.fields
        except TypeError:
            return False

    def message(self) -> BaseMessage:
        """A new message equal to this one, sharing nothing with it (a few microseconds,
        against the payload's decoding and validation)."""
        return self.rebuilt(orjson.loads(self.fields or b"{}"))

    def rebuilt(self, fields: dict[str, Any]) -> BaseMessage:
        """A new message of this one's class and state with ``fields`` (a fresh decoding of
        :attr:`fields`) as its ``__dict__``: what ``__copy__`` sets, without copying the
        template's ``__dict__`` only to replace it; extras and private state deep-copied."""
        template = self.template
        cls = type(template)
        out = cls.__new__(cls)
        extra = template.__pydantic_extra__
        private = getattr(template, "__pydantic_private__", None)
        setattr_ = object.__setattr__
        setattr_(out, "__dict__", fields)
        setattr_(out, "__pydantic_extra__", copy.deepcopy(extra) if extra else _empty_like(extra))
        setattr_(out, "__pydantic_fields_set__", set(template.__pydantic_fields_set__))
        setattr_(out, "__pydantic_private__", None if private is None else copy.deepcopy(private))
        return out


@dataclass(frozen=True, slots=True)
class Remembered:
    """A thread's remembered messages (snapshots) and their stream reference. ``joined``: the
    snapshots' fields as one JSON array (``None`` when one is not JSON-native), so a put
    compares the whole list with one ``orjson.dumps`` and a read decodes it with one
    ``orjson.loads``; ``types`` and ``extras``: each message's class and pydantic extras."""

    snapshots: list[Snapshot]
    ref: str
    joined: bytes | None
    types: list[type]
    extras: list[Any]

    @classmethod
    def of(cls, snapshots: list[Snapshot], ref: str) -> Remembered:
        fields = [s.fields for s in snapshots]
        joined = None if None in fields else b"[" + b",".join(fields) + b"]"  # type: ignore[arg-type]
        templates = [s.template for s in snapshots]
        return cls(
            snapshots,
            ref,
            joined,
            list(map(type, templates)),
            [t.__pydantic_extra__ for t in templates],
        )

    def extended_by(self, value: list[Any]) -> bool:
        """Whether ``value`` starts with these messages, equal at any depth (same classes,
        extras and fields' JSON: one ``orjson.dumps`` for the whole prefix)."""
        n = len(self.snapshots)
        head = value[:n]
        if len(head) < n:
            return False
        if self.joined is None:
            return all(old.matches(new) for old, new in zip(self.snapshots, head, strict=True))
        if list(map(type, head)) != self.types:
            return False
        if [m.__pydantic_extra__ for m in head] != self.extras:
            return False
        try:
            return orjson.dumps([m.__dict__ for m in head]) == self.joined
        except TypeError:
            return False

    def messages(self) -> list[BaseMessage]:
        """New messages equal to the snapshots, sharing nothing with them (one
        ``orjson.loads`` for all of them when they are JSON-native)."""
        if self.joined is None:
            return [snapshot.message() for snapshot in self.snapshots]
        decoded = orjson.loads(self.joined)
        return [s.rebuilt(f) for s, f in zip(self.snapshots, decoded, strict=True)]
