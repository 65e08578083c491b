"""One router per resource: health, conversations, messages, cache (admin), metrics."""
