"""The read fast path: LangChain messages built from stored records without re-validating them.

Reading a history is dominated by pydantic validation of messages that were validated when they
were written. :func:`build` assembles the message the way ``model_construct`` does (fields in
declaration order, defaults from their factories, extras in ``__pydantic_extra__``) when every
value given is one that validation would keep as it is: exact JSON types, the tool-call and
usage shapes that langchain-core's validators produce, no alias and no coercion. Anything else
(a float where an int is expected, OpenAI tool calls only in ``additional_kwargs``, an unknown
key in a tool call, a field this module has no rule for) returns None and the caller validates.

The rules are chosen by each field's *annotation* and each class's *validators*, read from the
installed classes at import. A class gets no template (its messages are validated) when the
installed pydantic or langchain-core differs from what these rules were written for: an
annotation without a rule, a validator, post-init hook or private attribute this module does not
know, a different tool-call or usage shape, or a sample that does not build equal to its
validated twin (:func:`self_check`, run once at import by :mod:`agent_memory.codec`).
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

import pydantic
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import ToolCall

log = logging.getLogger("agent_memory.fastpath")

_NO: Any = object()  # a checker's answer: validation would change (or refuse) this value
Checker = Callable[[Any], Any]


# -- one checker per annotation: the value as validation would leave it, or _NO -------------------
def _content(value: Any) -> Any:
    if type(value) is str:
        return value
    if type(value) is not list:
        return _NO
    for item in value:
        if type(item) is not str and type(item) is not dict:
            return _NO
    return value


def _dict(value: Any) -> Any:
    return value if type(value) is dict else _NO


def _str(value: Any) -> Any:
    return value if type(value) is str else _NO


def _optional_str(value: Any) -> Any:
    return value if value is None or type(value) is str else _NO


def _anything(value: Any) -> Any:
    return value


def _status(value: Any) -> Any:
    return value if value == "success" or value == "error" else _NO


_CALL_KEYS = frozenset({"name", "args", "id", "type", "extras"})  # type and extras are dropped


def _tool_calls(value: Any) -> Any:
    """AIMessage's validator rebuilds every call as ``{name, args, id, type: "tool_call"}``."""
    if type(value) is not list:
        return _NO
    out = []
    for call in value:
        if (
            type(call) is not dict
            or not call.keys() <= _CALL_KEYS
            or type(call.get("name")) is not str
            or type(call.get("args")) is not dict
            or "id" not in call
            or (call["id"] is not None and type(call["id"]) is not str)
        ):
            return _NO
        out.append(
            {"name": call["name"], "args": call["args"], "id": call["id"], "type": "tool_call"}
        )
    return out


_INVALID_KEYS = ("name", "args", "id", "error")


def _invalid_tool_calls(value: Any) -> Any:
    """... and every invalid call as ``{type, id, name, args, error}`` (missing ones None)."""
    if type(value) is not list:
        return _NO
    out = []
    for call in value:
        if type(call) is not dict or not call.keys() <= _INVALID_ALLOWED:
            return _NO
        for name in _INVALID_KEYS:
            item = call.get(name)
            if item is not None and type(item) is not str:
                return _NO
        out.append(
            {
                "type": "invalid_tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "args": call.get("args"),
                "error": call.get("error"),
            }
        )
    return out


_INVALID_ALLOWED = frozenset({*_INVALID_KEYS, "type"})
_USAGE_COUNTS = ("input_tokens", "output_tokens", "total_tokens")
# Validation rebuilds a TypedDict with its declared keys first, in declaration order, then any
# other keys as given: the declared order of every key of the usage shapes (see _SHAPES).
_USAGE_ORDER = (*_USAGE_COUNTS, "input_token_details", "output_token_details")
_DETAILS_ORDER = {
    "input_token_details": ("audio", "cache_creation", "cache_read"),
    "output_token_details": ("audio", "reasoning"),
}


