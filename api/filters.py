"""The audit log's search as the API offers it: the explorer's own FilterSet (audit.filters)."""

from audit.filters import AuditEventFilterSet


class ApiAuditEventFilterSet(AuditEventFilterSet):
    """The same filters, read as a query: a date-time, role or outcome sent blank is refused,
    a role is given by its id, and an unknown username, a role id that names no role or a
    range that ends before it starts matches no event (the explorer explains those to the
    person who typed them)."""

    query = True
