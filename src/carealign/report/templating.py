"""The reports' Jinja environment: templates from ``carealign/report/templates``, CSS from ``report/static``.

Templates are loaded with :class:`jinja2.PackageLoader`, so an installed carealign finds them as
package data (``[tool.setuptools.package-data]`` in pyproject.toml). Autoescape is on: every value
a report shows (model output, prompts, file paths) is escaped. ``StrictUndefined`` turns a name the
view does not provide into an error rather than an empty cell.

A page stays one self-contained file: ``base.html`` inlines the style sheets with the ``static_text``
global, which reads a file of ``report/static`` through :mod:`importlib.resources`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

#: The package whose ``templates/`` and ``static/`` folders hold the reports' files.
PACKAGE = "carealign.report"


def static_text(name: str) -> Markup:
    """The text of ``report/static/NAME`` (a style sheet), marked safe to inline into a page.

    Only the package's own files are read, never anything a run directory provides.
    """
    return Markup(resources.files(PACKAGE).joinpath("static", name).read_text(encoding="utf-8"))


@cache
def environment() -> Environment:
    """The one Jinja environment of the reports (built on first use)."""
    env = Environment(
        loader=PackageLoader(PACKAGE, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_text"] = static_text
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/TEMPLATE`` with ``context``."""
    return environment().get_template(template).render(**context)
