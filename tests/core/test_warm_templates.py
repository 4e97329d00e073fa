"""R9.2: each app compiles its templates when a worker starts, so no resident or operator pays for
it in a first request under a burst; and every template it names compiles with the app's filters
(a template that would fail on first use fails here)."""

from __future__ import annotations

import gc
import importlib

import pytest
from jinja2 import TemplateAssertionError

from madoguchi.appbase import warm_templates
from tests.conftest import built


@pytest.mark.parametrize("module", ["reservation", "callcenter", "admin"])
def test_each_app_compiles_its_templates_at_start(overrides, module):
    """R9.2: the warm-up compiles the app's pages, the shared layout and (where the app sends them)
    the messages; afterwards they come from the environment's cache, not from the compiler."""
    package = importlib.import_module(module)
    with built(package.create_app, overrides) as app:
        env = app.jinja_env
        assert env.cache is not None and len(env.cache) == 0  # tests skip the warm-up by default
        compiled = warm_templates(app, *package.TEMPLATES)
        cached = {name for (_loader, name) in env.cache}
        page = {"reservation": "reservation/slots.html", "callcenter": "callcenter/console.html"}.get(
            module, "admin/checkin.html"
        )
        assert compiled == len(cached) > 10
        assert {"base.html", "errors.html", page} <= cached
        assert not any(name.startswith("reservation/") for name in cached) or module == "reservation"


def test_a_template_the_app_cannot_compile_fails_the_warm_up(overrides):
    """R9.2: the residents' app has no call-center filters, so warming the call center's pages in
    it fails at once (the warm-up is a real compilation, not a listing)."""
    package = importlib.import_module("reservation")
    with built(package.create_app, overrides) as app, pytest.raises(TemplateAssertionError):
        warm_templates(app, "callcenter/")


def test_a_served_app_moves_its_startup_heap_out_of_the_collectors_reach(overrides):
    """R9.2: after its templates are compiled, a web worker freezes what it made at start, so a
    full collection no longer walks the app (it paused requests 75–95 ms under the burst); a test
    app freezes nothing."""
    package = importlib.import_module("reservation")
    gc.unfreeze()
    with built(package.create_app, overrides) as app:
        assert gc.get_freeze_count() == 0 and len(app.jinja_env.cache) == 0
    overrides["TESTING"] = False
    try:
        with built(package.create_app, overrides) as served:
            assert gc.get_freeze_count() > 10_000
            assert {"base.html", "reservation/slots.html"} <= {
                name for (_loader, name) in served.jinja_env.cache
            }
    finally:
        gc.unfreeze()
