"""Assessment API. Rater-facing responses carry only the item token, text, diagnosis and questions."""

from __future__ import annotations

from collections.abc import Callable

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm
from medsyn_site.core.icd10 import icd_category_names

from .models import Study
from .results import results_access_check, study_results
from .selectors import studies_open_for_rater
from .services import (
    NotARater,
    StudyStateError,
    SyntheticFilter,
    assignment_next,
    do_build_study_pool,
    do_skip_item,
    do_submit_rating,
    rater_blind_check,
)

CanRate = HasPerm.of("rate_notes")
CanViewResults = HasPerm.of("view_results")
CanManageStudies = HasPerm.of("manage_studies")


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
        rater_blind_check(request.user)
        return Response(RaterStudySerializer(studies_open_for_rater(request.user), many=True).data)


def rater_call(service: Callable[..., object], study_id: int, **arguments) -> object:
    """A rater service (next item, submit, skip) for the study with this id, which it reads itself under its locks
    (services._rater_hold): one query fewer on the rater's hot path than reading the study here first. As for any
    study not open to the physician, 404 when there is no such study, when it does not list them, or when it is not
    open (then saying so)."""
    try:
        return service(study=Study(pk=study_id), **arguments)
    except (Study.DoesNotExist, NotARater) as error:
        raise NotFound(_("No open study %(id)s for you to rate.") % {"id": study_id}) from error
    except StudyStateError as error:  # the only state these services refuse in: not open
        raise NotFound(" ".join(error.messages)) from error


class NextItemView(APIView):
    permission_classes = [CanRate]

    @extend_schema(responses={200: RaterItemSerializer, 204: None})
    def get(self, request: Request, study_id: int) -> Response:
        assignment = rater_call(assignment_next, study_id, physician=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(RaterItemSerializer(assignment.item).data)


class RaterActionView(APIView):
    """POST for the physician's item in an open study: validate the payload, call the service, answer 201."""

    permission_classes = [CanRate]
    payload_class: type[serializers.Serializer]
    service: Callable[..., object]  # the service, called with study, physician and the validated payload

    def post(self, request: Request, study_id: int) -> Response:
        payload = self.payload_class(data=request.data)
        payload.is_valid(raise_exception=True)
        rater_call(self.service, study_id, physician=request.user, **payload.validated_data)
        return Response(status=status.HTTP_201_CREATED)


@extend_schema_view(post=extend_schema(request=SubmitSerializer, responses={201: None}))
class SubmitView(RaterActionView):
    """Record (or revise) the answers for an item."""

    payload_class = SubmitSerializer
    service = staticmethod(do_submit_rating)


@extend_schema_view(post=extend_schema(request=SkipSerializer, responses={201: None}))
class SkipView(RaterActionView):
    """Skip the current item with a reason."""

    payload_class = SkipSerializer
    service = staticmethod(do_skip_item)


class ResultsView(APIView):
    permission_classes = [CanViewResults]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, study_id: int) -> Response:
        study = get_object_or_404(Study, pk=study_id)
        results_access_check(study, request.user)
        return Response(study_results(study))


class PoolSerializer(serializers.Serializer):
    n_per_origin = serializers.IntegerField(min_value=1, max_value=100000)
    seed = serializers.IntegerField()
    models = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    variants = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    job_ids = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    include_failed_checks = serializers.BooleanField(required=False, default=False)


class PoolView(APIView):
    """(Re)build the matched pool of a draft study; answers the pool report and the blinding report."""

    permission_classes = [CanManageStudies]

    @extend_schema(request=PoolSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, study_id: int) -> Response:
        study = get_object_or_404(Study, pk=study_id)
        payload = PoolSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        do_build_study_pool(
            actor=request.user, study=study, n_per_origin=data["n_per_origin"], seed=data["seed"],
            synthetic=SyntheticFilter(job_ids=tuple(data["job_ids"]), models=tuple(data["models"]),
                                      variants=tuple(data["variants"])),
            diagnosis_names=icd_category_names(), include_failed_checks=data["include_failed_checks"],
        )
        study.refresh_from_db()
        return Response({"pool_report": study.pool_report, "blinding_report": study.blinding_report})
