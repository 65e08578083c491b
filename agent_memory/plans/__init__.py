"""The sans-IO core, one module per resource; :class:`agent_memory.core.StoreCore` composes them.

Every store operation is a *plan* (the protocol is in :mod:`agent_memory.plan`): a generator
method of a resource mixin that yields batches of :class:`~agent_memory.plan.Call` and receives
their replies. The rules every plan keeps:

- A plan **may** validate input (with :mod:`agent_memory.rules`), build keys (through the
  context's :meth:`~agent_memory.plans.context.PlanContext.conversation_keys`), encode and
  decode messages (:mod:`agent_memory.codec`), read replies (only through
  :mod:`agent_memory.replies`), run scripts (:mod:`agent_memory.scripts`), raise the errors of
  :mod:`agent_memory.errors`, and ``yield from`` other plans.
- A plan **may not** do I/O, read the environment or the clock for anything but ids, import
  redis-py (hash slots come from the context's ``key_slot``; NOSCRIPT, refusals, retries and
  cluster routing are the drivers'), keep state between calls beyond the context's key cache,
  or depend on which driver (sync or async) runs it.
- One batch is one round trip; every key a plan writes gets a TTL in the same atomic step.
  After a script call, a batch holds only reads or writes that are safe to repeat (see
  :class:`~agent_memory.plan.Call`: NOSCRIPT recovery resends them).
- An operation's annotations resolve at run time (no TYPE_CHECKING-only names): the stores
  copy its signature, with ``Plan[T]`` shown as ``T``.

Modules: :mod:`.context` (config, key cache, script keys, cluster index updates),
:mod:`.messages`, :mod:`.conversations`, :mod:`.listing`, :mod:`.admin`, :mod:`.transfer`,
:mod:`.peers` (the import of the peers' histories).
"""
