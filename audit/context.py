"""Who and where of the current request, for audit events written deep inside services.

The request-id middleware fills these; Celery tasks and commands leave them empty, and the
audit record then says so (no request id, no IP).
"""

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


_current: ContextVar[RequestContext] = ContextVar("pim_request_context", default=RequestContext())  # noqa: B039 - frozen, immutable


def current() -> RequestContext:
    return _current.get()


def bind(context: RequestContext) -> Token[RequestContext]:
    """Make context current; returns the token to pass to reset()."""
    return _current.set(context)


def reset(token: Token[RequestContext]) -> None:
    _current.reset(token)
