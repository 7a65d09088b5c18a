"""The utility pages: who may see them, the new-evaluation form (a release preselected by ?release=), the upload
page listing every bad line, the evaluation page polled while it runs and, once done, the heat map, the lift chart,
the tables, the inputs and the command line; downloads; every user-chosen text escaped in the SVG; what the release
page and the dataset card get through core.sections."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.urls import reverse

from medsyn_site.core.models import JobStatus
from medsyn_site.core.sections import release_card_sections, release_page_sections
from medsyn_site.core.svg import HeatCell, SignedBar, heat_map_svg, signed_bars_svg
from review.utility.evaluation import REAL_ONLY
from review.utility.jobs import utility_evaluation_run
from review.utility.models import EvaluationSet, UtilityEvaluation
from review.utility.services import do_start_utility_evaluation, do_upload_evaluation_set
from tests.medsyn_site.core.test_job_hosts import chunks_on_two_hosts, hosts_line
from tests.review.utility.conftest import rumedtop3_lines

QUICK = {"grid": "quick", "seeds": 1, "bootstrap": 100, "classifier": "tfidf-svm"}
HOSTILE = '<script>alert("x")</script>'


def start(**arguments) -> UtilityEvaluation:
    return do_start_utility_evaluation(**{"real_split": "train", "evaluation_split": "dev", **QUICK, **arguments},
                                       actor=None, enqueue=False)


def finished(**arguments) -> UtilityEvaluation:
    evaluation = start(**arguments)
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.DONE, evaluation.error
    return evaluation


@pytest.fixture
def researcher(client, make_user):
    client.force_login(make_user("researcher"))
    return client


@pytest.mark.parametrize("role, status", [("physician", 403), ("curator", 403), ("researcher", 200),
                                          ("admin", 200)])
def test_the_pages_are_for_researchers_and_admins(client, make_user, stored_splits, role, status):
    evaluation = start()
    client.force_login(make_user(role))
    for name, kwargs in (("evaluations", {}), ("evaluation_new", {}), ("sets", {}),
                         ("evaluation", {"pk": evaluation.pk})):
        assert client.get(reverse(f"utility:{name}", kwargs=kwargs)).status_code == status, name


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    answer = client.get(reverse("utility:evaluations"))
    assert answer.status_code == 302 and answer["Location"].startswith(reverse("login"))


def test_the_form_preselects_a_release_and_starts_an_evaluation(researcher, stored_splits, release):
    page = researcher.get(reverse("utility:evaluation_new") + f"?release={release.pk}").content.decode()
    assert '<option value="release" selected>' in page
    assert f'<option value="{release.pk}" selected>' in page
    assert '<option value="split:dev" selected>' in page and '<option value="train" selected>' in page
    answer = researcher.post(reverse("utility:evaluation_new"), {
        "real_split": "train", "synthetic": "release", "release": release.pk, "evaluation": "split:dev",
        "classifier": "tfidf-svm", "grid": "quick", "seeds": "2", "upsample_to": "50", "held_out_codes": "g43",
        "held_out_count": "5", "bootstrap": "200", "max_overlap": "0.01"})
    evaluation = UtilityEvaluation.objects.get()
    assert answer.status_code == 302 and answer["Location"] == reverse("utility:evaluation", kwargs={
        "pk": evaluation.pk})
    assert (evaluation.release, evaluation.evaluation_split, evaluation.seeds, evaluation.held_out_codes) == (
        release, "dev", 2, ["G43"])


def test_the_form_shows_the_services_refusal_by_field(researcher, stored_splits):
    answer = researcher.post(reverse("utility:evaluation_new"), {
        "real_split": "train", "synthetic": "none", "evaluation": "split:train", "classifier": "tfidf-lr",
        "grid": "quick", "seeds": "1", "upsample_to": "50", "held_out_count": "5", "bootstrap": "100",
        "max_overlap": "0.01", "approved_code": "J06"})
    page = answer.content.decode()
    assert answer.status_code == 400 and not UtilityEvaluation.objects.exists()
    assert "The evaluation split is the training split" in page
    assert "A filter selects approved notes" in page


def test_the_upload_page_lists_every_bad_line_and_stores_a_good_file(researcher, notes_by_role):
    bad = SimpleUploadedFile("broken.jsonl", b'{"idx": "a", "symptoms": "x", "code": "J06"}\n{"idx": 2}\nnope\n')
    answer = researcher.post(reverse("utility:sets"), {"name": "broken", "file": bad})
    page = answer.content.decode()
    assert answer.status_code == 400 and not EvaluationSet.objects.exists()
    assert "broken.jsonl: 2 problems, nothing was stored" in page
    assert "line 2" in page and "line 3" in page and "not valid JSON" in page
    good = SimpleUploadedFile("dev.jsonl", rumedtop3_lines(notes_by_role["evaluation"]).encode())
    answer = researcher.post(reverse("utility:sets"), {"name": HOSTILE, "file": good})
    assert answer.status_code == 302
    stored = EvaluationSet.objects.get()
    page = researcher.get(reverse("utility:sets")).content.decode()
    assert stored.sha256 in page and HOSTILE not in page and "&lt;script&gt;" in page
    download = researcher.get(reverse("utility:set_download", kwargs={"pk": stored.pk}))
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert len(lines) == 20 and json.loads(lines[0])["code"] == notes_by_role["evaluation"][0][1]


def test_a_running_evaluation_is_polled_and_a_finished_one_stops_the_polling(researcher, stored_splits):
    evaluation = start()
    url = reverse("utility:evaluation", kwargs={"pk": evaluation.pk})
    page = researcher.get(url).content.decode()
    assert f'hx-get="{url}"' in page and 'data-testid="cancel-evaluation"' in page
    polled = researcher.get(url, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "<html" not in polled.content.decode()
    utility_evaluation_run(evaluation.pk)
    polled = researcher.get(url, headers={"HX-Request": "true"})
    assert polled.status_code == 286  # htmx: stop polling
    assert 'data-testid="heat-map"' in polled.content.decode()  # the result arrives with the last poll


def test_the_result_page_shows_the_grid_the_lift_the_tables_and_the_inputs(researcher, stored_splits, release):
    evaluation = finished(synthetic="release", release=release, held_out_codes=["G43"])
    url = reverse("utility:evaluation", kwargs={"pk": evaluation.pk})
    page = researcher.get(url).content.decode()
    assert 'hx-get' not in page
    assert 'data-testid="heat-map"' in page and "<svg" in page
    assert 'data-testid="heat-cell-real=1-synthetic=1"' in page and 'data-testid="heat-cell-real=1-synthetic=0"' in page
    assert 'data-testid="lift-chart"' in page and page.count('data-testid="bar"') == 5  # one bar a code
    assert 'data-testid="cells-table"' in page and 'data-cell="upsampling"' in page
    assert 'data-testid="subset-held_out"' in page and 'data-testid="subset-rarest"' in page
    assert 'data-testid="chapters-table"' in page
    assert release.content_sha256 in page and evaluation.result["inputs"]["evaluation"]["sha256"] in page
    assert "scikit-learn" in page and "&quot;C&quot;: 0.3" in page  # versions and the classifier's parameters
    assert "evaluate_utility --real-split train --release medsyn-ru:1 --eval-split dev" in page
    hit3 = researcher.get(url + "?metric=hit3&cell=upsampling").content.decode()
    assert "Hit@3 on the evaluation set" in hit3 and '<option value="upsampling" selected>' in hit3
    assert researcher.get(url + "?metric=<b>&cell=nope").status_code == 200  # unknown choices fall back


def test_the_downloads_hold_the_result(researcher, stored_splits, approved_synthetic):
    evaluation = finished(synthetic="approved")
    kwargs = {"pk": evaluation.pk}
    result = json.loads(researcher.get(reverse("utility:evaluation_json", kwargs=kwargs)).content)
    assert result == evaluation.result
    metrics = list(csv.DictReader(io.StringIO(researcher.get(
        reverse("utility:evaluation_metrics_csv", kwargs=kwargs)).content.decode())))
    real_only = next(row for row in metrics if row["cell"] == REAL_ONLY and row["subset"] == "all"
                     and row["metric"] == "accuracy")
    assert float(real_only["value"]) == pytest.approx(
        next(cell for cell in result["cells"] if cell["key"] == REAL_ONLY)["metrics"]["all"]["accuracy"]["value"])
    per_code = list(csv.reader(io.StringIO(researcher.get(
        reverse("utility:evaluation_per_code_csv", kwargs=kwargs)).content.decode())))
    assert per_code[0][:3] == ["code", "chapter", "evaluation_notes"] and len(per_code) == 6
    unfinished = start()
    assert researcher.get(reverse("utility:evaluation_json", kwargs={"pk": unfinished.pk})).status_code == 404


def test_cancel_and_run_again(researcher, stored_splits):
    evaluation = start()
    researcher.post(reverse("utility:evaluation_cancel", kwargs={"pk": evaluation.pk}))
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.CANCELLED
    again = researcher.post(reverse("utility:evaluation_cancel", kwargs={"pk": evaluation.pk}), follow=True)
    assert "has already finished" in again.content.decode()
    answer = researcher.post(reverse("utility:evaluation_repeat", kwargs={"pk": evaluation.pk}))
    repeated = UtilityEvaluation.objects.exclude(pk=evaluation.pk).get()
    assert answer["Location"] == reverse("utility:evaluation", kwargs={"pk": repeated.pk})
    assert (repeated.status, repeated.grid, repeated.seeds, repeated.classifier) == (JobStatus.QUEUED, "quick", 1,
                                                                                     "tfidf-svm")


def test_user_chosen_names_are_escaped_in_the_charts_and_the_pages(researcher, stored_splits, notes_by_role):
    svg = heat_map_svg(title=HOSTILE, rows=[HOSTILE], columns=['"><b>'],
                       cells={(0, 0): HeatCell(text=HOSTILE, detail=HOSTILE, shade=0.5, tooltip=HOSTILE)})
    bars = signed_bars_svg(title=HOSTILE, bars=[SignedBar(label=HOSTILE, value=-0.1, text=HOSTILE)])
    for drawn in (svg, bars):
        assert "<script>" not in drawn and '"><b>' not in drawn and "&lt;script&gt;" in drawn
    hostile_set = do_upload_evaluation_set(name=HOSTILE, upload=SimpleUploadedFile(
        "<i>dev</i>.jsonl", rumedtop3_lines(notes_by_role["evaluation"]).encode()), actor=None)
    evaluation = finished(evaluation_split="", evaluation_set=hostile_set)
    page = researcher.get(reverse("utility:evaluation", kwargs={"pk": evaluation.pk})).content.decode()
    assert HOSTILE not in page and "<i>dev</i>" not in page and "&lt;script&gt;" in page
    listed = researcher.get(reverse("utility:evaluations")).content.decode()
    assert HOSTILE not in listed


def test_the_release_page_and_card_get_the_latest_evaluation_through_core_sections(stored_splits, release,
                                                                                  make_user):
    request = RequestFactory().get("/")
    request.user = make_user("curator")
    assert release_page_sections.render(request, release) == []  # nothing to show a curator yet
    assert release_card_sections.render(release) == []
    request.user = make_user("researcher")
    [offer] = release_page_sections.render(request, release)
    assert f"?release={release.pk}" in offer and "No utility evaluation of this release yet." in offer

    evaluation = finished(synthetic="release", release=release)
    [card] = release_card_sections.render(release)
    assert card.startswith("## Utility for ICD-10 code prediction")
    assert evaluation.result["inputs"]["synthetic"]["sha256"] in card
    assert "| real=1 synthetic=1 |" in card and "Δ" in card
    assert "manage.py evaluate_utility --real-split train --release medsyn-ru:1" in card
    request.user = make_user("curator")
    [block] = release_page_sections.render(request, release)
    assert "accuracy" in block and reverse("utility:evaluation", kwargs={"pk": evaluation.pk}) not in block


def test_an_evaluation_of_an_exported_release_reaches_its_page_and_its_dataset_card(
        stored_splits, release, client, make_user, settings, tmp_path, django_capture_on_commit_callbacks):
    from review.releases.export import folder_verify
    from review.releases.services import release_export_run

    settings.RELEASES_DIR = tmp_path / "releases"
    release_export_run(release.pk)
    release.export.refresh_from_db()
    folder = settings.RELEASES_DIR / release.export.folder
    assert "## Utility for ICD-10 code prediction" not in (folder / "README.md").read_text(encoding="utf-8")

    with django_capture_on_commit_callbacks(execute=True):  # the card is rewritten once the result is committed
        evaluation = finished(synthetic="release", release=release)
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Utility for ICD-10 code prediction" in card
    assert evaluation.result["inputs"]["synthetic"]["sha256"] in card
    assert card.index("## Utility") < card.index("## Provenance")
    assert folder_verify(folder) == []  # SHA256SUMS rewritten with the new card, the data files unchanged
    release.export.refresh_from_db()
    listed = {entry["path"]: entry["sha256"] for entry in release.export.files}
    assert listed["README.md"] in (folder / "SHA256SUMS").read_text(encoding="utf-8")

    client.force_login(make_user("researcher"))
    page = client.get(reverse("releases:release_detail", args=[release.pk])).content.decode()
    assert reverse("utility:evaluation", kwargs={"pk": evaluation.pk}) in page


def test_an_evaluation_shows_which_workers_ran_its_fits(researcher, stored_splits):
    evaluation = start()
    url = reverse("utility:evaluation", kwargs={"pk": evaluation.pk})
    assert 'data-testid="evaluation-hosts"' not in researcher.get(url).content.decode()
    chunks_on_two_hosts(UtilityEvaluation.objects.get(pk=evaluation.pk))
    line = hosts_line(researcher.get(url, HTTP_HX_REQUEST="true").content.decode(), "evaluation-hosts")
    assert "gpu-a@host-one (2 chunks done, 0 running)" in line and "gpu-b@host-two" in line