def _in_order(names: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    """Every ordered selection of ``names`` (the key sequences validation leaves as they are)."""
    out: set[tuple[str, ...]] = {()}
    for name in names:
        out |= {(*seq, name) for seq in out}
    return frozenset(out)


_USAGE_KEPT = frozenset(seq for seq in _in_order(_USAGE_ORDER) if seq[:3] == _USAGE_COUNTS)
_USAGE_NAMES = frozenset(_USAGE_ORDER)
_DETAILS_KEPT = {name: _in_order(order) for name, order in _DETAILS_ORDER.items()}
# Each kept usage order -> its details (after the three counts), each with its kept key orders.
_USAGE_DETAILS = {
    seq: tuple((name, _DETAILS_KEPT[name]) for name in seq[3:]) for seq in _USAGE_KEPT
}


def _usage(value: Any) -> Any:
    """Token counts that are ints, details whose every value is an int, no other key; in the
    order validation gives them (declared keys first), reordered like validation if not."""
    if value is None:
        return value
    if type(value) is not dict:
        return _NO
    details = _USAGE_DETAILS.get(tuple(value))  # the details of a kept order, after the counts
    if details is None:
        value, details = _usage_reordered(value)
    if (
        type(value.get("input_tokens")) is not int
        or type(value.get("output_tokens")) is not int
        or type(value.get("total_tokens")) is not int
    ):
        return _NO
    for name, kept in details:
        counts = value[name]
        if type(counts) is not dict:
            return _NO
        for count in counts.values():
            if type(count) is not int:
                return _NO
        if tuple(counts) not in kept:
            value[name] = _declared_first(counts, _DETAILS_ORDER[name])
    return value


def _usage_reordered(value: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Usage in another key order, reordered as validation does, and its details (an
    unknown key: a value no count check passes, so validation decides)."""
    if not _USAGE_NAMES.issuperset(value):
        return {}, ()
    value = _declared_first(value, _USAGE_ORDER)
    return value, tuple((name, _DETAILS_KEPT[name]) for name in tuple(value)[3:])


def _declared_first(value: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as validation rebuilds a TypedDict: its declared keys in order, then the rest."""
    out = {name: value[name] for name in order if name in value}
    for name, item in value.items():
        if name not in out:
            out[name] = item
    return out


_CHECKERS: dict[str, Checker] = {
    "str | list[str | dict[typing.Any, typing.Any]]": _content,
    "dict[typing.Any, typing.Any]": _dict,
    "<class 'str'>": _str,
    "str | None": _optional_str,
    "typing.Any": _anything,
    "typing.Literal['success', 'error']": _status,
    "list[langchain_core.messages.tool.ToolCall]": _tool_calls,
    "list[langchain_core.messages.content.InvalidToolCall]": _invalid_tool_calls,
    "langchain_core.messages.ai.UsageMetadata | None": _usage,
}
# The types each checker returns as they are, unchecked further: build() keeps a value of one of
# them without calling its checker (the other checkers are called for every value).
_KEPT: dict[Checker, tuple[type, ...]] = {
    _content: (str,),
    _dict: (dict,),
    _str: (str,),
    _optional_str: (str, type(None)),
}
# Field metadata the checkers account for (ids: numbers would become strings; ours accept str).
_KNOWN_METADATA = {"[_PydanticGeneralMetadata(coerce_numbers_to_str=True)]", "[]"}


def _ai_compat(given: Mapping[str, Any]) -> bool:
    """AIMessage's ``_backwards_compat_tool_calls``: with no tool calls given, it parses OpenAI
    tool calls out of ``additional_kwargs`` (that case is left to validation)."""
    if given.get("tool_calls") or given.get("invalid_tool_calls"):
        return True
    extra = given.get("additional_kwargs")
    return not (type(extra) is dict and extra.get("tool_calls"))


# model validators this module knows: what must hold of the given values for the validator to
# change nothing the checkers do not already account for.
_VALIDATORS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "_backwards_compat_tool_calls": _ai_compat,
    "coerce_args": lambda given: True,  # ToolMessage: content list copied, tool_call_id str
}
# Keys that are not fields but that a constructor or validator treats specially.
_RESERVED = frozenset({"type", "content_blocks", "tool_call_chunks"})

_AI = "langchain_core.messages.ai"
# The TypedDict shapes the tool-call and usage checkers were written for.
_SHAPES: tuple[tuple[type, dict[str, str]], ...] = (
    (
        ToolCall,
        {
            "name": "<class 'str'>",
            "args": "dict[str, typing.Any]",
            "id": "str | None",
            "type": "typing.NotRequired[typing.Literal['tool_call']]",
        },
    ),
    (
        UsageMetadata,
        {
            "input_tokens": "<class 'int'>",
            "output_tokens": "<class 'int'>",
            "total_tokens": "<class 'int'>",
            "input_token_details": f"typing.NotRequired[{_AI}.InputTokenDetails]",
            "output_token_details": f"typing.NotRequired[{_AI}.OutputTokenDetails]",
        },
    ),
    (InputTokenDetails, dict.fromkeys(("audio", "cache_creation", "cache_read"), "<class 'int'>")),
    (OutputTokenDetails, dict.fromkeys(("audio", "reasoning"), "<class 'int'>")),
)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What :meth:`Template.build` does with constructor arguments of one key sequence."""

    checks: tuple[tuple[str, tuple[type, ...], Checker], ...]
    """each field given, in the order given: (name, the types kept as they are, checker)"""
    extras: tuple[str, ...]  # the names given that are not fields (in order)
    missing: tuple[tuple[str, Callable[[], Any]], ...]  # default factories of fields not given
    names: frozenset[str]  # every name given: the message's fields set


_SHAPES_CACHED = 256
_UNSEEN: Any = object()


@dataclass(frozen=True, slots=True)
class Template:
    """How to build one message class: its fields' checkers and defaults, in declaration order."""

    cls: type[BaseMessage]
    checks: dict[str, Checker]
    defaults: dict[str, Any]  # every field, in order; required ones as None placeholders
    factories: tuple[tuple[str, Callable[[], Any]], ...]
    required: frozenset[str]
    conditions: tuple[Callable[[Mapping[str, Any]], bool], ...]
    shapes: dict[tuple[str, ...], _Shape | None] = dataclasses.field(
        default_factory=dict, compare=False
    )
    """what was derived from each key sequence given so far (a few: one per writer's shape)"""

    def build(self, given: dict[str, Any]) -> BaseMessage | None:
        """The message of the constructor arguments ``given`` (which become its values: the
        caller owns them), or None if validation could change any of them."""
        for condition in self.conditions:
            if not condition(given):
                return None
        keys = tuple(given)
        shape = self.shapes.get(keys, _UNSEEN)
        if shape is _UNSEEN:
            shape = self._shape(keys)
        if shape is None:
            return None
        values = self.defaults.copy()
        for name, kept, check in shape.checks:
            value = given[name]
            if type(value) not in kept:  # else the checker would return it as it is
                value = check(value)
                if value is _NO:
                    return None
            values[name] = value
        for name, factory in shape.missing:
            values[name] = factory()
        message: BaseMessage = _new(self.cls)
        _set_dict(message, values)
        _set_fields_set(message, set(shape.names))
        _set_extra(message, {name: given[name] for name in shape.extras} if shape.extras else {})
        _set_private(message, None)
        return message

    def _shape(self, keys: tuple[str, ...]) -> _Shape | None:
        """What building from arguments named ``keys`` takes (None: validation decides, as a
        required field is missing or a name is reserved or a field without a checker)."""
        shape: _Shape | None = None
        if self.required.issubset(keys):
            checks = []
            extras = []
            for name in keys:
                check = self.checks.get(name)
                if check is not None:
                    checks.append((name, _KEPT.get(check, ()), check))
                elif name in self.defaults or name in _RESERVED:
                    break
                else:
                    extras.append(name)
            else:
                missing = tuple((n, f) for n, f in self.factories if n not in keys)
                shape = _Shape(tuple(checks), tuple(extras), missing, frozenset(keys))
        if len(self.shapes) < _SHAPES_CACHED:
            self.shapes[keys] = shape
        return shape


_new = object.__new__
# BaseModel keeps an instance's state in four slots; their descriptors' setters are what
# object.__setattr__ calls, without its lookup (the guard checks they are plain slots).
_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_SLOT_TYPES = (types.MemberDescriptorType, types.GetSetDescriptorType)


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    descriptor = vars(pydantic.BaseModel).get(name)
    if type(descriptor) in _SLOT_TYPES:
        return descriptor.__set__  # type: ignore[union-attr,no-any-return]
    return lambda obj, value: object.__setattr__(obj, name, value)


def _slots_known() -> bool:
    base = vars(pydantic.BaseModel)
    return set(pydantic.BaseModel.__slots__) == set(_SLOTS) and all(
        type(base.get(name)) in _SLOT_TYPES for name in _SLOTS
    )


_set_dict, _set_fields_set, _set_extra, _set_private = map(_slot_setter, _SLOTS)


def _redefines_slots(cls: type) -> bool:
    """Whether a class before BaseModel in ``cls``'s MRO (whose attributes win over
    BaseModel's) defines one of BaseModel's state slots."""
    mro = cls.__mro__
    before = mro[: mro.index(pydantic.BaseModel)] if pydantic.BaseModel in mro else mro
    return any(name in vars(k) for k in before for name in _SLOTS)


# The constructors these rules were written for: each passes ``content`` (or, with
# ``content_blocks``, a reserved key here, the blocks) and every other argument on to validation.
_INITS = frozenset(
    {
        ("langchain_core.messages.ai", "AIMessage.__init__"),
        ("langchain_core.messages.base", "BaseMessage.__init__"),
        ("langchain_core.messages.human", "HumanMessage.__init__"),
        ("langchain_core.messages.system", "SystemMessage.__init__"),
        ("langchain_core.messages.tool", "ToolMessage.__init__"),
        ("langchain_core.load.serializable", "Serializable.__init__"),
        ("pydantic.main", "BaseModel.__init__"),
    }
)


def _unknown_init(cls: type) -> bool:
    """Whether a class in ``cls``'s MRO has an ``__init__`` these rules do not know."""
    for k in cls.__mro__[:-1]:  # object's own __init__ last
        init = vars(k).get("__init__")
        if init is not None and (init.__module__, init.__qualname__) not in _INITS:
            return True
    return False


def template(cls: type[BaseMessage]) -> Template | None:
    """The template of ``cls``, or None when any of its fields or validators has no rule."""
    decorators = cls.__pydantic_decorators__
    if (
        cls.__pydantic_post_init__ is not None
        or _redefines_slots(cls)
        or _unknown_init(cls)
        or cls.__private_attributes__
        or cls.model_config.get("extra") != "allow"
        or decorators.field_validators
        or decorators.root_validators
        or decorators.validators
        or not set(decorators.model_validators).issubset(_VALIDATORS)
    ):
        return None
    checks: dict[str, Checker] = {}
    defaults: dict[str, Any] = {}
    factories = []
    required = set()
    for name, field in cls.model_fields.items():
        if field.alias or field.validation_alias or str(field.metadata) not in _KNOWN_METADATA:
            return None
        if field.default_factory is not None:
            factories.append((name, field.default_factory))
        elif field.is_required():
            required.add(name)
        defaults[name] = None if field.is_required() else field.default
        if name == "type":  # a Literal with its default: never given
            continue
        check = _CHECKERS.get(str(field.annotation))
        if check is None:
            return None
        checks[name] = check
    conditions = tuple(_VALIDATORS[name] for name in decorators.model_validators)
    return Template(cls, checks, defaults, tuple(factories), frozenset(required), conditions)  # type: ignore[arg-type]


def _shapes_known() -> bool:
    for typed, expected in _SHAPES:
        hints = {name: str(hint) for name, hint in get_type_hints(typed).items()}
        raw = {name: str(hint) for name, hint in typed.__annotations__.items()}
        if raw != expected and hints != expected:
            return False
    return pydantic.VERSION.startswith("2.") and _slots_known()


def templates(classes: Mapping[str, type[BaseMessage]]) -> dict[str, Template]:
    """The templates of the classes that have one (none if the shapes differ)."""
    if not _shapes_known():
        log.info("read fast path off: langchain-core's tool-call or usage shapes have changed")
        return {}
    out = {}
    for role, cls in classes.items():
        made = template(cls)
        if made is None:
            log.info("read fast path off for %s: a field or validator without a rule", cls)
        else:
            out[role] = made
    return out


def self_check(
    found: dict[str, Template], samples: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Template]:
    """``found`` without the templates whose samples do not build equal to the validated
    message (same ``__dict__``, fields set and extras): the guard run once at import."""
    out = {}
    for role, made in found.items():
        ok = True
        for sample in samples.get(role, ()):
            fast = made.build(_copy(sample))
            slow = made.cls(**_copy(sample))
            if fast is None or not same(fast, slow):
                ok = False
        if ok:
            out[role] = made
        else:
            log.warning("read fast path off for %s: a sample differs from validation", made.cls)
    return out


def same(a: BaseMessage, b: BaseMessage) -> bool:
    """Equal in class, fields (in order, dict keys at every depth in order too), fields set,
    extras and private state."""
    return (
        type(a) is type(b)
        and a == b
        and _ordered(a.__dict__) == _ordered(b.__dict__)
        and a.model_fields_set == b.model_fields_set
        and _ordered(a.__pydantic_extra__) == _ordered(b.__pydantic_extra__)
        and a.__pydantic_private__ == b.__pydantic_private__
    )


def _ordered(value: Any) -> Any:
    """``value`` with every dict as its list of items (so that key order counts in ``==``),
    and every value tagged with its exact type (so that ``1 == 1.0 == True`` do not)."""
    if type(value) is dict:
        return [(key, _ordered(item)) for key, item in value.items()]
    if type(value) is list:
        return ("list", [_ordered(item) for item in value])
    return (type(value).__name__, value)


def _copy(value: Any) -> Any:
    """A copy of a JSON value (dicts and lists copied at every depth; the rest is immutable)."""
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value


copy_json = _copy
