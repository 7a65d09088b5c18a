"""The translation catalogues (locale/<lang>/LC_MESSAGES/django.po) compiled to the .mo files Django reads, in pure
Python (polib), so a fresh clone needs no GNU gettext to run in Russian: `make up` and `make test` compile what is
out of date (python -m medsyn_site.catalogue), and so does the test suite at its start. Fuzzy entries are left out,
as msgfmt leaves them out."""

from __future__ import annotations

import sys
from pathlib import Path

import polib

LOCALE = Path(__file__).resolve().parent.parent / "locale"


def catalogues_compile(locale: Path = LOCALE, *, force: bool = False) -> list[Path]:
    """Compile every .po whose .mo is missing or older; the .mo files written."""
    written = []
    for po_path in sorted(locale.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        catalogue = polib.pofile(str(po_path))
        for entry in catalogue.fuzzy_entries():
            catalogue.remove(entry)
        temporary = mo_path.with_suffix(".mo.tmp")
        catalogue.save_as_mofile(str(temporary))
        temporary.replace(mo_path)  # a reader never sees half a file
        written.append(mo_path)
    return written


if __name__ == "__main__":
    for path in catalogues_compile(force="--force" in sys.argv[1:]):
        print(f"compiled {path.relative_to(LOCALE.parent)}")
