"""Release export at scale: a 100k-note release written to Parquet, JSONL and CSV (+ dataset card, checksums).

The product's export (review.releases.release_export_run: one streaming pass over the snapshot) and a naive
load-everything baseline (every row in a list of dicts, then json / pandas.to_csv / pandas.to_parquet) each run in
a fresh Python process against the same PostgreSQL, so each peak RSS is its own process's (Django loaded in both).

Run: .venv/bin/python bench/bench_release_export.py [--notes 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

VOCABULARY = ("жалобы на кашель с мокротой насморк слабость температура до 38 в течение трёх дней боль в горле "
                   "головная боль ломота в теле одышка при нагрузке давящие боли за грудиной отёки голеней к вечеру "
                   "изжога после еды тяжесть в эпигастрии тошнота снижение аппетита бессонница тревога сердцебиение")
WORDS = VOCABULARY.split()
SYSTEM = ("Ты врач. Используй только перечисленные симптомы; не описывай болезнь в общем; следуй стилю примера, "
          "не копируя его факты; без приветствий, примечаний и вопросов; отвечай по-русски. ") * 2


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def seed(n_notes: int) -> int:
    """n approved, checked synthetic notes (~80-word text, ~1 KB prompt with an example) and their release."""
    from django.contrib.auth.models import User

    from generation.models import Note
    from generation.services import note_content_hash
    from review.curation.models import NoteCuration, ReviewState
    from review.releases.services import do_create_release

    def store(notes: list[Note]) -> None:
        """The notes, approved and passed by both scans at their version (as a release needs them)."""
        Note.objects.bulk_create(notes)
        NoteCuration.objects.bulk_create(NoteCuration(note=note, state=ReviewState.APPROVED,
                                                      memorisation_checked_version=1, duplicates_checked_version=1)
                                         for note in notes)

    rng = random.Random(7)
    started = time.perf_counter()
    batch = []
    for i in range(n_notes):
        code = f"J{i % 90 + 10:02d}.{i % 7}"
        text = f"{_text(rng, rng.randint(40, 120))} «Запись {i}»,\n\"контроль\" через неделю."
        example = _text(rng, 50)
        batch.append(Note(
            origin="synthetic", text=text, icd_code=code, icd_category=code[:3], source_dataset="bench",
            content_hash=note_content_hash(origin="synthetic", icd_code=code, text=text), metadata={
                "job_id": 1 + i % 5, "generation_model": ("gpt-4", "llama-2-7b-lora")[i % 2],
                "prompt_variant": ("symptoms_example", "symptoms", "code")[i % 3],
                "symptoms": ["кашель", "слабость", "температура"], "example_text": example,
                "prompt": {"system": SYSTEM, "user": f"Представь, что ты врач. Вот анамнез: {example} Напиши похожий."},
                "graph_version": "bench-graph",
                "prompt_template": {"name": "default-symptoms_example-ru", "version": 1},
                "model_config": {"name": "gpt-4", "backend": "openai"},
                "checks": {"passed": i % 10 != 0, "scores": {"symptom_recall": 0.8, "example_precision": 0.5}}}))
        if len(batch) == 5000:
            store(batch)
            batch = []
    store(batch)
    print(f"seeded {n_notes} approved notes in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    release = do_create_release(actor=User.objects.create_user("bench_curator"), name="bench", filters={})
    print(f"do_create_release froze {release.note_count} notes in {time.perf_counter() - started:.1f} s")
    return release.pk


def child_product(release_id: int) -> None:
    from medsyn_site.core.models import JobStatus
    from review.releases.models import ReleaseExport
    from review.releases.services import release_export_run

    ReleaseExport.objects.filter(release_id=release_id).update(status=JobStatus.QUEUED)
    release_export_run(release_id)
    export = ReleaseExport.objects.get(release_id=release_id)
    assert export.status == JobStatus.DONE, export.error
    print(json.dumps({f["path"]: f["bytes"] for f in export.files}), file=sys.stderr)


def child_naive(release_id: int) -> None:
    import pandas as pd
    from django.conf import settings

    from review.releases.models import ReleaseNote

    rows = [{"idx": idx, "ICD-10": code, "response": text, **fields} for idx, code, text, fields in
            ReleaseNote.objects.filter(release_id=release_id).order_by("idx")
            .values_list("idx", "icd_code", "text", "fields")]
    folder = Path(settings.RELEASES_DIR) / "naive"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                                        encoding="utf-8")
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "train.csv", index=False)
    frame.to_parquet(folder / "train.parquet")


def peak_rss_kb() -> int:
    """VmHWM of this process: ru_maxrss would carry over the parent's peak across fork and exec on Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(mode: str, release_id: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one export in a fresh process."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--child", mode, "--release", str(release_id)],
                            env=os.environ.copy(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{mode} export failed:\n{result.stderr[-3000:]}")
    peak_kb = int(result.stdout.strip().splitlines()[-1])
    return seconds, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--child", choices=["product", "naive", "idle"])
    parser.add_argument("--release", type=int)
    args = parser.parse_args()
    if args.child:
        import django

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

        django.setup()
        if args.child != "idle":
            {"product": child_product, "naive": child_naive}[args.child](args.release)
        print(peak_rss_kb())
        return

    from _services import bench_services_start

    bench_services_start(graph=True)  # its Redis is the broker the release's export message goes to (unread)
    release_id = seed(args.notes)
    _, idle = run_child("idle", release_id)
    product_s, product_mb = run_child("product", release_id)
    naive_s, naive_mb = run_child("naive", release_id)
    print(f"export of {args.notes} notes to Parquet + JSONL + CSV (+ card and checksums for the product), "
          "each in a fresh process (process start and Django setup included):")
    print(f"  process with Django loaded, idle:  peak RSS {idle:.0f} MB")
    print(f"  product (streaming):  {product_s:.1f} s, peak RSS {product_mb:.0f} MB   (targets < 20 s, < 500 MB)")
    print(f"  naive (load everything):  {naive_s:.1f} s, peak RSS {naive_mb:.0f} MB")
    print(f"  ratio naive / product:  time {naive_s / product_s:.2f}x, peak memory {naive_mb / product_mb:.2f}x")


if __name__ == "__main__":
    main()
