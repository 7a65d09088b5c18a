from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from medsyn_site.core.errors import InputError
from medsyn_site.core.forms import form_errors_text
from medsyn_site.core.progress import command_progress_bar
from review.curation.forms import CurationFilterForm
from review.releases.forms import RELEASE_FILTER_KEYS
from review.utility.classifiers import CLASSIFIERS, DEFAULT_CLASSIFIER
from review.utility.datasets import (
    approved_synthetic_notes,
    evaluation_set_notes,
    evaluation_set_read,
    real_notes_of_split,
    release_find,
    release_synthetic_notes,
)
from review.utility.evaluation import GRIDS, UtilityPlan, utility_evaluate, utility_table
from review.utility.models import EvaluationSet
from review.utility.overlap import OverlapRefused, OverlapThresholds


class Command(BaseCommand):
    help = ("Measure the utility of synthetic notes for ICD-10 code prediction: train on real notes of a split, "
            "plus a release's synthetic notes (or approved ones) on the grid's cells, score on an evaluation set; "
            "with a progress bar, the grid table on stdout and every figure and input in --json. Without --release "
            "or --approved it evaluates real notes only.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--real-split", required=True, help="split of the real training notes, e.g. train")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--release", metavar="NAME[:VERSION]", help="synthetic notes of this release")
        source.add_argument("--approved", action="store_true",
                            help="synthetic notes: the approved notes a release would take now (see --filter)")
        parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                            help="with --approved: a curation queue filter, e.g. code=J06 (repeatable)")
        evaluation = parser.add_mutually_exclusive_group(required=True)
        evaluation.add_argument("--eval-file", type=Path, help="a labelled RuMedTop3 jsonl file (idx, symptoms, code)")
        evaluation.add_argument("--eval-split", help="real notes of this split, e.g. dev")
        evaluation.add_argument("--eval-set", metavar="NAME", help="an evaluation set uploaded on the utility pages")
        parser.add_argument("--classifier", choices=sorted(CLASSIFIERS), default=DEFAULT_CLASSIFIER)
        parser.add_argument("--grid", choices=sorted(GRIDS), default="paper")
        parser.add_argument("--seeds", type=int, default=3, help="subsampling seeds 0 .. N-1")
        parser.add_argument("--upsample-to", type=int, default=UtilityPlan.upsample_to)
        parser.add_argument("--held-out-codes", default="", help="comma-separated codes for the out-of-training "
                                                                 "cell (default: drawn with the first seed)")
        parser.add_argument("--held-out-count", type=int, default=UtilityPlan.held_out_count)
        parser.add_argument("--bootstrap", type=int, default=UtilityPlan.bootstrap)
        parser.add_argument("--max-overlap", type=float, default=OverlapThresholds.max_share,
                            help="refuse when more than this share of evaluation notes occur in the real training "
                                 "notes")
        parser.add_argument("--jobs", type=int, default=1, help="processes fitting cells at once (same results)")
        parser.add_argument("--json", type=Path, help="write the result here")

    def handle(self, *args, real_split: str, release: str | None, approved: bool, filter: list[str],
               eval_file: Path | None, eval_split: str | None, eval_set: str | None, classifier: str, grid: str,
               seeds: int, upsample_to: int, held_out_codes: str, held_out_count: int, bootstrap: int,
               max_overlap: float, jobs: int, json: Path | None, **options) -> None:
        if filter and not approved:
            raise CommandError("--filter selects approved notes: give --approved with it")
        if seeds < 1:
            raise CommandError("--seeds: at least 1")
        try:
            real = real_notes_of_split(real_split)
            if eval_file is not None:
                if not eval_file.is_file():
                    raise CommandError(f"{eval_file}: no such file")
                evaluation = evaluation_set_read(eval_file)
            elif eval_set is not None:
                stored = EvaluationSet.objects.filter(name=eval_set).first()
                if stored is None:
                    raise CommandError(f"no evaluation set named {eval_set}")
                evaluation = evaluation_set_notes(stored)
            else:
                evaluation = real_notes_of_split(eval_split)
            synthetic = None
            if release:
                synthetic = release_synthetic_notes(release_find(release))
            elif approved:
                synthetic = approved_synthetic_notes(self._filters(filter))
            self.stdout.write(f"real training notes: {real.name} ({len(real)}); evaluation: {evaluation.name} "
                              f"({len(evaluation)}); synthetic: "
                              + (f"{synthetic.name} ({len(synthetic)})" if synthetic is not None else "none"))
            plan = UtilityPlan(classifier=classifier, grid=grid, seeds=tuple(range(seeds)), upsample_to=upsample_to,
                               held_out_codes=tuple(code.strip().upper() for code in held_out_codes.split(",")
                                                    if code.strip()),
                               held_out_count=held_out_count, bootstrap=bootstrap,
                               overlap=OverlapThresholds(max_share=max_overlap), jobs=jobs)
            with command_progress_bar(self, f"utility ({classifier})", unit="fit") as progress:
                result = utility_evaluate(real=real, evaluation=evaluation, synthetic=synthetic, plan=plan,
                                          progress=progress)
        except InputError as error:
            for problem in error.report():
                where = f"line {problem['line']}: " if problem["line"] else ""
                self.stderr.write(f"{error.source}: {where}{problem['message']}")
            raise CommandError(f"{error.source}: {len(error.problems)} problem(s); nothing was evaluated") from None
        except OverlapRefused as error:
            self._overlap_write(error.report.describe())
            raise CommandError(" ".join(error.messages)) from None
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self._overlap_write(result.overlap)
        self.stdout.write(f"trained on {result.pool['real']} real and {result.pool['synthetic']} synthetic notes "
                          f"({result.pool['synthetic_outside_labels']} synthetic left out: codes outside the task), "
                          f"{result.pool['labels']} codes; {result.timings['fits']} fits in "
                          f"{result.timings['fits_s']:.0f} s")
        self.stdout.write(utility_table(result))
        if json is not None:
            result.json_write(json)
            self.stdout.write(self.style.SUCCESS(f"written: {json}"))

    def _filters(self, items: list[str]) -> dict:
        form = CurationFilterForm(dict(item.split("=", 1) for item in items if "=" in item),
                                  known_keys=RELEASE_FILTER_KEYS)  # an ignored key would take every note
        if not form.is_valid() or any("=" not in item for item in items):
            raise CommandError(f"bad --filter: {form_errors_text(form) or items}")
        return form.filters()

    def _overlap_write(self, overlap: dict) -> None:
        real, synthetic = overlap["real"], overlap["synthetic"]
        self.stdout.write(
            f"overlap with the evaluation set: {overlap['evaluation_overlapped']} of {overlap['evaluation_notes']} "
            f"evaluation notes ({100 * overlap['share']:.1f} %, at most {100 * overlap['max_share']:.1f} % allowed); "
            f"real notes left out {real['excluded']} (exact {real['exact']}, near duplicates "
            f"{real['near_duplicate']}); synthetic notes left out {synthetic['excluded']} (exact {synthetic['exact']}, "
            f"near duplicates {synthetic['near_duplicate']}, memorised {synthetic['memorised']})")
