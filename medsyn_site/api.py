from __future__ import annotations

from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.accounts import do_token_issue, do_token_revoke, token_expires_at
from medsyn_site.roles import user_roles


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        perms = sorted(p.split(".", 1)[1] for p in user.get_all_permissions() if p.startswith("medsyn_site."))
        return Response(MeSerializer({"username": user.username, "roles": user_roles(user), "permissions": perms}).data)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    created = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class TokenView(APIView):
    """POST: exchange a username and password for an API token (use it as `Authorization: Token <key>`): the same
    token while it is valid, a new one once it expired or was revoked (a password change revokes it). DELETE: revoke
    the caller's token.

    Too many wrong passwords for one username from one address lock that pair out for a while (429)."""

    # django-axes counts the failures (its middleware answers a locked-out attempt with
    # medsyn_site.security.lockout_response); the "token" throttle scope limits requests per address.
    throttle_scope = "token"

    def _posting(self) -> bool:
        # self.request is Django's request here (View.setup); the schema generator may ask before setting one.
        return getattr(getattr(self, "request", None), "method", None) == "POST"

    def get_authenticators(self):
        # A stale or expired token in the headers must not stand in the way of asking for a new one.
        return [] if self._posting() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._posting() else super().get_permissions()

    @extend_schema(request=TokenRequestSerializer, responses=TokenResponseSerializer)
    def post(self, request: Request) -> Response:
        payload = TokenRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        # The Django request, not DRF's wrapper: django-axes marks a locked-out attempt on it for its middleware.
        user = authenticate(request._request, **payload.validated_data)
        if user is None or not user.is_active:
            raise ValidationError(_("Invalid username or password."))
        token = do_token_issue(user)
        return Response(TokenResponseSerializer(
            {"token": token.key, "created": token.created, "expires_at": token_expires_at(token)}).data)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="The caller has no token any more.")})
    def delete(self, request: Request) -> Response:
        do_token_revoke(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
