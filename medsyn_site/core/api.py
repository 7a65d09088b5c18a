"""What every API view shares: one exception handler (REST_FRAMEWORK["EXCEPTION_HANDLER"]), one permission class
and one schema class (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) that documents the error answers every operation gives.

Services raise domain errors (core.errors); views never translate them by hand.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import DataError
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
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


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in words for a person.")


class ValidationErrorSerializer(serializers.Serializer):
    """Either {"detail": "..."} or one list of messages per field name ({"seed": ["..."]})."""

    detail = serializers.CharField(required=False)


class UnavailableSerializer(ErrorDetailSerializer):
    component = serializers.CharField(help_text="The component that is down: database, graph or broker.")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the error answers of every operation as exception_handler gives them:
    400 invalid input, 401 not logged in, 403 not allowed, 404 unknown object (operations with a path parameter),
    409 state conflict (operations that change something), 429 throttled and 503 a component down."""

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors: dict[str, tuple[type[serializers.Serializer], str]] = {
            "400": (ValidationErrorSerializer, "Invalid input: a message per field, or a detail."),
            "401": (ErrorDetailSerializer, "Not logged in, or the token is unknown or expired."),
            "403": (ErrorDetailSerializer, "Logged in, but this role may not do this."),
            "429": (ErrorDetailSerializer, "Too many requests: try again later."),
            "503": (UnavailableSerializer, "A component (database, graph, broker) is down."),
        }
        if "{" in self.path:
            errors["404"] = (ErrorDetailSerializer, "No such object.")
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            errors["409"] = (ErrorDetailSerializer, "The object's state does not allow this now.")
        for code, (serializer, description) in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=serializer, description=description), code)
        return dict(sorted(responses.items()))
