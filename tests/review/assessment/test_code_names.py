"""The rating page names the diagnosis in the physician's interface language (graph.names)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from medsyn_site.core.icd10 import icd_category_names
from review.assessment.models import StudyItem
from review.assessment.services import do_build_study_pool, do_create_study, do_open_study

pytestmark = pytest.mark.django_db

RUSSIAN = {"J06": "Острые инфекции верхних дыхательных путей множественной и неуточненной локализации",
           "M54": "Дорсалгия", "I10": "Эссенциальная [первичная] гипертензия"}


@pytest.fixture
def open_study(make_user, note_pool):
    """A study over J06, M54 and I10 whose items carry the WHO English names, as do_set_up_study stores them."""
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="names", overlap_k=2)
    do_build_study_pool(actor=curator, study=study, n_per_origin=4, seed=1, diagnosis_names=icd_category_names())
    do_open_study(actor=curator, study=study)
    return study


def _diagnosis_shown(client, study, language: str) -> tuple[str, str]:
    page = client.get(reverse("assessment:rate_study", args=[study.pk]), HTTP_ACCEPT_LANGUAGE=language)
    body = page.content.decode()
    token = re.search(r'name="token" value="([^"]+)"', body).group(1)
    line = re.search(r'<p class="diagnosis" data-testid="diagnosis">(.*?)</p>', body, re.S).group(1)
    return StudyItem.objects.get(token=token).diagnosis_code, line


def test_rating_page_in_russian_shows_the_russian_name(client, make_user, open_study):
    client.force_login(make_user("physician"))
    code, line = _diagnosis_shown(client, open_study, "ru")
    assert f"{code} — {RUSSIAN[code]}" in line
    assert icd_category_names()[code] not in line


def test_rating_page_in_english_shows_the_english_name(client, make_user, open_study):
    client.force_login(make_user("physician"))
    code, line = _diagnosis_shown(client, open_study, "en")
    assert f"{code} — {icd_category_names()[code]}" in line
    assert RUSSIAN[code] not in line
