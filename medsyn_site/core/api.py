"""What every API view shares: one exception handler (REST_FRAMEWORK["EXCEPTION_HANDLER"]) and one permission class.

Services raise domain errors (core.errors); views never translate them by hand.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import DataError
from rest_framework import status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import StateConflict


def _validation_detail(error: ValidationError) -> dict:
    if hasattr(error, "error_dict"):
        return error.message_dict
    return {"detail": " ".join(error.messages)}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Domain errors -> HTTP: state conflict 409, invalid input 400 (a number out of the database's range too),
    not allowed 403. A component that is down (graph, database) is left to ServiceUnavailableMiddleware: 503."""
    if isinstance(exc, StateConflict):
        return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ValidationError):
        return Response(_validation_detail(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DataError):
        return Response({"detail": "A value in the request is out of range."}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)  # DRF's own errors, Http404 and PermissionDenied


class HasPerm(BasePermission):
    """Logged in and holding one medsyn_site.Access permission: HasPerm.of("curate_notes")."""

    permission: str = ""

    @classmethod
    def of(cls, codename: str) -> type[HasPerm]:
        return type(f"HasPerm_{codename}", (cls,), {"permission": codename})

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(f"medsyn_site.{self.permission}"))
