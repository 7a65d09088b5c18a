"""Rating pages, blinding as an attacker would probe it, permissions, results and exports."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from generation.models import Note
from review.assessment.models import StudyItem
from review.assessment.services import (
    assignment_next,
    do_build_study_pool,
    do_create_study,
    do_open_study,
    do_submit_rating,
)

ANSWERS = {"origin": "real", "confidence": "3", "realism": "4", "plausibility": "4", "consistency": "5",
           "language": "3"}


@pytest.fixture
def open_study(make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="blind", overlap_k=2)
    do_build_study_pool(actor=curator, study=study, n_per_origin=4, seed=1, diagnosis_names={"J06": "ОРВИ"})
    do_open_study(actor=curator, study=study)
    return study


def _secrets(study) -> list[str]:
    """Everything that would betray an item's origin or provenance if it reached a rater."""
    values = ["synthetic-note", "is_synthetic", "gpt-4", "smollm2", "job_id", "generation_model", "prompt_variant",
              "origin=", "data-origin", "provenance"]
    for item in StudyItem.objects.filter(study=study).select_related("note"):
        values += [f"note={item.note_id}", f"/notes/{item.note_id}", item.note.content_hash]
    return values


def test_rating_page_shows_only_text_diagnosis_and_questions(client, make_user, open_study):
    doctor = make_user("physician")
    client.force_login(doctor)
    page = client.get(reverse("assessment:rate_study", args=[open_study.pk])).content.decode()
    for secret in _secrets(open_study):
        assert secret not in page, secret
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    item = StudyItem.objects.get(token=token)
    assert escape(item.display_text) in page
    assert str(item.note_id) not in token and len(token) >= 16
    # Real and synthetic notes render through one template with the same classes and attributes.
    classes = set(re.findall(r'class="([^"]+)"', page))
    assert not any("synth" in c or "real" in c for c in classes)


def test_item_tokens_cannot_be_linked_to_notes(open_study):
    items = list(StudyItem.objects.filter(study=open_study))
    tokens = [i.token for i in items]
    assert len(set(tokens)) == len(tokens)
    ordered_by_note = [i.token for i in sorted(items, key=lambda i: i.note_id)]
    assert ordered_by_note != sorted(tokens) or len(tokens) < 3
    for item in items:
        assert str(item.note_id) not in item.token


def test_physician_cannot_reach_notes_results_or_other_studies(client, make_user, open_study):
    client.force_login(make_user("physician"))
    for url in [reverse("assessment:studies"), reverse("assessment:study_detail", args=[open_study.pk]),
                reverse("assessment:study_results", args=[open_study.pk]),
                reverse("assessment:study_export", args=[open_study.pk, "ratings.csv"]), "/admin/generation/note/"]:
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(("role", "expected"), [
    ("physician", {"rate": 200, "studies": 403, "results": 403}),
    ("curator", {"rate": 403, "studies": 200, "results": 200}),
    ("researcher", {"rate": 403, "studies": 200, "results": 200}),
    ("admin", {"rate": 403, "studies": 200, "results": 200}),  # admins see origins: they may not rate
    (None, {"rate": 403, "studies": 403, "results": 403}),
])
def test_every_role_against_every_study_page(client, make_user, open_study, role, expected):
    client.force_login(make_user(role))
    urls = {"rate": reverse("assessment:rate_study", args=[open_study.pk]), "studies": reverse("assessment:studies"),
            "results": reverse("assessment:study_results", args=[open_study.pk])}
    assert {name: client.get(url).status_code for name, url in urls.items()} == expected


