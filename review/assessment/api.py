"""Assessment API. Rater-facing responses carry only the item token, text, diagnosis and questions."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm

from .models import Study
from .results import study_results
from .selectors import studies_open_for_rater
from .services import assignment_next, do_skip_item, do_submit_rating

CanRate = HasPerm.of("rate_notes")
CanViewResults = HasPerm.of("view_results")


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
        assignment = assignment_next(study=study, physician=request.user)
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
        do_submit_rating(study=study, physician=request.user, **payload.validated_data)
        return Response(status=status.HTTP_201_CREATED)


class SkipView(APIView):
    permission_classes = [CanRate]

    @extend_schema(request=SkipSerializer, responses={201: None})
    def post(self, request: Request, study_id: int) -> Response:
        study = get_object_or_404(studies_open_for_rater(request.user), pk=study_id)
        payload = SkipSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        do_skip_item(study=study, physician=request.user, **payload.validated_data)
        return Response(status=status.HTTP_201_CREATED)


class ResultsView(APIView):
    permission_classes = [CanViewResults]

    @extend_schema(responses=serializers.JSONField())
    def get(self, request: Request, study_id: int) -> Response:
        return Response(study_results(get_object_or_404(Study, pk=study_id)))
