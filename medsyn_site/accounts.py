"""API tokens that expire and rotate, and the profile page where a user sees, revokes or renews theirs.

A token (DRF's authtoken, one per user) stops working when:
- its time is up: settings.API_TOKEN_TTL after it was issued (ExpiringTokenAuthentication refuses and deletes it);
- its owner revokes it: the profile page, DELETE /api/token/, or an administrator in the Django admin;
- its owner's password changes, whichever way (password change page, admin, set_password in a shell): the
  receivers below compare the stored password hash before and after every save of a user.

This module must not import rest_framework.views: DRF imports it while building APIView (authentication class).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from medsyn_site.roles import ROLES, user_roles

logger = logging.getLogger("medsyn.accounts")


def token_expires_at(token: Token) -> datetime:
    return token.created + settings.API_TOKEN_TTL


def token_is_expired(token: Token) -> bool:
    return timezone.now() >= token_expires_at(token)


def token_of(user) -> Token | None:
    """The user's token, expired or not; None when they have none."""
    return Token.objects.filter(user=user).first()


@transaction.atomic
def do_token_issue(user) -> Token:
    """The user's token while it is valid; otherwise (none, or expired) a new one."""
    token = Token.objects.select_for_update().filter(user=user).first()
    if token is not None and not token_is_expired(token):
        return token
    if token is not None:
        token.delete()
    token, _created = Token.objects.get_or_create(user=user)  # get_or_create: a concurrent issue may have won
    logger.info("api token issued", extra={"user": user.pk})
    return token


@transaction.atomic
def do_token_renew(user) -> Token:
    """A new token for the user; the old one (if any) stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    logger.info("api token renewed", extra={"user": user.pk})
    return token


def do_token_revoke(user) -> bool:
    """Delete the user's token; False when they had none."""
    deleted, _kinds = Token.objects.filter(user=user).delete()
    if deleted:
        logger.info("api token revoked", extra={"user": user.pk})
    return bool(deleted)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF token authentication that refuses (401) and deletes a token older than settings.API_TOKEN_TTL."""

    def authenticate_credentials(self, key: str):
        """DRF's check (the token exists, its user is active) and the expiry, in one query that also loads the user's
        permissions as ModelBackend caches them on the user object (_perm_cache: read by has_perm, gone with the
        object at the end of the request). An API request checks a dozen permissions (its role, and every permission
        that sees origins, for blinding) and is the rater service's hot path: DRF's query and ModelBackend's two,
        each built by the ORM, cost it more than the rest of its work. A superuser's permissions (all of them) and an
        inactive user's (none) are left to ModelBackend."""
        user_model = get_user_model()
        found = list(user_model.objects.raw(_TOKEN_SQL.format(users=user_model._meta.db_table), [key]))
        if not found:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = found[0]
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = Token(key=key, user=user, created=user.token_created)
        if token_is_expired(token):
            token.delete()
            raise exceptions.AuthenticationFailed(_("Token expired. Ask for a new one with POST /api/token/."))
        if not user.is_superuser:
            user._perm_cache = set(user.token_permissions)
        return user, token


# The token's user, when it was created, and every permission the user holds, directly or through a group, as
# "app_label.codename" (what ModelBackend's get_all_permissions gives).
_TOKEN_SQL = """
    SELECT account.*, token.created AS token_created,
           ARRAY(SELECT content_type.app_label || '.' || permission.codename
                 FROM auth_permission permission
                 JOIN django_content_type content_type ON content_type.id = permission.content_type_id
                 WHERE permission.id IN (
                     SELECT held.permission_id FROM auth_user_user_permissions held WHERE held.user_id = account.id
                     UNION
                     SELECT granted.permission_id FROM auth_group_permissions granted
                     JOIN auth_user_groups member ON member.group_id = granted.group_id
                     WHERE member.user_id = account.id)) AS token_permissions
    FROM authtoken_token token JOIN {users} account ON account.id = token.user_id
    WHERE token.key = %s"""


# Token rotation on a password change. pre_save reads the stored hash (skipped for saves that do not write the
# password, such as the last_login update at each log-in); post_save deletes the tokens once the new hash is
# committed with the user. A hash upgrade by Django (new hasher or iteration count) also rotates: harmless.
@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="medsyn_password_change_watch")
def _password_change_watch(sender, instance, raw: bool = False, update_fields=None, **kwargs) -> None:
    instance._medsyn_password_changed = False
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._medsyn_password_changed = stored is not None and stored != instance.password


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="medsyn_password_change_tokens")
def _password_change_revokes_tokens(sender, instance, **kwargs) -> None:
    if getattr(instance, "_medsyn_password_changed", False):
        instance._medsyn_password_changed = False
        if do_token_revoke(instance):
            logger.info("api token revoked on password change", extra={"user": instance.pk})


# The profile page.

def _token_status(token: Token | None) -> dict | None:
    if token is None:
        return None
    return {"created": token.created, "expires_at": token_expires_at(token), "expired": token_is_expired(token)}


def _profile_render(request: HttpRequest, new_key: str = "") -> HttpResponse:
    names = set(user_roles(request.user))
    context = {
        "roles": [role.label for role in ROLES if role.name in names],
        "token": _token_status(token_of(request.user)),
        "new_key": new_key,
        "token_ttl_days": settings.API_TOKEN_TTL.days,
    }
    return render(request, "accounts/profile.html", context)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    return _profile_render(request)


@login_required
@require_POST
def profile_token_revoke(request: HttpRequest) -> HttpResponse:
    if do_token_revoke(request.user):
        messages.success(request, _("Your API token was revoked: it no longer works."))
    else:
        messages.info(request, _("You had no API token."))
    return redirect("profile")


@login_required
@require_POST
def profile_token_renew(request: HttpRequest) -> HttpResponse:
    """A new token, shown once in this answer (not redirected: the key is never put in the session), which neither
    the browser nor a proxy may keep."""
    token = do_token_renew(request.user)
    response = _profile_render(request, new_key=token.key)
    add_never_cache_headers(response)
    return response
