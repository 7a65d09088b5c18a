"""Admin additions: API tokens with their expiry, so an administrator sees and revokes them (delete = revoke); the
read-only admin of every row that changes only through the product's audited actions (AuditedModelAdmin), and the
audit trail itself.

Importing medsyn_site.accounts here also connects its password-change receivers in every process (the admin
autodiscovers this module at start-up)."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from medsyn_site.accounts import token_expires_at, token_is_expired
from medsyn_site.core.audit import audit_action_label, audit_change
from medsyn_site.core.models import AuditRecord


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


class AuditedModelAdmin(admin.ModelAdmin):
    """Rows whose changes go only through the product's audited actions (the do_* services, which write the audit
    record in the same transaction): Django admin lists, searches and shows them, and adds, changes and deletes none.
    A change form is shown read-only (its foreign keys as links, never a select of every row) and a POST to it is
    refused (403), so no state, text, flag or override changes without its audit record."""

    show_full_result_count = False  # no second COUNT(*) over every note on each filtered list page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class AuditedInline(admin.TabularInline):
    """AuditedModelAdmin's rule for rows shown inside another's page."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(AuditRecord)
class AuditRecordAdmin(AuditedModelAdmin):
    """The audit trail: written by the actions it records, never by hand."""

    list_display = ["created_at", "actor", "action_label", "object_type", "object_id", "change", "reason"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "reason", "actor__username"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"

    @admin.display(description=_("Action"), ordering="action")
    def action_label(self, record: AuditRecord) -> str:
        return audit_action_label(record.action)

    @admin.display(description=_("Change of state"))
    def change(self, record: AuditRecord) -> str:
        return audit_change(record.from_state, record.to_state)
