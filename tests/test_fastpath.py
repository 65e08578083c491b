"""The read fast path (agent_memory.fastpath): a message built without validation is the
validated message in every respect, for every realistic shape; anything validation would change
is validated; and the guard turns the fast path off for classes it was not written for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_from_dict,
)
from pydantic import ValidationError, field_validator, model_validator

from agent_memory import codec, fastpath
from agent_memory.codec import (
    _CLASSES,
    _TEMPLATES,
    StoredMessage,
    decode_payload,
    encode_record,
    message_from_payload,
    record_from_langchain,
    record_to_langchain,
)

CORPUS = Path(__file__).parent.parent / "bench" / "corpus.jsonl"
CORPUS_MESSAGES = messages_from_dict(
    [orjson.loads(line) for line in CORPUS.read_text().splitlines()]
)


def validated(role: str, kwargs: dict[str, Any]) -> BaseMessage:
    return _CLASSES[role](**fastpath.copy_json(kwargs))


def fast(role: str, kwargs: dict[str, Any]) -> BaseMessage | None:
    return _TEMPLATES[role].build(fastpath.copy_json(kwargs))


def arguments(message: BaseMessage) -> tuple[str, dict[str, Any]]:
    """The constructor arguments the codec derives from the message's stored record."""
    rec = decode_payload(encode_record(record_from_langchain(message), 10_000_000))
    role = rec["role"]
    return role, codec._constructor_arguments(role, rec)


def test_the_fast_path_is_on_for_every_role_with_the_installed_packages() -> None:
    assert set(_TEMPLATES) == set(_CLASSES)


@pytest.mark.parametrize("index", range(len(CORPUS_MESSAGES)))
def test_every_corpus_message_is_built_fast_and_equals_the_validated_one(index: int) -> None:
    message = CORPUS_MESSAGES[index]
    role, kwargs = arguments(message)
    built = fast(role, kwargs)
    assert built is not None, f"corpus message {index} ({role}, {sorted(kwargs)}) fell back"
    slow = validated(role, kwargs)
    assert fastpath.same(built, slow)
    assert list(built.__dict__) == list(slow.__dict__)  # declaration order too
    back = message_from_payload(encode_record(record_from_langchain(message), 10_000_000))
    assert fastpath.same(back, slow)
    assert back == message
    assert type(back) is type(message)


# -- hypothesis: shapes the fast path takes and shapes it must leave to validation -------------
text = st.text(max_size=8)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
loose = json_value | st.integers() | st.floats(allow_nan=False)  # often a wrong type
count = st.integers(min_value=0, max_value=2**70) | st.booleans() | st.floats(0, 10)
block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("reasoning"), "reasoning": text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": text})}
    ),
    text,
    st.integers(),  # validation refuses (or for tools, stringifies) a non-block item
)
content = text | st.lists(block, max_size=3)
details = st.dictionaries(
    st.sampled_from(["audio", "cache_creation", "cache_read", "reasoning", "x"]), count, max_size=4
)
counts = st.fixed_dictionaries(
    dict.fromkeys(("input_tokens", "output_tokens", "total_tokens"), st.integers(0, 2**40)),
    optional={"input_token_details": details, "output_token_details": details},
)
usage = (
    st.none()
    | counts
    | st.dictionaries(
        st.sampled_from(
            [
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "input_token_details",
                "output_token_details",
                "extra",
            ]
        ),
        count | details,
        max_size=6,
    )
)
call = st.fixed_dictionaries(
    {"name": text, "args": st.dictionaries(text, json_value, max_size=2), "id": st.none() | text},
    optional={"type": st.just("tool_call") | text, "extras": json_value},
) | st.dictionaries(  # often not a call validation accepts
    st.sampled_from(["name", "args", "id", "type", "extras", "index"]),
    text | st.dictionaries(text, json_value, max_size=2) | st.none() | st.integers(),
    max_size=5,
)
invalid_call = st.dictionaries(
    st.sampled_from(["name", "args", "id", "error", "type", "index"]),
    text | st.none() | st.integers(),
    max_size=5,
)
common: dict[str, st.SearchStrategy[Any]] = {
    "content": content,
    "id": st.none() | text | st.integers(),
    "name": st.none() | text,
    "additional_kwargs": st.dictionaries(text, json_value, max_size=2)
    | st.just(
        {
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]
        }
    ),
    "response_metadata": st.dictionaries(text, json_value, max_size=2) | st.integers(),
    "output_version": st.just("v1"),  # not a field: an extra
}
by_role: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "user": common,
    "system": common,
    "assistant": common
    | {
        "type": st.just("ai"),  # a Literal: never given by the codec
        "tool_calls": st.lists(call, max_size=2),
        "invalid_tool_calls": st.lists(invalid_call, max_size=2),
        "usage_metadata": usage,
    },
    "tool": common
    | {
        "tool_call_id": text | st.integers(),
        "status": st.sampled_from(["success", "error", "other"]),
        "artifact": json_value,
    },
    "function": common | {"name": text | st.none()},
    "chat": common | {"role": text | st.integers()},
}


