"""DRF endpoints: search, code, symptom, neighbourhood and statistics (read-only, browse_graph)."""

from __future__ import annotations

from dataclasses import asdict

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm

from . import selectors
from .schema import NODE_LABELS
from .store import get_graph_store


class GraphAPIView(APIView):
    permission_classes = [HasPerm.of("browse_graph")]


class SearchAPI(GraphAPIView):
    @extend_schema(parameters=[OpenApiParameter("q", str, description="code prefix or name (English/Russian)")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        return Response({"query": query, "results": selectors.graph_search(get_graph_store(), query)})


class CodeAPI(GraphAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, key: str) -> Response:
        detail = selectors.code_detail(get_graph_store(), key)
        if detail is None:
            raise Http404
        return Response(asdict(detail))


class SymptomAPI(GraphAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, key: str) -> Response:
        detail = selectors.symptom_detail(get_graph_store(), key)
        if detail is None:
            raise Http404
        return Response(detail)


class NeighbourhoodAPI(GraphAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, label: str, key: str) -> Response:
        data = selectors.node_neighbourhood(get_graph_store(), label, key) if label in NODE_LABELS else None
        if data is None:
            raise Http404
        return Response(data)


class StatsAPI(GraphAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        stats = selectors.graph_stats(get_graph_store())
        return Response({
            "counts": stats["counts"],
            "versions": [{"id": v.pk, "created_at": v.created_at, "source": v.source, "source_files": v.source_files,
                          "counts": v.counts, "content_hash": v.content_hash} for v in stats["versions"]],
            "categories": [asdict(row) for row in stats["categories"]],
        })
