"""Issue 14, blind assessment in human words: the question-set editor (fields, JSON import and export), the pool in a
sentence and a table, skip reasons in the results and exports, a closed study's rating address. (The read-only admin
of studies and ratings is tested in tests/generation/test_admin.py.)"""

from __future__ import annotations

import copy
import csv
import io
import json
from html.parser import HTMLParser

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from review.assessment.models import Assignment, Study
from review.assessment.services import (
    DEFAULT_QUESTIONS,
    SyntheticFilter,
    assignment_next,
    do_build_study_pool,
    do_close_study,
    do_create_study,
    do_open_study,
    do_skip_item,
    do_submit_rating,
)

ANSWERS = {"origin": "real", "confidence": "3", "realism": "4", "plausibility": "4", "consistency": "5",
           "language": "3"}


class _FormFields(HTMLParser):
    """The values a browser would send from one form of a page (checked boxes only; no button)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields, self._textarea = form_id, False, {}, None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        elif self.inside and tag == "input" and attrs.get("name"):
            if attrs.get("type") != "checkbox":
                self.fields[attrs["name"]] = attrs.get("value", "")
            elif "checked" in attrs:
                self.fields[attrs["name"]] = attrs.get("value", "on")
        elif self.inside and tag == "textarea":
            self._textarea = attrs["name"]
            self.fields[self._textarea] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None


def editor_fields(page: str) -> dict:
    parser = _FormFields("question-editor")
    parser.feed(page)
    return parser.fields


@pytest.fixture
def draft(make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="черновик", overlap_k=2)
    do_build_study_pool(actor=curator, study=study, n_per_origin=4, seed=1)
    study.refresh_from_db()
    return study, curator


# --- the question-set editor ------------------------------------------------------------------------------------

def test_the_editor_shows_fields_and_saving_them_unchanged_keeps_the_same_json(client, draft):
    study, curator = draft
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    page = client.get(url).content.decode()
    fields = editor_fields(page)
    assert fields["likert-count"] == "4" and fields["likert-0-key"] == "realism"
    assert fields["fixed-origin_label"] == DEFAULT_QUESTIONS["origin"]["label"]
    assert all(fields[f"likert-{i}-required"] == "on" for i in range(4)) and "fixed-comment_required" not in fields
    assert "{&quot;origin" not in page.split('id="question-editor"')[1].split("</form>")[0]  # fields, not JSON
    response = client.post(url, {**fields, "action": "questions_fields"})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.questions == DEFAULT_QUESTIONS


def test_the_editor_saves_labels_order_and_required_as_the_json_import_would(client, draft, make_user):
    study, curator = draft
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    fields = editor_fields(client.get(url).content.decode())
    fields.update({
        "fixed-origin_label": "Кто написал эту запись: врач или модель?",
        "fixed-comment_required": "on",
        "likert-0-key": "consistency", "likert-0-label": "Соответствие диагнозу",  # rows 0 and 2 swapped
        "likert-2-key": "realism", "likert-2-label": "Реалистичность",
        "likert-count": "5", "likert-4-key": "terminology", "likert-4-label": "Терминология",
        "likert-4-required": "on",
    })
    del fields["likert-1-required"]
    response = client.post(url, {**fields, "action": "questions_fields"})
    assert response.status_code == 302
    expected = copy.deepcopy(DEFAULT_QUESTIONS)
    expected["origin"]["label"] = "Кто написал эту запись: врач или модель?"
    expected["comment"]["required"] = True
    expected["likert"] = [{"key": "consistency", "label": "Соответствие диагнозу"},
                          {"key": "plausibility", "label": "Medical plausibility", "required": False},
                          {"key": "realism", "label": "Реалистичность"},
                          {"key": "language", "label": "Language quality"},
                          {"key": "terminology", "label": "Терминология"}]
    study.refresh_from_db()
    assert study.questions == expected
    # The same set through the JSON import gives the same stored JSON.
    other = do_create_study(actor=curator, name="через JSON", overlap_k=1)
    client.post(reverse("assessment:study_detail", args=[other.pk]),
                {"action": "questions", "questions": json.dumps(expected, ensure_ascii=False)})
    other.refresh_from_db()
    assert other.questions == study.questions
    # An optional question may be left out by the rater; a required comment may not.
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    token = assignment_next(study=study, physician=doctor).item.token
    answers = {"origin": "real", "confidence": "3", "consistency": "4", "realism": "4", "language": "3",
               "terminology": "5"}
    with pytest.raises(ValidationError) as refused:
        do_submit_rating(study=study, physician=doctor, token=token, answers=answers)
    assert set(refused.value.message_dict) == {"comment"}
    rating = do_submit_rating(study=study, physician=doctor, token=token, answers={**answers, "comment": "ок"})
    assert rating.likert == {"consistency": 4, "realism": 4, "language": 3, "terminology": 5}


def test_adding_moving_and_removing_rows_shows_the_change_without_saving_it(client, draft):
    study, curator = draft
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    fields = editor_fields(client.get(url).content.decode())
    fields["likert-3-label"] = "Язык записи"  # typed, not saved yet
    response = client.post(url, {**fields, "edit": "up-3"}, HTTP_HX_REQUEST="true")
    partial = response.content.decode()
    assert response.status_code == 200 and "<html" not in partial and 'id="question-editor"' in partial
    moved = editor_fields(partial)
    assert [moved[f"likert-{i}-key"] for i in range(4)] == ["realism", "plausibility", "language", "consistency"]
    assert moved["likert-2-label"] == "Язык записи" and "Not saved yet" in partial
    added = editor_fields(client.post(url, {**moved, "edit": "add"}, HTTP_HX_REQUEST="true").content.decode())
    assert added["likert-count"] == "5" and added["likert-4-key"] == "" and added["likert-4-required"] == "on"
    removed = editor_fields(client.post(url, {**added, "edit": "remove-0"}, HTTP_HX_REQUEST="true").content.decode())
    assert [removed[f"likert-{i}-key"] for i in range(3)] == ["plausibility", "language", "consistency"]
    assert removed["likert-count"] == "4"
    page = client.post(url, {**removed, "edit": "down-0"}).content.decode()  # without htmx: the whole page
    assert "<html" in page and editor_fields(page)["likert-0-key"] == "language"
    study.refresh_from_db()
    assert study.questions == DEFAULT_QUESTIONS


@pytest.mark.parametrize(("key", "message"), [
    ("Реализм", "is not allowed"), ("real ism", "is not allowed"), ("origin", "is reserved"),
    ("item_token", "is reserved"), ("plausibility", "must be unique"),
])
def test_the_editor_refuses_a_bad_key_with_a_message_and_keeps_what_was_typed(client, draft, key, message):
    study, curator = draft
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    fields = editor_fields(client.get(url).content.decode())
    fields.update({"likert-0-key": key, "likert-0-label": "Новый вопрос"})
    response = client.post(url, {**fields, "action": "questions_fields"})
    page = response.content.decode()
    assert response.status_code == 200 and message in page
    assert "The question set was not saved" in page
    kept = editor_fields(page)
    assert kept["likert-0-key"] == key and kept["likert-0-label"] == "Новый вопрос"
    study.refresh_from_db()
    assert study.questions == DEFAULT_QUESTIONS


def test_a_blank_label_or_key_is_refused(client, draft):
    study, curator = draft
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    fields = editor_fields(client.get(url).content.decode())
    fields.update({"likert-count": "5", "fixed-confidence_label": " "})
    page = client.post(url, {**fields, "action": "questions_fields"}).content.decode()
    assert page.count("This field is required") == 3  # the confidence label, the new row's key and label
    study.refresh_from_db()
    assert study.questions == DEFAULT_QUESTIONS


def test_json_export_and_import_round_trip(client, draft):
    study, curator = draft
    client.force_login(curator)
    questions = dict(copy.deepcopy(DEFAULT_QUESTIONS), likert=[
        {"key": "realism", "label": "Реалистичность «записи»"}, {"key": "style", "label": "Стиль", "required": False}])
    client.post(reverse("assessment:study_detail", args=[study.pk]),
                {"action": "questions", "questions": json.dumps(questions)})
    exported = client.get(reverse("assessment:study_questions_export", args=[study.pk]))
    assert exported["Content-Disposition"] == f'attachment; filename="study-{study.pk}-questions.json"'
    text = exported.content.decode("utf-8")
    assert "Реалистичность «записи»" in text and json.loads(text) == questions
    other = do_create_study(actor=curator, name="импорт", overlap_k=1)
    response = client.post(reverse("assessment:study_detail", args=[other.pk]), {
        "action": "questions", "questions": "",
        "questions_file": SimpleUploadedFile("questions.json", exported.content, "application/json")}, follow=True)
    assert "Question set imported" in response.content.decode()
    other.refresh_from_db()
    assert other.questions == questions
    assert client.get(reverse("assessment:study_questions_export", args=[other.pk])).content == exported.content
    # The editor shows the imported set as fields.
    fields = editor_fields(client.get(reverse("assessment:study_detail", args=[other.pk])).content.decode())
    assert fields["likert-1-key"] == "style" and "likert-1-required" not in fields


def test_json_import_refuses_bad_keys_broken_json_and_a_file_that_is_not_utf8(client, draft):
    study, curator = draft
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    bad = dict(DEFAULT_QUESTIONS, likert=[{"key": "Реализм", "label": "x"}])
    page = client.post(url, {"action": "questions", "questions": json.dumps(bad)}, follow=True).content.decode()
    assert "is not allowed" in page
    page = client.post(url, {"action": "questions", "questions": '{"origin": 1,\n "x": }'}, follow=True)
    assert "not valid JSON at line 2, column 7: a value was expected here" in page.content.decode()
    cp1251 = SimpleUploadedFile("q.json", json.dumps(DEFAULT_QUESTIONS | {"likert": [
        {"key": "realism", "label": "Реалистичность"}]}, ensure_ascii=False).encode("cp1251"))
    page = client.post(url, {"action": "questions", "questions_file": cp1251}, follow=True).content.decode()
    assert "q.json" in page and "not UTF-8" in page
    study.refresh_from_db()
    assert study.questions == DEFAULT_QUESTIONS


def test_an_open_study_shows_its_questions_read_only_and_refuses_edits(client, draft):
    study, curator = draft
    do_open_study(actor=curator, study=study)
    client.force_login(curator)
    url = reverse("assessment:study_detail", args=[study.pk])
    page = client.get(url).content.decode()
    assert 'id="question-editor"' not in page and 'data-testid="questions"' in page
    assert "Medical plausibility" in page and 'name="questions"' not in page
    fields = {"likert-count": "1", "likert-0-key": "realism", "likert-0-label": "x", "fixed-origin_label": "x",
              "fixed-confidence_label": "x", "fixed-comment_label": ""}
    page = client.post(url, {**fields, "action": "questions_fields"}, follow=True).content.decode()
    assert "frozen" in page
    client.post(url, {**fields, "edit": "add"})
    study.refresh_from_db()
    assert study.questions == DEFAULT_QUESTIONS
    assert json.loads(client.get(reverse("assessment:study_questions_export", args=[study.pk])).content) == \
        DEFAULT_QUESTIONS


def test_a_physician_cannot_reach_the_editor_or_the_export(client, make_user, draft):
    study, _curator = draft
    client.force_login(make_user("physician"))
    for url in (reverse("assessment:study_detail", args=[study.pk]),
                reverse("assessment:study_questions_export", args=[study.pk])):
        assert client.get(url).status_code == 403


# --- the pool in words --------------------------------------------------------------------------------------------

def test_the_pool_is_a_sentence_and_a_table(client, make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="pool words", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=20, seed=3,
                        synthetic=SyntheticFilter(models=("gpt-4",)))
    study.refresh_from_db()
    report = study.pool_report
    codes = study.items.values("diagnosis_code").distinct().count()
    client.force_login(curator)
    page = client.get(reverse("assessment:study_detail", args=[study.pk])).content.decode()
    assert (f"The pool holds 18 notes: 9 real and 9 synthetic, over {codes} ICD-10 categories.") in page
    assert (f"Matched pairs: 9; {report['matched_category_and_band']} of them have the same ICD-10 category and "
            f"length band, {report['matched_category_only']} only the same category.") in page
    assert "20 notes per origin were asked for, 11 fewer were found" in page
    assert "Synthetic notes were taken only from the models gpt-4." in page and "Random seed: 3." in page
    assert "{&#x27;" not in page and "requested_per_origin" not in page  # no Python dict, no raw keys
    table = page.split('data-testid="pool-table"')[1].split("</table>")[0]
    assert "real (written by clinicians)" in table and "gpt-4" in table and "smollm2" not in table
    assert "0–19 words" in table and "80 words or more" in table
    empty = do_create_study(actor=curator, name="no pool", overlap_k=1)
    page = client.get(reverse("assessment:study_detail", args=[empty.pk])).content.decode()
    assert "No pool has been built yet." in page and 'data-testid="pool-table"' not in page


def test_the_pool_summary_counts_notes_codes_and_lengths_per_origin_and_model(make_user, note_pool):
    from review.assessment.selectors import study_pool_summary

    curator = make_user("curator")
    study = do_create_study(actor=curator, name="pool counts", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=18, seed=5)
    summary = study_pool_summary(study)
    assert (summary["notes"], summary["real"], summary["synthetic"], summary["codes"]) == (36, 18, 18, 3)
    rows = {(row["is_synthetic"], row["model"]): row for row in summary["rows"]}
    assert set(rows) == {(False, ""), (True, "gpt-4"), (True, "smollm2")}
    assert [rows[key]["notes"] for key in sorted(rows)] == [18, 9, 9]
    assert all(row["codes"] == 3 and sum(row["bands"]) == row["notes"] for row in rows.values())
    assert list(rows)[0] == (False, "")  # real notes first
    assert summary["sentences"][0] == "The pool holds 36 notes: 18 real and 18 synthetic, over 3 ICD-10 categories."


# --- skip reasons ---------------------------------------------------------------------------------------------------

@pytest.fixture
def skipped_study(make_user, note_pool):
    """An open study where three physicians skipped notes with reasons (one a formula) and rated the rest."""
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="skips", overlap_k=2)
    do_build_study_pool(actor=curator, study=study, n_per_origin=4, seed=1)
    do_open_study(actor=curator, study=study)
    reasons = ["Нечитаемый текст", "нечитаемый  текст", '=HYPERLINK("http://x","y")']
    for reason in reasons:
        doctor = make_user("physician")
        assignment = assignment_next(study=study, physician=doctor)
        do_skip_item(study=study, physician=doctor, token=assignment.item.token, reason=reason)
        assignment = assignment_next(study=study, physician=doctor)
        do_submit_rating(study=study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
    return study, reasons


def test_skip_reasons_are_counted_and_listed_on_the_results_page(client, make_user, skipped_study):
    study, reasons = skipped_study
    client.force_login(make_user("researcher"))
    page = client.get(reverse("assessment:study_results", args=[study.pk])).content.decode()
    assert "Physicians skipped 3 notes" in page
    by_reason = page.split('data-testid="skip-reasons"')[1].split("</table>")[0]
    assert "<td>Нечитаемый текст</td><td>2</td>" in by_reason  # case and spacing make no new reason
    assert "<td>=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)</td><td>1</td>" in by_reason
    listed = page.split('data-testid="skip-list"')[1].split("</table>")[0]
    assert listed.count("<tr>") == 4 and "нечитаемый  текст" in listed
    tokens = set(Assignment.objects.filter(study=study, status="skipped").values_list("item__token", flat=True))
    assert all(token in listed for token in tokens)


def test_skip_reasons_are_in_the_csv_and_json_exports(client, make_user, skipped_study):
    study, reasons = skipped_study
    do_close_study(actor=make_user("curator"), study=study)
    client.force_login(make_user("researcher"))

    def export(kind):
        return client.get(reverse("assessment:study_export", args=[study.pk, kind]))

    response = export("skips.csv")
    assert response["Content-Disposition"] == f'attachment; filename="study-{study.pk}-skips.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(r["reason"] for r in rows) == sorted(["Нечитаемый текст", "нечитаемый  текст",
                                                         "'" + reasons[2]])  # no formula runs in a spreadsheet
    assert {"item_token", "physician", "is_synthetic", "diagnosis_code", "model", "skipped_at"} <= set(rows[0])
    assert all(r["skipped_at"] for r in rows)
    records = export("skips.json").json()
    assert sorted(r["reason"] for r in records) == sorted(reasons)  # exact in JSON
    skipped = {(a.item.token, a.physician.username): a for a in Assignment.objects.filter(study=study, status="skipped")
               .select_related("item", "physician")}
    assert {(r["item_token"], r["physician"]) for r in records} == set(skipped)
    for record in records:
        assignment = skipped[(record["item_token"], record["physician"])]
        assert (record["is_synthetic"], record["reason"]) == (assignment.item.is_synthetic, assignment.skip_reason)
    summary = export("summary.json").json()
    assert summary["skips"]["n"] == 3
    assert [(g["reason"], g["n"]) for g in summary["skips"]["by_reason"]] == [
        ("Нечитаемый текст", 2), (reasons[2], 1)]
    assert summary["n_ratings"] == 3  # the ratings exports are unchanged
    assert len(list(csv.DictReader(io.StringIO(export("ratings.csv").content.decode())))) == 3


def test_skips_before_any_rating_are_still_reported(client, make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="only skips", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=1)
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    do_skip_item(study=study, physician=doctor, token=assignment_next(study=study, physician=doctor).item.token,
                 reason="не по специальности")
    client.force_login(make_user("researcher"))
    page = client.get(reverse("assessment:study_results", args=[study.pk])).content.decode()
    assert "No ratings yet." in page and "не по специальности" in page
    other = do_create_study(actor=curator, name="nothing skipped", overlap_k=1)
    page = client.get(reverse("assessment:study_results", args=[other.pk])).content.decode()
    assert "No note was skipped." in page


# --- a study the physician cannot rate -----------------------------------------------------------------------------

@pytest.fixture
def rating_urls():
    def urls(pk: int) -> list[str]:
        return [reverse("assessment:rate_study", args=[pk]), reverse("assessment:rate_revise", args=[pk, "tok"])]

    return urls


def test_a_closed_study_says_it_is_closed_with_a_way_back(client, make_user, draft, rating_urls, settings):
    settings.DEBUG = True  # what made the debug page: a raised 404 under DEBUG
    study, curator = draft
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    assignment = assignment_next(study=study, physician=doctor)
    do_submit_rating(study=study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
    do_close_study(actor=curator, study=study)
    client.force_login(doctor)
    for url in rating_urls(study.pk):
        response = client.get(url)
        page = response.content.decode()
        assert response.status_code == 410, url
        assert "This study is closed" in page and "черновик" in page and "can no longer be rated" in page
        assert f'href="{reverse("assessment:rate_home")}"' in page and "Back to your studies" in page
        assert "URLconf" not in page and "Traceback" not in page
    response = client.post(reverse("assessment:rate_skip", args=[study.pk]), {"token": "x", "reason": "y"})
    assert response.status_code == 410 and "This study is closed" in response.content.decode()


def test_a_draft_an_unknown_and_a_foreign_study_are_explained(client, make_user, draft, rating_urls, settings):
    settings.DEBUG = True
    study, curator = draft
    doctor = make_user("physician")
    client.force_login(doctor)
    response = client.get(rating_urls(study.pk)[0])
    assert response.status_code == 404 and "This study is not open yet" in response.content.decode()
    assert "черновик" not in response.content.decode()  # a draft's name is not shown to raters
    response = client.get(rating_urls(study.pk + 1000)[0])
    assert response.status_code == 404 and "No such study" in response.content.decode()
    assert "URLconf" not in response.content.decode()
    do_open_study(actor=curator, study=study, physicians=[make_user("physician")])
    response = client.get(rating_urls(study.pk)[0])
    assert response.status_code == 403 and "You are not a rater of this study" in response.content.decode()


# --- in the browser -------------------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_curator_builds_a_question_set_with_the_field_editor(make_user, note_pool, live_server, page, live_login):
    from playwright.sync_api import expect

    curator = make_user("curator")
    study = do_create_study(actor=curator, name="редактор вопросов", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=3)
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    live_login(curator.username)
    page.goto(f"{live_server.url}{reverse('assessment:study_detail', args=[study.pk])}")
    editor = page.locator("#question-editor")
    rows = editor.locator("[data-testid=likert-row]")
    expect(rows).to_have_count(4)
    editor.locator("input[name=fixed-origin_label]").fill("Кто написал запись: врач или модель?")
    editor.locator("[data-testid=add-question]").click()  # htmx: the editor comes back with a fifth row
    expect(rows).to_have_count(5)
    expect(editor.locator("[data-testid=questions-unsaved]")).to_be_visible()
    expect(editor.locator("input[name=fixed-origin_label]")).to_have_value("Кто написал запись: врач или модель?")
    rows.nth(4).locator("input[name$=-label]").fill("Терминология")
    rows.nth(4).locator("input[name$=-key]").fill("термины")
    editor.locator("button[value=up-4]").click()  # the new question moves above "Language quality"
    expect(rows.nth(3).locator("input[name$=-label]")).to_have_value("Терминология")
    rows.nth(3).locator("input[name$=-required]").uncheck()
    editor.locator("button[value=remove-0]").click()  # "Realism" goes
    expect(rows).to_have_count(4)
    editor.locator("[data-testid=save-questions]").click()
    expect(page.locator("[data-testid=question-errors]")).to_be_visible()
    expect(editor.locator("ul.errorlist")).to_contain_text("is not allowed")
    bad = editor.locator("input[name$=-key]").nth(2)
    expect(bad).to_have_value("термины")
    bad.fill("terminology")
    editor.locator("[data-testid=save-questions]").click()
    expect(page.locator(".messages")).to_contain_text("Question set saved.")
    expect(rows).to_have_count(4)
    expect(rows.nth(2).locator("input[name$=-key]")).to_have_value("terminology")
    expected = copy.deepcopy(DEFAULT_QUESTIONS)
    expected["origin"]["label"] = "Кто написал запись: врач или модель?"
    expected["likert"] = [{"key": "plausibility", "label": "Medical plausibility"},
                          {"key": "consistency", "label": "Consistency with the stated diagnosis"},
                          {"key": "terminology", "label": "Терминология", "required": False},
                          {"key": "language", "label": "Language quality"}]
    assert Study.objects.get(pk=study.pk).questions == expected
    assert problems == []  # no script error and no Content-Security-Policy violation