@st.composite
def shapes(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    role = draw(st.sampled_from(sorted(by_role)))
    fields = by_role[role]
    names = draw(st.sets(st.sampled_from(sorted(fields))))
    order = draw(st.permutations(sorted(names | {"content"})))  # each order is its own shape
    kwargs = {name: draw(fields[name]) for name in order}
    if role == "tool":
        kwargs.setdefault("tool_call_id", "c")
    return role, kwargs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes())
def test_a_message_built_fast_is_the_validated_one_and_anything_else_falls_back(
    shape: tuple[str, dict[str, Any]],
) -> None:
    role, kwargs = shape
    built = fast(role, kwargs)
    try:
        slow = validated(role, kwargs)
    except (ValidationError, TypeError, ValueError):
        assert built is None, "validation refuses what the fast path built"
        return
    if built is not None:
        assert fastpath.same(built, slow), (built.__dict__, slow.__dict__)


@pytest.mark.parametrize(
    ("role", "kwargs"),
    [
        (
            "assistant",
            {
                "content": "",
                "usage_metadata": {"input_tokens": 1.0, "output_tokens": 1, "total_tokens": 2},
            },
        ),
        (
            "assistant",
            {
                "content": "",
                "usage_metadata": {"input_tokens": True, "output_tokens": 1, "total_tokens": 2},
            },
        ),
        (
            "assistant",
            {
                "content": "",
                "additional_kwargs": {
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
                },
            },
        ),
        (
            "assistant",
            {"content": "", "tool_calls": [{"name": "f", "args": {}, "id": "c", "index": 0}]},
        ),
        ("user", {"content": "x", "id": 7}),
        ("user", {"content": "x", "content_blocks": []}),
        ("tool", {"content": "x", "tool_call_id": 5}),
        ("tool", {"content": [1], "tool_call_id": "c"}),
    ],
    ids=[
        "float-count",
        "bool-count",
        "openai-tool-calls",
        "call-extra-key",
        "int-id",
        "content_blocks",
        "int-tool-call-id",
        "int-block",
    ],
)
def test_values_validation_would_change_are_left_to_validation(
    role: str, kwargs: dict[str, Any]
) -> None:
    assert fast(role, kwargs) is None
    rec = {"role": role, **{k: v for k, v in kwargs.items() if k != "content_blocks"}}
    if "content_blocks" not in kwargs:  # and the codec's read of such a record is validation's
        try:
            slow = validated(role, {k: v for k, v in kwargs.items()})
        except (ValidationError, TypeError):
            return
        back = codec._owned_to_langchain(fastpath.copy_json(rec))
        assert fastpath.same(back, slow)


# -- no shared mutable values ------------------------------------------------------------------
def _mutables(value: Any) -> list[int]:
    out: list[int] = []
    if type(value) in (dict, list):
        out.append(id(value))
        for item in value.values() if type(value) is dict else value:
            out.extend(_mutables(item))
    return out


@pytest.mark.parametrize(
    "index", [i for i, m in enumerate(CORPUS_MESSAGES) if not isinstance(m.content, str)][:5]
)
def test_messages_read_from_one_record_share_no_mutable_value(index: int) -> None:
    rec = record_from_langchain(CORPUS_MESSAGES[index])
    stored = StoredMessage("1-0", decode_payload(encode_record(rec, 10_000_000)))
    before = orjson.dumps(stored.record)
    first, second = stored.to_langchain(), record_to_langchain(stored.record)
    ids_first = set(_mutables(first.__dict__))
    assert not ids_first & set(_mutables(second.__dict__))
    assert not ids_first & set(_mutables(stored.record))
    first.content[0]["text"] = "changed"  # type: ignore[index]
    first.response_metadata["changed"] = True
    assert orjson.dumps(stored.record) == before
    assert second == stored.to_langchain()


# -- the guard ---------------------------------------------------------------------------------
def test_a_class_with_a_validator_the_fast_path_does_not_know_is_validated() -> None:
    class Checked(HumanMessage):
        @model_validator(mode="before")
        @classmethod
        def shout(cls, values: dict[str, Any]) -> dict[str, Any]:
            return {**values, "content": str(values["content"]).upper()}

    assert fastpath.template(Checked) is None
    assert fastpath.templates({"user": Checked}) == {}


def test_a_class_with_a_field_validator_or_an_unknown_annotation_is_validated() -> None:
    class Stripped(HumanMessage):
        @field_validator("name")
        @classmethod
        def strip(cls, value: str | None) -> str | None:
            return value.strip() if value else value

    class Scored(AIMessage):
        score: float = 0.0

    assert fastpath.template(Stripped) is None
    assert fastpath.template(Scored) is None
    assert fastpath.template(ToolMessage) is not None


def test_changed_tool_call_or_usage_shapes_turn_the_fast_path_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typed, expected = fastpath._SHAPES[1]
    changed = ((typed, {**expected, "input_tokens": "<class 'float'>"}), *fastpath._SHAPES[2:])
    monkeypatch.setattr(fastpath, "_SHAPES", (fastpath._SHAPES[0], *changed))
    assert fastpath.templates(_CLASSES) == {}


