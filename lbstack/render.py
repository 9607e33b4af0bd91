"""Rendering templates: the Jinja2 options every template is rendered with, and where each
target path's template is (``/etc/x.conf`` -> ``templates/etc/x.conf.j2``)."""

from __future__ import annotations

import jinja2

from lbstack import TEMPLATES

# Jinja2 options shared by every template (pyinfra's files.template and render() below).
JINJA_OPTIONS = {"trim_blocks": True, "lstrip_blocks": True}


def template(target: str) -> str:
    """Template file for a target path: '/etc/x.conf' -> <templates>/etc/x.conf.j2."""
    return str(TEMPLATES / (target.lstrip("/") + ".j2"))


def jinja() -> dict:
    """A fresh copy of the Jinja2 options (pyinfra mutates the dict it is given)."""
    return dict(JINJA_OPTIONS)


def render(target: str, **data) -> str:
    """Render ``target``'s template here, as ``files.template`` renders it on the host (an
    undefined name is an error, never an empty string)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, **JINJA_OPTIONS)
    return env.get_template(target.lstrip("/") + ".j2").render(**data)


def targets() -> list[str]:
    """Every target path a template exists for (``/etc/nginx/nginx.conf``, ...)."""
    return sorted("/" + str(p.relative_to(TEMPLATES))[:-len(".j2")] for p in TEMPLATES.rglob("*.j2"))
