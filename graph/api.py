"""DRF endpoints: search, code, symptom, neighbourhood and statistics (read-only, browse_graph).

Every answer goes out through its serializer, so the OpenAPI schema documents exactly what is returned; a name a
node may lack is null. A search query with a control character or over QUERY_MAX_LENGTH characters is a 400; a
key in a path that no node can have (a control character, too long) is a 404, like any other unknown key.
"""

from __future__ import annotations

from dataclasses import asdict

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm

from . import selectors
from .schema import NODE_LABELS, QUERY_MAX_LENGTH, REL_TYPES, graph_value_problem
from .store import get_graph_store

_LABELS = [*NODE_LABELS]


# --- Requests -------------------------------------------------------------------------------------

class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, default="", allow_blank=True, max_length=QUERY_MAX_LENGTH,
                              help_text="Code prefix or name (English or Russian); no control characters.")

    def validate_q(self, value: str) -> str:
        if (problem := graph_value_problem(value, max_length=QUERY_MAX_LENGTH)) is not None:
            raise serializers.ValidationError(_("This search cannot be run: %(problem)s.") % {"problem": problem})
        return value


# --- Answers --------------------------------------------------------------------------------------

def _name() -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text="English name (Russian for symptoms); null if none.")


def _name_ru() -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text="Russian name; null if none was imported.")


class SearchHitSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=_LABELS)
    key = serializers.CharField()
    name = _name()
    name_ru = _name_ru()
    kind = serializers.ChoiceField(choices=["code", "symptom"])


class SearchSerializer(serializers.Serializer):
    query = serializers.CharField()
    results = SearchHitSerializer(many=True)


class NodeRefSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=_LABELS)
    key = serializers.CharField()
    name = _name()


class ChildSerializer(NodeRefSerializer):
    name_ru = _name_ru()


class RelatedSerializer(NodeRefSerializer):
    shared = serializers.IntegerField(help_text="Symptoms both codes have.")


class CodeSymptomSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = _name()
    count = serializers.IntegerField(allow_null=True, help_text="The largest count over the edge's sources; null "
                                                                "if the edges carry none.")
    sources = serializers.ListField(child=serializers.CharField())
    percent = serializers.IntegerField(help_text="count as a percentage of the most frequent symptom's.")


class DrugSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = _name()
    groups = serializers.ListField(child=serializers.CharField(), help_text="Names of its pharmacological groups.")


class CodeSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=_LABELS)
    key = serializers.CharField()
    name = serializers.CharField(help_text="English name; the key if the node has none.")
    name_ru = _name_ru()
    breadcrumbs = NodeRefSerializer(many=True)
    children = ChildSerializer(many=True)
    symptoms = CodeSymptomSerializer(many=True, help_text=f"The {selectors.SYMPTOM_LIMIT} most frequent.")
    n_symptoms = serializers.IntegerField()
    drugs = DrugSerializer(many=True)
    related = RelatedSerializer(many=True)
    n_notes = serializers.IntegerField()
    n_examples = serializers.IntegerField()


class DiseaseSerializer(ChildSerializer):
    count = serializers.IntegerField(allow_null=True)
    percent = serializers.IntegerField()


class SymptomSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = _name()
    diseases = DiseaseSerializer(many=True)


class NeighbourNodeSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="label:key")
    label = serializers.ChoiceField(choices=_LABELS)
    key = serializers.CharField()
    name = serializers.CharField(help_text="The node's name to show, or its key if it has none: for an ICD-10 node "
                                           "the Russian name when the request's language is Russian and one is known.")
    centre = serializers.BooleanField()


class NeighbourEdgeSerializer(serializers.Serializer):
    id = serializers.CharField()
    source = serializers.CharField(help_text="id of the start node")
    target = serializers.CharField(help_text="id of the end node")
    type = serializers.ChoiceField(choices=[*REL_TYPES])
    count = serializers.IntegerField(help_text="0 for edges without a count.")


class NeighbourhoodSerializer(serializers.Serializer):
    centre = serializers.CharField()
    nodes = NeighbourNodeSerializer(many=True)
    edges = NeighbourEdgeSerializer(many=True)


class CountsSerializer(serializers.Serializer):
    nodes = serializers.DictField(child=serializers.IntegerField(), help_text="Nodes by label.")
    edges = serializers.DictField(child=serializers.IntegerField(), help_text="Edges by type.")


class VersionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    created_at = serializers.DateTimeField()
    source = serializers.CharField()
    source_files = serializers.ListField(child=serializers.CharField())
    counts = CountsSerializer()
    content_hash = serializers.CharField()


class CategoryRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    n_symp = serializers.FloatField()
    n_exmp = serializers.IntegerField()
    n_notes = serializers.IntegerField()
    weight = serializers.FloatField()
    share = serializers.FloatField()
    tasks = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    counts = CountsSerializer()
    versions = VersionSerializer(many=True, help_text="The last 20 published versions, newest first.")
    categories = CategoryRowSerializer(many=True)


# --- Views ----------------------------------------------------------------------------------------

class GraphAPIView(APIView):
    permission_classes = [HasPerm.of("browse_graph")]


class SearchAPI(GraphAPIView):
    @extend_schema(parameters=[SearchQuerySerializer], responses=SearchSerializer)
    def get(self, request: Request) -> Response:
        params = SearchQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data["q"]
        results = selectors.graph_search(get_graph_store(), query)
        return Response(SearchSerializer({"query": query, "results": results}).data)


class CodeAPI(GraphAPIView):
    @extend_schema(responses=CodeSerializer)
    def get(self, request: Request, key: str) -> Response:
        detail = selectors.code_detail(get_graph_store(), key)
        if detail is None:
            raise Http404
        return Response(CodeSerializer(asdict(detail)).data)


class SymptomAPI(GraphAPIView):
    @extend_schema(responses=SymptomSerializer)
    def get(self, request: Request, key: str) -> Response:
        detail = selectors.symptom_detail(get_graph_store(), key)
        if detail is None:
            raise Http404
        return Response(SymptomSerializer(detail).data)


class NeighbourhoodAPI(GraphAPIView):
    @extend_schema(responses=NeighbourhoodSerializer)
    def get(self, request: Request, label: str, key: str) -> Response:
        data = selectors.node_neighbourhood(get_graph_store(), label, key)
        if data is None:
            raise Http404
        return Response(NeighbourhoodSerializer(data).data)


class StatsAPI(GraphAPIView):
    @extend_schema(responses=StatsSerializer)
    def get(self, request: Request) -> Response:
        stats = selectors.graph_stats(get_graph_store())
        return Response(StatsSerializer({**stats, "categories": [asdict(row) for row in stats["categories"]]}).data)
