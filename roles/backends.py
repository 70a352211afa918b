class PortalRoleBackend:
    """Placeholder, replaced below."""

    def authenticate(self, request, **kwargs):
        return None
