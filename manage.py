#!/usr/bin/env python
"""Django's command-line utility for MedSyn Studio."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.local")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from medsyn_site.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except (ConfigError, ImproperlyConfigured) as error:
        sys.stderr.write(f"{error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