def test_results_and_exports(client, make_user, open_study):
    for _ in range(2):
        doctor = make_user("physician")
        while (assignment := assignment_next(study=open_study, physician=doctor)) is not None:
            truth = assignment.item.is_synthetic
            do_submit_rating(study=open_study, physician=doctor, token=assignment.item.token,
                             answers={**ANSWERS, "origin": "synthetic" if truth else "real"})
    client.force_login(make_user("researcher"))
    page = client.get(reverse("assessment:study_results", args=[open_study.pk])).content.decode()
    assert "<svg" in page and "Fleiss" in page and 'data-testid="detectability"' in page
    summary = client.get(reverse("assessment:study_export", args=[open_study.pk, "summary.json"])).json()
    assert summary["detection"]["accuracy"] == 1.0 and summary["n_ratings"] == 16
    assert summary["fleiss_kappa"] == pytest.approx(1.0)
    assert summary["roc_auc"] == 1.0
    raw = client.get(reverse("assessment:study_export", args=[open_study.pk, "ratings.csv"])).content.decode()
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert len(rows) == 16 and {"realism", "model", "is_synthetic"} <= set(rows[0])
    synthetic_models = {r["model"] for r in rows if r["is_synthetic"] == "True"}
    assert synthetic_models <= {"gpt-4", "smollm2"} and synthetic_models
    assert Note.objects.count() == 36


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_physician_rates_with_the_keyboard_then_curator_sees_results(make_user, note_pool, live_server, page,
                                                                     live_login):
    from playwright.sync_api import expect

    curator = make_user("curator")
    study = do_create_study(actor=curator, name="keyboard", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=3)
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    live_login(doctor.username)
    page.set_viewport_size({"width": 800, "height": 1100})  # tablet width
    page.click("[data-nav='assessment:rate_home']")
    page.click("text=Start / continue")
    for n in range(4):
        expect(page.locator("[data-testid=note-text]")).to_be_visible()
        page.locator("h1").click()  # focus the page, not a form field
        if n % 2:  # the Russian layout: the physical S key types "ы"; rate.js reads event.code
            for code, key in [("KeyS", "ы"), ("Digit4", "4"), ("Digit3", "3"), ("Digit4", "4"), ("Digit5", "5"),
                              ("Digit2", "2")]:
                page.dispatch_event("h1", "keydown", {"code": code, "key": key, "bubbles": True})
            expect(page.locator("input[name=origin][value=synthetic]")).to_be_checked()
            page.keyboard.press("Enter")
        else:
            for key in ["s", "4", "3", "4", "5", "2", "Enter"]:
                page.keyboard.press(key)
        page.wait_for_load_state()
    expect(page.locator("[data-testid=all-done]")).to_be_visible()
    expect(page.locator("[data-testid=progress]")).to_contain_text("4 of 4")
    page.click("text=Log out")

    live_login(curator.username)
    page.goto(f"{live_server.url}{reverse('assessment:study_results', args=[study.pk])}")
    expect(page.locator("[data-testid=detection]")).to_contain_text("0.500")
    expect(page.locator("figure.plot svg")).to_have_count(2)
    expect(page.locator("[data-testid=likert]")).to_contain_text("realism")


def test_curator_edits_questions_while_draft_only(client, make_user, note_pool):
    import json

    curator = make_user("curator")
    study = do_create_study(actor=curator, name="edit", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=1)
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    questions = dict(study.questions, likert=[{"key": "realism", "label": "Реалистичность"}])
    client.post(url, {"action": "questions", "questions": json.dumps(questions)})
    study.refresh_from_db()
    assert study.questions["likert"] == [{"key": "realism", "label": "Реалистичность"}]
    response = client.post(url, {"action": "questions", "questions": "{not json"}, follow=True)
    assert "not valid JSON" in response.content.decode()
    for wrong in ("[1, 2]", '"text"', json.dumps(dict(questions, likert=[{"key": ["a"], "label": "x"}]))):
        response = client.post(url, {"action": "questions", "questions": wrong}, follow=True)
        assert response.status_code == 200 and "question" in response.content.decode().lower()
    client.post(url, {"action": "open"})
    response = client.post(url, {"action": "questions", "questions": json.dumps(study.questions | {"likert": []})},
                           follow=True)
    assert "frozen" in response.content.decode()
    study.refresh_from_db()
    assert study.state == "open" and len(study.questions["likert"]) == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_curator_creates_and_opens_a_study_in_the_browser(make_user, note_pool, live_server, page, live_login):
    from playwright.sync_api import expect

    curator = make_user("curator")
    live_login(curator.username)
    page.click("[data-nav='assessment:studies']")
    page.fill("input[name=name]", "Браузерное исследование")
    page.fill("input[name=n_per_origin]", "5")
    page.fill("input[name=overlap_k]", "2")
    page.click("text=Create and build the pool")
    expect(page.locator("[data-testid=pool-report]")).to_contain_text("pairs")
    expect(page.locator("[data-testid=study-progress]")).to_contain_text("0 of 20 ratings")
    page.click("text=Open the study")
    expect(page.locator("h1")).to_contain_text("Open")
    expect(page.locator("table[data-testid=questions]")).to_contain_text("realism")


@pytest.fixture
def closing_mid_request(monkeypatch, make_user):
    """The study closes between the page's read of it and the service's write: the race bug 5 is about."""
    from review.assessment import views
    from review.assessment.services import do_close_study

    curator = make_user("curator")
    read = views._rater_study

    def read_then_close(request, study_id):
        study = read(request, study_id)
        do_close_study(actor=curator, study=study)
        return study

    monkeypatch.setattr(views, "_rater_study", read_then_close)


