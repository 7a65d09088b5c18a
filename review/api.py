"""Assessment API. Rater-facing responses carry only the item token, text, diagnosis and questions."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Study
from .results import study_results
from .selectors import studies_open_for_rater
from .services import StudyStateError, assignment_next, do_skip_item, do_submit_rating


class HasPermission(BasePermission):
    perm = ""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(self.perm))


class CanRate(HasPermission):
    perm = "medsyn_site.rate_notes"


class CanViewResults(HasPermission):
    perm = "medsyn_site.view_results"


class RaterStudySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    instructions = serializers.CharField()
    questions = serializers.JSONField()


class RaterItemSerializer(serializers.Serializer):
    token = serializers.CharField()
    text = serializers.CharField(source="display_text")
    diagnosis_code = serializers.CharField()
    diagnosis_name = serializers.CharField()


class SubmitSerializer(serializers.Serializer):
    token = serializers.CharField()
    answers = serializers.DictField()


class SkipSerializer(serializers.Serializer):
    token = serializers.CharField()
    reason = serializers.CharField()


class RaterStudiesView(APIView):
    permission_classes = [CanRate]

    @extend_schema(responses=RaterStudySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(RaterStudySerializer(studies_open_for_rater(request.user), many=True).data)


class NextItemView(APIView):
    permission_classes = [CanRate]

    @extend_schema(responses={200: RaterItemSerializer, 204: None})
    def get(self, request: Request, study_id: int) -> Response:
        study = get_object_or_404(studies_open_for_rater(request.user), pk=study_id)
        try:
            assignment = assignment_next(study=study, physician=request.user)
        except PermissionDenied as error:
            return Response({"detail": str(error)}, status=status.HTTP_403_FORBIDDEN)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(RaterItemSerializer(assignment.item).data)


class SubmitView(APIView):
    permission_classes = [CanRate]

    @extend_schema(request=SubmitSerializer, responses={201: None})
    def post(self, request: Request, study_id: int) -> Response:
        study = get_object_or_404(studies_open_for_rater(request.user), pk=study_id)
        payload = SubmitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            do_submit_rating(study=study, physician=request.user, **payload.validated_data)
        except StudyStateError as error:
            return Response({"detail": error.messages[0]}, status=status.HTTP_409_CONFLICT)
        except ValidationError as error:
            return Response(error.message_dict, status=status.HTTP_400_BAD_REQUEST)
        except PermissionDenied as error:
            return Response({"detail": str(error)}, status=status.HTTP_403_FORBIDDEN)
        return Response(status=status.HTTP_201_CREATED)


class SkipView(APIView):
    permission_classes = [CanRate]

    @extend_schema(request=SkipSerializer, responses={201: None})
    def post(self, request: Request, study_id: int) -> Response:
        study = get_object_or_404(studies_open_for_rater(request.user), pk=study_id)
        payload = SkipSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            do_skip_item(study=study, physician=request.user, **payload.validated_data)
        except ValidationError as error:
            return Response(error.message_dict, status=status.HTTP_400_BAD_REQUEST)
        except PermissionDenied as error:
            return Response({"detail": str(error)}, status=status.HTTP_403_FORBIDDEN)
        return Response(status=status.HTTP_201_CREATED)


class ResultsView(APIView):
    permission_classes = [CanViewResults]

    @extend_schema(responses=serializers.JSONField())
    def get(self, request: Request, study_id: int) -> Response:
        return Response(study_results(get_object_or_404(Study, pk=study_id)))
