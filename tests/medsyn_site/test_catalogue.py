"""The Russian catalogue is complete: every string marked for translation in the code and the templates has a Russian
translation (not fuzzy, placeholders kept), and no template shows English text that is not marked."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command

SOURCE_FOLDERS = ("medsyn_site", "graph", "generation", "review", "templates")
CATALOGUE = settings.BASE_DIR / "locale" / "ru" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|%[sd]|\{\w*\}|</?\w+[^>]*>")
# Words a template may show untranslated: names, notation of the paper, units, technical tokens.
UNTRANSLATED_WORDS = {"MedSyn", "Studio", "N_exmp", "N_symp", "LoRA", "alpha", "dropout", "lr", "ms", "Enter",
                      "Mann", "Whitney", "Krippendorff", "SHA", "jsonl", "zip", "train", "datasets", "Hit", "JSON",
                      "CSV", "API", "ROC", "AUC", "macro", "F1", "seed", "htmx", "TF", "IDF"}
ICD10_CODE = re.compile(r"[A-Z]\d\d[0-9A-Z]*")
TEMPLATE_TAG = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}", re.S)
TRANS_BLOCK = re.compile(r"{%\s*blocktrans(?:late)?\b.*?{%\s*endblocktrans(?:late)?\s*%}", re.S)
CODE_BLOCK = re.compile(r"<(script|style|code|pre|svg)\b.*?</\1>", re.S)
VISIBLE_ATTRIBUTE = re.compile(r'\b(?:title|placeholder|aria-label|alt)="([^"]*)"')


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> polib.POFile:
    """Every marked string, extracted as `manage.py makemessages -l ru` does, into a scratch project: links to the
    source folders and an empty locale folder (run in the real tree, makemessages writes into its locale/)."""
    if shutil.which("xgettext") is None:
        pytest.fail("GNU gettext is missing: `make test` installs it (apt-get install gettext)")
    scratch = tmp_path_factory.mktemp("catalogue")
    for folder in SOURCE_FOLDERS:
        (scratch / folder).symlink_to(settings.BASE_DIR / folder, target_is_directory=True)
    here = os.getcwd()
    os.chdir(scratch)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(settings, "LOCALE_PATHS", [scratch / "locale"])
            call_command("makemessages", locale=["ru"], verbosity=0, no_obsolete=True, symlinks=True,
                         ignore_patterns=["*/migrations/*", "*/__pycache__/*"])
    finally:
        os.chdir(here)
    return polib.pofile(str(scratch / "locale" / "ru" / "LC_MESSAGES" / "django.po"))


def test_every_marked_string_has_a_russian_translation(extracted):
    shipped = {(entry.msgctxt, entry.msgid): entry for entry in polib.pofile(str(CATALOGUE))
               if not entry.obsolete}
    missing, fuzzy, empty, broken = [], [], [], []
    for entry in extracted:
        where = f"{entry.msgid!r} ({entry.occurrences[0][0] if entry.occurrences else '?'})"
        found = shipped.get((entry.msgctxt, entry.msgid))
        if found is None:
            missing.append(where)
        elif found.fuzzy:
            fuzzy.append(where)
        elif not (all(found.msgstr_plural.values()) if found.msgid_plural else found.msgstr):
            empty.append(where)
        elif not found.msgid_plural and set(PLACEHOLDER.findall(found.msgstr)) != set(PLACEHOLDER.findall(entry.msgid)):
            broken.append(where)  # (a plural form may leave out the number, as "one note" may)
    assert not missing, f"{len(missing)} strings not in locale/ru (run makemessages, then translate): {missing[:20]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy translations: {fuzzy[:20]}"
    assert not empty, f"{len(empty)} untranslated strings: {empty[:20]}"
    assert not broken, f"{len(broken)} translations lose a placeholder or tag: {broken[:20]}"


def _unmarked(source: str) -> list[str]:
    source = CODE_BLOCK.sub(" ", TRANS_BLOCK.sub(" ", source))
    attributes = [value for value in VISIBLE_ATTRIBUTE.findall(source) if not TEMPLATE_TAG.fullmatch(value.strip())]
    text = re.sub(r"<[^>]*>", "\n", TEMPLATE_TAG.sub("\n", source))
    fragments = [line.strip() for line in text.splitlines()] + [TEMPLATE_TAG.sub(" ", value) for value in attributes]
    return [fragment for fragment in fragments
            if any(word not in UNTRANSLATED_WORDS and not ICD10_CODE.fullmatch(word)
                   for word in re.findall(r"[A-Za-z][A-Za-z_0-9]{2,}", fragment))]


def test_no_template_shows_unmarked_english():
    found = {}
    for path in sorted(Path(settings.BASE_DIR, "templates").rglob("*.html")):
        if unmarked := _unmarked(path.read_text(encoding="utf-8")):
            found[str(path.relative_to(settings.BASE_DIR))] = unmarked
    assert found == {}


def test_the_unmarked_text_finder_finds_what_it_should():
    assert _unmarked("<p>{% trans 'Hello' %} Welcome back</p>") == ["Welcome back"]
    assert _unmarked('<a title="Open the note">x</a>') == ["Open the note"]
    assert _unmarked("<p>{% blocktrans %}Hello {{ name }}{% endblocktrans %}</p><script>let x = 1;</script>") == []
    assert _unmarked("<title>{% block title %}{% endblock %} · MedSyn Studio</title>") == []