def test_a_template_whose_sample_differs_from_validation_is_dropped_at_import() -> None:
    good = fastpath.templates(_CLASSES)
    broken = good["user"]
    wrong = fastpath.Template(
        broken.cls,
        broken.checks,
        {**broken.defaults, "name": "not the default"},
        broken.factories,
        broken.required,
        broken.conditions,
    )
    kept = fastpath.self_check({"user": wrong, "system": good["system"]}, codec._SAMPLES)
    assert set(kept) == {"system"}


def test_a_class_with_its_own_constructor_is_validated() -> None:
    class Prefixed(HumanMessage):
        def __init__(self, content: str, **kwargs: Any) -> None:
            super().__init__(content=f"> {content}", **kwargs)

    assert fastpath.template(Prefixed) is None
    assert fastpath.template(HumanMessage) is not None


def test_a_class_redefining_a_pydantic_state_slot_is_validated() -> None:
    class Slotted(HumanMessage):
        pass

    assert fastpath.template(Slotted) is not None
    # an attribute that would win over BaseModel's slot of the same name
    type.__setattr__(Slotted, "__pydantic_private__", property(lambda self: None))
    assert fastpath.template(Slotted) is None


def test_pydantic_state_kept_other_than_in_slots_turns_the_fast_path_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath, "_SLOTS", (*fastpath._SLOTS, "__pydantic_other__"))
    assert fastpath.templates(_CLASSES) == {}


def test_messages_read_through_the_fast_path_are_built_without_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path is taken for every corpus message (validation is never called)."""
    calls: list[str] = []
    for cls in set(_CLASSES.values()):
        original = cls.__init__

        def counting(self: Any, *args: Any, _o: Any = original, **kwargs: Any) -> None:
            calls.append(type(self).__name__)
            _o(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    payloads = [encode_record(record_from_langchain(m), 10_000_000) for m in CORPUS_MESSAGES]
    read = [message_from_payload(p) for p in payloads]
    assert calls == []
    assert read == CORPUS_MESSAGES


def test_usage_in_another_key_order_is_reordered_as_validation_does() -> None:
    """Validation rebuilds usage (a TypedDict) with its declared keys first, in order; a
    foreign writer's (or Anthropic's) order is reordered the same way, not kept."""
    kwargs = {
        "content": "",
        "usage_metadata": {
            "output_token_details": {"reasoning": 1, "audio": 0},
            "total_tokens": 9,
            "input_token_details": {"x": 7, "cache_read": 3, "cache_creation": 1},
            "output_tokens": 4,
            "input_tokens": 5,
        },
    }
    built, slow = fast("assistant", kwargs), validated("assistant", kwargs)
    assert isinstance(built, AIMessage)
    assert isinstance(slow, AIMessage)
    assert fastpath.same(built, slow)
    usage, validated_usage = built.usage_metadata, slow.usage_metadata
    assert usage is not None
    assert validated_usage is not None
    assert list(usage) == list(validated_usage) == list(fastpath._USAGE_ORDER)
    assert list(usage["input_token_details"]) == ["cache_creation", "cache_read", "x"]


def test_same_tells_key_order_and_exact_types_apart() -> None:
    a = AIMessage(content="", response_metadata={"a": 1, "b": 2})
    b = AIMessage(content="", response_metadata={"b": 2, "a": 1})
    c = AIMessage(content="", response_metadata={"a": 1.0, "b": 2})
    assert a == b == c
    assert not fastpath.same(a, b)
    assert not fastpath.same(a, c)
    assert fastpath.same(a, AIMessage(content="", response_metadata={"a": 1, "b": 2}))


def test_each_key_order_is_built_as_validation_builds_it_extras_in_their_order() -> None:
    """build() derives what to do from the sequence of names given (cached per sequence): the
    same arguments in any order build the validated message, extras in the order given."""
    base = {"content": "x", "id": "i", "name": "n", "zeta": 1, "alpha": [2]}
    orders = [list(base), list(reversed(base)), ["alpha", "content", "zeta", "id", "name"]]
    for order in orders:
        kwargs = {name: base[name] for name in order}
        for _ in range(2):  # derived, then cached
            built = fast("user", kwargs)
            assert built is not None
            assert fastpath.same(built, validated("user", kwargs))
            assert list(built.__pydantic_extra__ or {}) == [
                n for n in order if n in ("zeta", "alpha")
            ]
    assert tuple(orders[0]) in _TEMPLATES["user"].shapes


def test_shapes_beyond_the_cache_are_still_built_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    template = fastpath.templates(_CLASSES)["tool"]  # a fresh template, its cache empty
    monkeypatch.setattr(fastpath, "_SHAPES_CACHED", 4)
    for i in range(10):
        kwargs = {"content": "x", "tool_call_id": "c", f"extra_{i}": i}
        built = template.build(fastpath.copy_json(kwargs))
        assert built is not None
        assert fastpath.same(built, validated("tool", kwargs))
    assert len(template.shapes) == 4
    # names validation must decide (a reserved one, a missing field) are left to it, cached or not
    assert template.build({"content": "x", "tool_call_id": "c", "type": "tool"}) is None
    assert template.build({"content": "x"}) is None
