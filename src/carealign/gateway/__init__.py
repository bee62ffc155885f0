"""The gateway: the assistant in service behind an OpenAI-compatible API, watched, guarded and
feeding the next alignment cycle.

``carealign gateway serve`` puts a policy (any model spec, or an alignment run directory's promoted
policy) behind ``/v1/chat/completions``. Every exchange is stored durably in the review database
before its response leaves (:mod:`~carealign.gateway.models`, :mod:`~carealign.gateway.exchanges`);
its prompt's harm level is estimated and its response judged off the request path through a
persisted queue (:mod:`~carealign.gateway.worker`) or, in guard mode, before the response leaves
(:mod:`~carealign.gateway.guard`); risky exchanges become review items (:mod:`~carealign.gateway.routing`);
the logged traffic becomes the next cycle's training prompts (:mod:`~carealign.gateway.export`).

The pieces: ``keys`` (API keys and rate limits), ``redact``, ``serving`` (the policy being served and
its reload), ``app`` (the FastAPI app), ``stats`` and ``web`` (figures and the review app's admin page).
Importing this package loads none of them.
"""