def test_a_study_closed_mid_request_gives_a_message_not_a_500(client, make_user, open_study, closing_mid_request):
    doctor = make_user("physician")
    client.force_login(doctor)
    token = assignment_next(study=open_study, physician=doctor).item.token
    response = client.post(reverse("assessment:rate_study", args=[open_study.pk]), {"token": token, **ANSWERS})
    assert response.status_code == 302 and response.url == reverse("assessment:rate_home")
    page = client.get(response.url).content.decode()
    assert "The study is closed" in page


def test_no_skip_after_the_study_closed(client, make_user, open_study, closing_mid_request):
    from review.assessment.models import Assignment

    doctor = make_user("physician")
    client.force_login(doctor)
    assignment = assignment_next(study=open_study, physician=doctor)
    response = client.post(reverse("assessment:rate_skip", args=[open_study.pk]),
                           {"token": assignment.item.token, "reason": "unreadable"})
    assert response.status_code == 302 and response.url == reverse("assessment:rate_home")
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.ASSIGNED and assignment.skip_reason == ""


# --- issue 11: XSS in the results plots, blinding of raters, the blinding check, CSV injection -------------------

HOSTILE_KEY = '<script>window.__xss = "key"</script>'
HOSTILE_LABEL = '<img src=x onerror="window.__xss = \'label\'"><script>window.__xss = "label"</script>'


def _hostile_study(make_user, *, name: str = "hostile"):
    """An open study whose question set (legacy data, written before keys were validated) has a hostile Likert key
    and label, rated by one physician."""
    from review.assessment.models import Study

    curator = make_user("curator")
    study = do_create_study(actor=curator, name=name, overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=1)
    questions = dict(study.questions, likert=[{"key": HOSTILE_KEY, "label": HOSTILE_LABEL},
                                              {"key": "realism", "label": "Realism"}])
    Study.objects.filter(pk=study.pk).update(questions=questions)  # bypasses questions_validate
    study.refresh_from_db()
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    while (assignment := assignment_next(study=study, physician=doctor)) is not None:
        do_submit_rating(study=study, physician=doctor, token=assignment.item.token,
                         answers={"origin": "real", "confidence": "3", HOSTILE_KEY: "2", "realism": "4"})
    return study


def test_bar_chart_escapes_labels_and_title():
    from review.assessment.results import bar_chart_svg

    svg = bar_chart_svg([(HOSTILE_LABEL, 1, 2), ('"><script>alert(1)</script>', 0.5, 0.5)],
                        title='</svg><script>alert("t")</script>', max_value=5)
    assert "<script" not in svg and "<img" not in svg and "</svg><" not in svg[:-6]
    assert "&lt;script&gt;" in svg and "&quot;" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>") and svg.count("<svg") == 1


def test_results_page_escapes_a_legacy_hostile_key_and_label(client, make_user, note_pool):
    study = _hostile_study(make_user)
    client.force_login(make_user("researcher"))
    page = client.get(reverse("assessment:study_results", args=[study.pk])).content.decode()
    assert "<svg" in page and "window.__xss" in page  # shown, as text
    assert "<script>window.__xss" not in page and "<img src=x" not in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_hostile_question_label_runs_no_script_on_the_results_page(make_user, note_pool, live_server, page,
                                                                     live_login):
    from playwright.sync_api import expect

    study = _hostile_study(make_user, name="hostile browser")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}{reverse('assessment:study_results', args=[study.pk])}")
    expect(page.locator("figure.plot svg")).to_have_count(2)
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert page.evaluate("window.__xss") is None  # no script of the key or the label ran
    assert page.locator("figure.plot script, figure.plot img").count() == 0
    expect(page.locator("figure.plot").first).to_contain_text("<img src=x")  # the label, shown as text
    expect(page.locator("[data-testid=likert]")).to_contain_text("<script>")
    assert dialogs == []


def test_an_admin_is_told_why_it_cannot_rate(client, make_user, open_study):
    client.force_login(make_user("admin"))
    for url in (reverse("assessment:rate_home"), reverse("assessment:rate_study", args=[open_study.pk])):
        response = client.get(url)
        assert response.status_code == 403 and "origins" in response.content.decode(), url
    response = client.post(reverse("assessment:rate_skip", args=[open_study.pk]), {"token": "x", "reason": "y"})
    assert response.status_code == 403
    from review.assessment.models import Assignment

    assert not Assignment.objects.filter(study=open_study).exists()


