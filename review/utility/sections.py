"""What utility adds to a release's page and dataset card, through medsyn_site.core.sections (registered in
UtilityConfig.ready): releases never imports utility. The engine's modules (scikit-learn) are imported when a section
is asked for, not when the app loads."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from review.releases.export import markdown_cell
from review.releases.models import Release

from .models import UTILITY_PERMISSION
from .selectors import utility_command_line, utility_latest_for_release

CARD_METRICS = {"accuracy": "accuracy", "hit3": "Hit@3", "hit5": "Hit@5", "macro_f1": "macro-F1"}


def utility_card_section(release: Release) -> str | None:
    """The "Utility" section of the release's dataset card (English, as the card is): the latest finished
    evaluation of its synthetic notes, every cell on all codes, and the command that repeats it; None without one."""
    evaluation = utility_latest_for_release(release)
    if evaluation is None:
        return None
    from .metrics import METRICS
    from .results import metric_shown, result_load, training_mean

    result = result_load(evaluation.result)
    inputs = result.inputs
    real, scored, synthetic = inputs["real"], inputs["evaluation"], inputs["synthetic"]
    scored_name = (f"the evaluation set {scored.get('evaluation_set') or scored.get('file')}"
                   if scored["kind"] == "file" else f"real notes of split `{scored.get('split')}`")
    lines = [
        "## Utility for ICD-10 code prediction",
        "",
        f"Measured by utility evaluation {evaluation.pk} ({evaluation.finished_at:%Y-%m-%d}): the classifier "
        f"`{inputs['classifier']['name']}` ({markdown_cell(inputs['classifier']['description'])}) trained on real "
        f"notes of split `{real.get('split')}` ({real['notes']} notes, SHA-256 `{real['sha256']}`) with and without "
        f"the {synthetic['notes']} synthetic notes of this release (SHA-256 `{synthetic['sha256']}`), scored on "
        f"{markdown_cell(scored_name)} ({scored['notes']} notes, SHA-256 `{scored['sha256']}`); labels: "
        f"{inputs['label']}; {len(inputs['seeds'])} seed(s), {inputs['bootstrap']} bootstrap resamples. Percentages "
        "with 95 % bootstrap intervals; Δ: the difference from the cell's real-only baseline in points, with the "
        "paired bootstrap test's p.",
        "",
        "| cell | training notes (real + synthetic, mean over seeds) | " + " | ".join(CARD_METRICS.values()) + " |",
        "|---|---|" + "---|" * len(CARD_METRICS),
    ]
    for cell in result.cells:
        shown = []
        for metric in METRICS:
            value = metric_shown(cell.metrics["all"][metric])
            text = f"{value['value']} ({value['interval']})"
            if value["delta"]:
                text += f", Δ {value['delta']} ({value['p']})"
            shown.append(text)
        lines.append(f"| {markdown_cell(cell.key)} | {training_mean(cell, 'real')} + "
                     f"{training_mean(cell, 'synthetic')} | "
                     + " | ".join(shown) + " |")
    lines += ["", "The same evaluation on the server that made this release:", "",
              f"```\n{utility_command_line(evaluation)}\n```"]
    return "\n".join(lines)


def utility_release_page_section(request: HttpRequest, release: Release) -> SafeString | None:
    """The release page's utility block: the latest evaluation's headline for whoever sees the release; links to
    it and to a new evaluation for those who may run evaluations."""
    can_view = request.user.has_perm(f"medsyn_site.{UTILITY_PERMISSION}")
    evaluation = utility_latest_for_release(release)
    if evaluation is None and not can_view:
        return None
    from .results import headline, result_load

    summary = headline(result_load(evaluation.result)) if evaluation is not None else None
    return render_to_string("review/utility/_release_block.html", {
        "release": release, "utility": evaluation, "headline": summary, "can_view": can_view}, request=request)
