"""Content-Security-Policy: every answer carries it, and no template needs what it forbids (inline script, on*
handler attributes, eval-driven htmx). The browser side is in test_security_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from medsyn_site.security import csp_header_value

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"
EXPECTED_POLICY = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; "
                   "frame-ancestors 'none'; form-action 'self'; img-src 'self' data:; "
                   "style-src 'self' 'unsafe-inline'")


def test_the_policy_is_the_agreed_one():
    assert csp_header_value(settings.CONTENT_SECURITY_POLICY) == EXPECTED_POLICY


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/profile/", "/status/", "/admin/",
                                  "/admin/auth/user/", "/api/me/", "/api/docs/", "/healthz"])
def test_every_answer_has_the_header(client, make_user, path):
    client.force_login(make_user("admin"))
    response = client.get(path)
    assert response.status_code in (200, 503), (path, response.status_code)
    assert response["Content-Security-Policy"] == EXPECTED_POLICY


@pytest.mark.django_db
def test_anonymous_pages_and_errors_have_the_header(client):
    assert client.get("/accounts/login/")["Content-Security-Policy"] == EXPECTED_POLICY
    assert client.get("/no/such/page/")["Content-Security-Policy"] == EXPECTED_POLICY


@pytest.mark.django_db
def test_report_only_mode(client, settings):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = True
    response = client.get("/accounts/login/")
    assert response["Content-Security-Policy-Report-Only"] == EXPECTED_POLICY
    assert "Content-Security-Policy" not in response


@pytest.mark.django_db
def test_swagger_ui_loads_its_start_up_script_as_a_file(client, make_user):
    client.force_login(make_user("researcher"))
    html = client.get("/api/docs/").content.decode()
    assert not _inline_scripts(html), "the Swagger UI page must not carry an inline script"
    script = client.get("/api/docs/?script")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_base_template_configures_htmx_without_eval():
    base = (TEMPLATES_DIR / "base.html").read_text()
    config = re.search(r"""<meta name="htmx-config" content='([^']*)'>""", base)
    assert config, "base.html must configure htmx with a <meta name=htmx-config>"
    assert '"allowEval": false' in config.group(1) and '"includeIndicatorStyles": false' in config.group(1)
    assert base.index('name="htmx-config"') < base.index("{% htmx_script %}")
    assert "js/medsyn.js" in base


def _inline_scripts(html: str) -> list[str]:
    """<script> elements without src whose content a browser would run (JSON data blocks are fine)."""
    found = []
    for attrs, body in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S | re.I):
        if "src=" in attrs or re.search(r"""type=["']application/(ld\+)?json["']""", attrs):
            continue
        found.append(body.strip()[:80])
    return found


# An attribute that runs JavaScript: on* handlers, hx-on (htmx event handlers), javascript: URLs, and htmx's js:
# values and [filter] trigger conditions (which need eval).
FORBIDDEN_ATTRIBUTES = re.compile(
    r"""\s(on[a-z]+|hx-on[:\w-]*)\s*=|javascript:|hx-(vals|vars|headers)=["']\s*js:|hx-trigger=["'][^"']*\[""",
    flags=re.I,
)


@pytest.mark.parametrize("template", sorted(str(p.relative_to(TEMPLATES_DIR)) for p in TEMPLATES_DIR.rglob("*.html")))
def test_templates_need_nothing_the_policy_forbids(template):
    text = (TEMPLATES_DIR / template).read_text()
    assert not _inline_scripts(text), f"{template}: inline <script>; move it into a static file"
    bad = [m.group(0).strip() for m in FORBIDDEN_ATTRIBUTES.finditer(text)]
    assert not bad, f"{template}: {bad} cannot run under the Content-Security-Policy (see static/js/medsyn.js)"