def test_results_and_exports_of_an_open_study_are_withheld_from_its_raters(client, make_user, open_study):
    from django.contrib.auth.models import Group

    from review.assessment.services import do_close_study

    doctor = make_user("physician")
    assignment = assignment_next(study=open_study, physician=doctor)
    do_submit_rating(study=open_study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
    doctor.groups.add(Group.objects.get(name="researcher"))
    client.force_login(doctor)
    urls = [reverse("assessment:study_results", args=[open_study.pk])] + [
        reverse("assessment:study_export", args=[open_study.pk, kind])
        for kind in ("ratings.csv", "ratings.json", "summary.json")]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 403 and "rate in this study" in response.content.decode(), url
    do_close_study(actor=make_user("curator"), study=open_study)
    assert [client.get(url).status_code for url in urls] == [200] * 4


def test_study_page_shows_the_blinding_check(client, make_user, form_pool):
    curator = make_user("curator")
    client.force_login(curator)
    measured = do_create_study(actor=curator, name="measured", overlap_k=1)
    do_build_study_pool(actor=curator, study=measured, n_per_origin=15, seed=5)
    measured.refresh_from_db()
    probe = measured.blinding_report["origin_probe"]
    page = client.get(reverse("assessment:study_detail", args=[measured.pk])).content.decode()
    assert 'data-testid="origin-probe"' in page and 'data-testid="probe-warning"' not in page
    for figure in (probe["raw"], probe["normalised"], probe["content"]):
        assert f"{figure:.3f}" in page
    changed = measured.blinding_report["normaliser"]
    assert (f"The normaliser changed {changed['real']['changed']} of {changed['real']['notes']} real notes and "
            f"{changed['synthetic']['changed']} of {changed['synthetic']['notes']} synthetic notes") in page
    small = do_create_study(actor=curator, name="small", overlap_k=1)
    do_build_study_pool(actor=curator, study=small, n_per_origin=3, seed=1)
    page = client.get(reverse("assessment:study_detail", args=[small.pk])).content.decode()
    assert 'data-testid="probe-skipped"' in page and "needs at least 10 of each" in page


def test_study_page_warns_when_form_still_tells_the_origin(client, make_user, note_pool):
    from review.assessment.models import Study

    curator = make_user("curator")
    study = do_create_study(actor=curator, name="leaky", overlap_k=1)
    Study.objects.filter(pk=study.pk).update(blinding_report={"origin_probe": {
        "n": 40, "n_real": 20, "n_synthetic": 20, "folds": 5, "seed": 1, "margin": 0.03, "min_per_origin": 10,
        "raw": 0.95, "normalised": 0.9, "content": 0.6, "warning": True}})
    client.force_login(curator)
    page = client.get(reverse("assessment:study_detail", args=[study.pk])).content.decode()
    assert 'data-testid="probe-warning"' in page


def test_study_form_leaves_failed_check_notes_out_unless_ticked(client, make_user, checked_notes):
    from review.assessment.models import Study

    client.force_login(make_user("curator"))
    form = {"name": "form default", "overlap_k": 1, "n_per_origin": 4, "seed": 2}
    client.post(reverse("assessment:studies"), form)
    assert Study.objects.get(name="form default").pool_report["failed_checks_left_out"] == 2
    client.post(reverse("assessment:studies"), {**form, "name": "form ticked", "include_failed_checks": "on"})
    ticked = Study.objects.get(name="form ticked")
    assert ticked.pool_report["failed_checks_included"] is True and ticked.items.count() == 8
    page = client.get(reverse("assessment:studies")).content.decode()
    checkbox = re.search(r'<input[^>]*name="include_failed_checks"[^>]*>', page).group()
    assert "checked" not in checkbox  # off by default


def test_csv_export_neutralises_formulas_and_json_stays_exact(client, make_user, open_study):
    formula = '=HYPERLINK("http://x","y")'
    doctor = make_user("physician", username="-doctor")
    while (assignment := assignment_next(study=open_study, physician=doctor)) is not None:
        do_submit_rating(study=open_study, physician=doctor, token=assignment.item.token,
                         answers={**ANSWERS, "comment": formula})
    from review.assessment.services import do_close_study

    do_close_study(actor=make_user("curator"), study=open_study)
    client.force_login(make_user("researcher"))
    raw = client.get(reverse("assessment:study_export", args=[open_study.pk, "ratings.csv"])).content.decode()
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert rows and {r["comment"] for r in rows} == {"'" + formula}
    assert {r["physician"] for r in rows} == {"'-doctor"}
    exported = client.get(reverse("assessment:study_export", args=[open_study.pk, "ratings.json"])).json()
    assert {r["comment"] for r in exported} == {formula} and {r["physician"] for r in exported} == {"-doctor"}
    assert {r["realism"] for r in rows} == {"4"}  # numbers and other cells unchanged
