"""Admin additions: API tokens with their expiry, so an administrator sees and revokes them (delete = revoke).

Importing medsyn_site.accounts here also connects its password-change receivers in every process (the admin
autodiscovers this module at start-up)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from medsyn_site.accounts import token_expires_at, token_is_expired


class ExpiringTokenAdmin(TokenAdmin):
    list_display = ("key", "user", "created", "expires_at", "expired")

    @admin.display(description=_("Expires"))
    def expires_at(self, token: TokenProxy):
        return token_expires_at(token)

    @admin.display(description=_("Expired"), boolean=True)
    def expired(self, token: TokenProxy) -> bool:
        return token_is_expired(token)


if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)
admin.site.register(TokenProxy, ExpiringTokenAdmin)
