"""One decorator for a page that needs a permission: anonymous users go to the login page, logged-in users without
the permission get 403 (not a login loop)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required, permission_required


def permission_view(permission: str) -> Callable[[Callable], Callable]:
    def decorate(view: Callable) -> Callable:
        return login_required(permission_required(permission, raise_exception=True)(view))

    return decorate
