"""Sections that apps add to another app's page or file without that app importing them.

Every dependency points down the layout (README): releases may not import utility, yet a release's page and dataset
card show its latest utility evaluation. So releases asks a registry here for the sections of a release, and utility
registers its providers when its app is ready (UtilityConfig.ready). A provider returns None when it has nothing to
add (no evaluation of that release yet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SectionRegistry:
    """Providers of one kind of section, asked in the order they registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._providers: list[Callable[..., Any]] = []

    def register(self, provider: Callable[..., Any]) -> Callable[..., Any]:
        """Add a provider once (an app made ready twice, as in tests, registers it once)."""
        if provider not in self._providers:
            self._providers.append(provider)
        return provider

    def render(self, *args: Any, **kwargs: Any) -> list[Any]:
        """What every provider gives for these arguments, Nones left out."""
        return [section for provider in self._providers if (section := provider(*args, **kwargs)) is not None]


# provider(release) -> Markdown (a "## ..." section) for the release's dataset card README.md, or None.
release_card_sections = SectionRegistry("release card")
# provider(request, release) -> HTML (a SafeString, e.g. render_to_string) for the release's page, or None.
release_page_sections = SectionRegistry("release page")
