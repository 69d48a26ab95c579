"""Plugin discovery and the registry, tested with fake distributions (no installs).

Every fake plugin is a ``types.ModuleType`` carrying ``@hookimpl`` functions, returned by a fake
entry point whose ``.dist`` has a name and a version; ``importlib.metadata.entry_points`` is
monkeypatched to return them and ``DEFAULT_PLUGINS`` is emptied, so these tests do not depend on
the built-in modules. Hooks exercised here: register_sources, register_baselines, register_suites.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import types
import warnings
from dataclasses import dataclass
from importlib import import_module
from typing import Literal

import numpy as np
import pluggy
import pytest
import torch

import propgrad
from propgrad import hookimpl, plugins
from propgrad.baselines.base import AttributionBaseline
from propgrad.cli import plugins as plugins_command
from propgrad.plugins import (
    DuplicateNameError,
    PluginLoadError,
    PropgradPluginWarning,
    RegistrationError,
    UnknownNameError,
)
from propgrad.plugins.parameters import Parameters, parameter
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.suites.base import BenchmarkSuite
from propgrad.testing import check_baseline, check_source, collect_registrations, sample_image


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version


class FakeEntryPoint:
    """Quacks like importlib.metadata.EntryPoint: name, value, group, dist, load()."""

    def __init__(self, name, loader, dist="fake-dist", version="1.0", group="propgrad"):
        self.name, self.value, self.group = name, f"fake_{name}", group
        self.dist = FakeDist(dist, version) if dist else None
        self._loader, self.loads = loader, 0

    def load(self):
        self.loads += 1
        return self._loader()


def make_source(name, description="a fake source"):
    def generate(self, image, *, seed=0, show_progress=False):
        steps = torch.linspace(0, 1, 4, dtype=image.dtype, device=image.device)
        images = torch.stack([image * (1 - t) for t in steps])
        return InterventionSequence(images, steps, "darkness", "fraction")

    attrs = {"name": name, "description": description, "property_name": "darkness", "unit": "fraction"}
    return type(f"Source_{name}", (InterventionSource,), {**attrs, "generate": generate})


def make_baseline(name):
    def attribute(self, model, images, target):
        return images.mean(dim=1).detach()

    return type(
        f"Baseline_{name}", (AttributionBaseline,), {"name": name, "description": "mean", "attribute": attribute}
    )


def make_suite(name):
    methods = {m: (lambda self, *a: None) for m in ("settings", "models", "test_set", "intervene", "accuracy_table")}
    return type(f"Suite_{name}", (BenchmarkSuite,), {"name": name, "description": "suite", **methods})


def plugin_module(modname, **hooks):
    """A module whose attributes are the given hook implementations."""
    module = types.ModuleType(modname)
    for hook_name, function in hooks.items():
        function.__name__ = hook_name
        setattr(module, hook_name, hookimpl(function))
    return module


def registering(*classes):
    def hook(register):
        for cls in classes:
            register(cls)

    return hook


@pytest.fixture
def eps(monkeypatch):
    """The list of fake entry points the registry will see; no built-ins, no strict mode."""
    found: list[FakeEntryPoint] = []
    monkeypatch.setattr(plugins, "DEFAULT_PLUGINS", ())
    real = importlib.metadata.entry_points

    def entry_points(group=None, **kwargs):  # other groups (numba's extensions) are the real ones
        if group == "propgrad":
            return [e for e in found if e.group == group]
        return real(**kwargs) if group is None else real(group=group, **kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.delenv(plugins.STRICT_ENV, raising=False)
    plugins.reset_plugins()
    yield found
    plugins.reset_plugins()


def add(eps, name, module, **kwargs):
    ep = FakeEntryPoint(name, lambda: module, **kwargs)
    eps.append(ep)
    return ep


def broken_import():
    raise ImportError("No module named 'gpu_lib'")


def test_good_plugin_is_found_and_described(eps):
    source, baseline, suite = make_source("zoom"), make_baseline("mean_map"), make_suite("toy")
    module = plugin_module(
        "good",
        register_sources=registering(source, make_source("blur")),
        register_baselines=registering(baseline),
        register_suites=registering(suite),
    )
    add(eps, "good", module, dist="propgrad-good", version="2.1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean load warns about nothing
        assert propgrad.get_source("zoom") is source
    assert list(propgrad.list_sources()) == ["blur", "zoom"]
    assert propgrad.list_baselines() == {"mean_map": baseline}
    assert propgrad.get_baseline("mean_map") is baseline
    assert propgrad.get_suite("toy") is suite and propgrad.list_suites() == {"toy": suite}
    assert plugins.plugin_failures() == []
    (info,) = plugins.describe_plugins()
    assert (info["name"], info["distribution"], info["version"], info["failure"]) == (
        "good",
        "propgrad-good",
        "2.1",
        None,
    )
    assert [e["name"] for e in info["hooks"]["register_sources"]] == ["zoom", "blur"]
    assert info["hooks"]["register_baselines"][0] == {
        "name": "mean_map",
        "class": f"{baseline.__module__}.{baseline.__qualname__}",
        "description": "mean",
        "parameters": [],
    }
    assert isinstance(plugins.get_plugin_manager(), pluggy.PluginManager)


def only_hook(eps, hook, cls):
    """Install one fake plugin implementing only ``hook`` (registering ``cls``); returns what the hook received."""
    received = []

    def implementation(register):
        received.append(register)
        register(cls)

    add(eps, "one_hook", plugin_module("one_hook", **{hook: implementation}), dist="propgrad-one-hook", version="3.0")
    return received


def described_hooks():
    (info,) = plugins.describe_plugins()
    return {hook: [entry["name"] for entry in entries] for hook, entries in info["hooks"].items()}


def test_register_sources_hook_adds_a_lookup_name(eps):
    source = make_source("zoom")
    received = only_hook(eps, "register_sources", source)
    assert propgrad.get_source("zoom") is source and propgrad.list_sources() == {"zoom": source}
    assert len(received) == 1 and callable(received[0])  # called once, with the register callback
    assert described_hooks() == {"register_sources": ["zoom"]}
    assert propgrad.list_baselines() == {} and propgrad.list_suites() == {}
    assert len(propgrad.get_source("zoom")().generate(sample_image())) == 4


def test_register_baselines_hook_adds_a_lookup_name(eps):
    baseline = make_baseline("mean_map")
    received = only_hook(eps, "register_baselines", baseline)
    assert propgrad.get_baseline("mean_map") is baseline and propgrad.list_baselines() == {"mean_map": baseline}
    assert len(received) == 1 and callable(received[0])
    assert described_hooks() == {"register_baselines": ["mean_map"]}
    assert propgrad.list_sources() == {} and propgrad.list_suites() == {}
    with pytest.raises(UnknownNameError, match="unknown source 'mean_map'"):
        propgrad.get_source("mean_map")  # registered as a baseline only


def test_register_suites_hook_adds_a_lookup_name(eps):
    suite = make_suite("toy")
    received = only_hook(eps, "register_suites", suite)
    assert propgrad.get_suite("toy") is suite and propgrad.list_suites() == {"toy": suite}
    assert len(received) == 1 and callable(received[0])
    assert described_hooks() == {"register_suites": ["toy"]}
    assert propgrad.list_sources() == {} and propgrad.list_baselines() == {}


def test_crashing_plugin_is_recorded_warned_once_and_others_work(eps):
    add(eps, "fancy", None, dist="propgrad-fancy", version="0.3")
    eps[-1]._loader = broken_import
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))))
    with pytest.warns(PropgradPluginWarning, match="propgrad-fancy 0.3.*gpu_lib") as record:
        assert propgrad.get_source("zoom").name == "zoom"
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shown once: later lookups stay quiet
        assert list(propgrad.list_sources()) == ["zoom"]
        (failure,) = plugins.plugin_failures()
    assert (failure.plugin, failure.distribution, failure.version) == ("fancy", "propgrad-fancy", "0.3")
    assert isinstance(failure.error, ImportError) and "broken_import" in failure.traceback
    with pytest.raises(
        UnknownNameError, match=r"failed to load.*'fancy' \(propgrad-fancy 0.3\); run `propgrad plugins`"
    ):
        propgrad.get_source("fancy_source")
    with pytest.raises(UnknownNameError) as info:  # the answer and a pointer; `propgrad plugins` tells why
        propgrad.get_source("fancy_source")
    assert "gpu_lib" not in str(info.value)
    assert info.value.failures == (failure,)
    assert isinstance(info.value, LookupError)


def test_hook_that_raises_fails_the_whole_plugin(eps):
    def hook(register):
        register(make_source("half_done"))
        raise RuntimeError("boom in hook")

    add(eps, "raiser", plugin_module("raiser", register_sources=hook))
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))))
    with pytest.warns(PropgradPluginWarning):
        assert list(propgrad.list_sources()) == ["zoom"]  # nothing of the raiser is half-registered
    (failure,) = plugins.plugin_failures()
    assert failure.plugin == "raiser" and "boom in hook" in failure.message
    with pytest.raises(UnknownNameError, match=r"'raiser' \(fake-dist 1\.0\); run `propgrad plugins` for why"):
        propgrad.get_source("half_done")
    assert [name for name, _ in plugins.get_plugin_manager().list_name_plugin()] == ["good"]


def test_strict_mode_reraises_at_load(eps, monkeypatch):
    add(eps, "fancy", None)
    eps[-1]._loader = broken_import
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))))
    monkeypatch.setenv(plugins.STRICT_ENV, "1")
    with pytest.raises(PluginLoadError, match="PROPGRAD_STRICT_PLUGINS") as info:
        propgrad.list_sources()
    assert isinstance(info.value.__cause__, ImportError)
    assert [f.plugin for f in info.value.failures] == ["fancy"]
    with pytest.raises(PluginLoadError):
        propgrad.get_source("zoom")
    assert [f.plugin for f in plugins.plugin_failures()] == ["fancy"]  # diagnostics still work
    assert run_cli() == 1


def test_duplicate_name_raises_naming_both_plugins(eps):
    add(
        eps,
        "first",
        plugin_module("first", register_sources=registering(make_source("dup"), make_source("one"))),
        dist="propgrad-first",
        version="1.0",
    )
    add(
        eps,
        "second",
        plugin_module("second", register_sources=registering(make_source("dup"), make_source("two"))),
        dist="propgrad-second",
        version="2.0",
    )
    with pytest.warns(PropgradPluginWarning, match="dup"):
        assert list(propgrad.list_sources()) == ["one", "two"]  # unrelated names keep working
    with pytest.raises(DuplicateNameError, match=r"'dup' is ambiguous.*propgrad-first 1\.0.*propgrad-second 2\.0"):
        propgrad.get_source("dup")
    (failure,) = plugins.plugin_failures()
    assert failure.plugin == "second" and "already registered by plugin 'first'" in failure.message


def test_plugin_reusing_a_builtin_name_loses_to_the_builtin(eps, monkeypatch):
    builtin_source = make_source("alpha_patch")
    builtin = plugin_module("fake_builtin", register_sources=registering(builtin_source))
    monkeypatch.setitem(sys.modules, "fake_builtin", builtin)
    monkeypatch.setattr(plugins, "DEFAULT_PLUGINS", ("fake_builtin",))
    shadow_source, extra = make_source("alpha_patch"), make_source("shadow_extra")
    add(
        eps,
        "shadow",
        plugin_module("shadow", register_sources=registering(shadow_source, extra)),
        dist="propgrad-shadow",
        version="9",
    )
    add(eps, "shadow2", plugin_module("shadow2", register_sources=registering(make_source("alpha_patch"))))
    with pytest.warns(PropgradPluginWarning, match="built-in name"):
        assert propgrad.get_source("alpha_patch") is builtin_source  # the built-in stays usable for everyone
    assert propgrad.list_sources() == {"alpha_patch": builtin_source, "shadow_extra": extra}
    failures = {f.plugin: f for f in plugins.plugin_failures()}
    assert sorted(failures) == ["shadow", "shadow2"]  # each newcomer is the recorded failure, never the built-in
    message = str(failures["shadow"])
    assert isinstance(failures["shadow"].error, DuplicateNameError)
    assert "'shadow' (propgrad-shadow 9)" in message and "'fake_builtin' (propgrad " in message
    assert "source 'alpha_patch' is a built-in name" in message and "Source_alpha_patch was not registered" in message
    described = {p["name"]: p for p in plugins.describe_plugins()}
    assert [p["builtin"] for p in described.values()] == [True, False, False]
    assert described["fake_builtin"]["failure"] is None
    assert [e["name"] for e in described["shadow"]["hooks"]["register_sources"]] == ["shadow_extra"]


def test_misspelled_hook_is_reported(eps):
    add(eps, "typo", plugin_module("typo", register_source=registering(make_source("x"))))
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))))
    with pytest.warns(PropgradPluginWarning):
        assert list(propgrad.list_sources()) == ["zoom"]
    (failure,) = plugins.plugin_failures()
    assert isinstance(failure.error, pluggy.PluginValidationError)
    assert "unknown hook 'register_source' (did you mean 'register_sources'?)" in failure.message
    plugins.get_plugin_manager().check_pending()  # the bad plugin was unregistered again


@pytest.mark.parametrize(
    ("registered", "match"),
    [
        (make_source("inst")(), "must register classes.*not an instance"),
        (make_source(""), "without a name"),
        (type("NoName", (make_source("x"),), {"name": None}), "without a name"),
        (make_source("hue shift"), "invalid name 'hue shift'"),
        (make_baseline("wrong_kind"), "not a subclass of propgrad.sources.base.InterventionSource"),
        (type("Abstract", (InterventionSource,), {"name": "abstract"}), "abstract.*generate"),
    ],
)
def test_bad_registration_is_reported(eps, registered, match):
    add(eps, "bad", plugin_module("bad", register_sources=registering(registered)))
    with pytest.warns(PropgradPluginWarning):
        assert propgrad.list_sources() == {}
    (failure,) = plugins.plugin_failures()
    assert isinstance(failure.error, RegistrationError)
    assert failure.plugin == "bad" and re.search(match, str(failure.error))


def test_other_plugin_mistakes_are_reported(eps):
    def swallowing(register):
        try:
            register("not a class")
        except TypeError:
            pass
        register(make_source("sneaky"))

    add(eps, "swallow", plugin_module("swallow", register_sources=swallowing), dist="propgrad-swallow")
    add(eps, "twice", plugin_module("twice", register_sources=registering(make_source("a"), make_source("a"))))
    add(eps, "empty", types.ModuleType("empty"), dist="propgrad-empty")
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))), dist="propgrad-good")
    add(eps, "good", plugin_module("good2", register_sources=registering(make_source("other"))), dist="propgrad-zz")

    def reentrant(register):
        propgrad.list_sources()

    add(eps, "reentrant", plugin_module("reentrant", register_sources=reentrant), dist="propgrad-re")
    with pytest.warns(PropgradPluginWarning):
        assert list(propgrad.list_sources()) == ["zoom"]
    errors = {f.plugin + "@" + str(f.distribution): f.message for f in plugins.plugin_failures()}
    assert "registers source 'a' twice" in errors["twice@fake-dist"]
    assert "implements no propgrad hook" in errors["empty@propgrad-empty"]
    assert "already used by propgrad-good" in errors["good@propgrad-zz"]
    assert "while plugins were loading" in errors["reentrant@propgrad-re"]
    assert "must register classes" in errors["swallow@propgrad-swallow"]


def test_unknown_name_suggests_close_matches(eps):
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("hue_shift"), make_source("zoom"))))
    with pytest.raises(UnknownNameError, match=r"unknown source 'huee_shift'\. Did you mean 'hue_shift'\?") as info:
        propgrad.get_source("huee_shift")
    assert "Available sources: hue_shift, zoom." in str(info.value) and "failed" not in str(info.value)
    with pytest.raises(UnknownNameError, match=r"Available baselines: \(none\)"):
        propgrad.get_baseline("occlusion")
    with pytest.raises(TypeError, match="source name must be a str"):
        propgrad.get_source(3)


def test_plugins_load_lazily_once(eps):
    ep = add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))), dist=None)
    assert ep.loads == 0
    for _ in range(3):
        propgrad.get_source("zoom")
        propgrad.list_baselines()
        plugins.describe_plugins()
    assert ep.loads == 1
    assert plugins.describe_plugins()[0]["distribution"] is None
    plugins.reset_plugins()
    propgrad.list_sources()
    assert ep.loads == 2


def test_importing_propgrad_plugins_loads_nothing():
    code = (
        "import sys, propgrad, propgrad.plugins as p; "
        "print(p._STATE is None, "
        "any(m.startswith(('propgrad_hue_shift', 'propgrad.sources.alpha')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="propgrad")
    plugins_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plugins", *argv])
    return args.run(args)


def test_cli_lists_plugins_and_failures(eps, capsys):
    add(
        eps,
        "good",
        plugin_module("good", register_sources=registering(make_source("zoom", "Zoom in slowly"))),
        dist="propgrad-good",
        version="2.1",
    )
    add(eps, "fancy", None, dist="propgrad-fancy", version="0.3")
    eps[-1]._loader = broken_import
    assert run_cli() == 0
    text = capsys.readouterr().out
    assert "good  [propgrad-good 2.1, entry point]" in text and "zoom  Zoom in slowly" in text
    assert "Load failures (1):" in text and "fancy  [propgrad-fancy 0.3]" in text and "gpu_lib" in text
    assert run_cli("--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in data["plugins"]] == ["fancy", "good"]
    assert data["failures"][0]["error"] == "ImportError: No module named 'gpu_lib'"


def test_installed_hue_shift_distribution_is_found(monkeypatch, capsys):
    """CI pip-installs plugins/propgrad-hue-shift; it must be found through its entry point."""
    monkeypatch.setattr(plugins, "DEFAULT_PLUGINS", ())
    monkeypatch.delenv(plugins.STRICT_ENV, raising=False)
    plugins.reset_plugins()
    try:
        source = propgrad.get_source("hue_shift")
        assert source.__module__ == "propgrad_hue_shift.source"
        version = importlib.metadata.version("propgrad-hue-shift")
        assert run_cli() == 0
        assert f"hue_shift  [propgrad-hue-shift {version}, entry point]" in capsys.readouterr().out
    finally:
        plugins.reset_plugins()


@pytest.mark.parametrize("path", plugins.DEFAULT_PLUGINS)
def test_builtin_plugins_that_import_register_something(path):
    module = import_module(path)  # a built-in that fails to import is a bug in propgrad: this test fails
    found = collect_registrations(module)
    assert sum(len(classes) for classes in found.values()) >= 1, f"{path} registers nothing"


def test_builtin_plugins_load_without_failures(monkeypatch):
    """Through the real loader: no built-in plugin is recorded as a failure (whatever else is installed)."""
    monkeypatch.delenv(plugins.STRICT_ENV, raising=False)
    plugins.reset_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            described = plugins.describe_plugins()
    finally:
        plugins.reset_plugins()
    builtins = {p["name"]: p for p in described if p["builtin"]}
    assert sorted(builtins) == sorted(plugins.DEFAULT_PLUGINS)
    assert {name: p["failure"]["error"] for name, p in builtins.items() if p["failure"]} == {}


def test_check_source_accepts_a_good_source_and_catches_broken_ones():
    good = make_source("good")
    seq = check_source(good, first_is_original=True)
    assert len(seq) == 4

    class InPlace(good):
        def generate(self, image, *, seed=0, show_progress=False):
            image.mul_(0.5)
            return super().generate(image.clone())

    class Random(good):
        def generate(self, image, *, seed=0, show_progress=False):
            return super().generate(image * torch.rand(()))

    class Constant(good):
        def generate(self, image, *, seed=0, show_progress=False):
            return InterventionSequence(image.expand(3, -1, -1, -1), torch.arange(3.0), "darkness", "fraction")

    for broken, match in [(InPlace, "in place"), (Random, "not deterministic"), (Constant, "changes nothing")]:
        with pytest.raises(AssertionError, match=match):
            check_source(broken, sample_image())
    with pytest.raises(AssertionError, match="property_name must be a non-empty string"):
        check_source(type("NoProp", (good,), {"property_name": ""}))


def test_check_baseline_accepts_a_good_baseline_and_catches_broken_ones():
    good = make_baseline("mean_map")
    assert check_baseline(good).shape == (2, 16, 16)

    class Training(good):
        def attribute(self, model, images, target):
            model.train()
            return super().attribute(model, images, target)

    class Attached(good):
        def attribute(self, model, images, target):
            return images.requires_grad_(True).mean(dim=1)

    with pytest.raises(AssertionError, match="changed the model"):
        check_baseline(Training)
    with pytest.raises(AssertionError, match="detached"):
        check_baseline(Attached)


def exiting(code):
    def load():
        sys.exit(code)

    return load


def test_plugin_calling_sys_exit_is_recorded_not_the_end_of_the_process(eps):
    add(eps, "quitter", None, dist="propgrad-quitter", version="0.1")
    eps[-1]._loader = exiting(3)

    def exit_in_hook(register):
        sys.exit()

    add(eps, "hook_quitter", plugin_module("hook_quitter", register_sources=exit_in_hook), dist="propgrad-hq")
    add(eps, "good", plugin_module("good", register_sources=registering(make_source("zoom"))))
    with pytest.warns(PropgradPluginWarning, match=r"propgrad-quitter 0\.1.*sys\.exit\(3\)"):
        assert list(propgrad.list_sources()) == ["zoom"]  # no SystemExit escaped; the others loaded
    failures = {f.plugin: f for f in plugins.plugin_failures()}
    assert sorted(failures) == ["hook_quitter", "quitter"]
    assert isinstance(failures["quitter"].error, plugins.PluginExitError)
    assert isinstance(failures["quitter"].error.__cause__, SystemExit)
    assert "SystemExit: 3" in failures["quitter"].traceback and "def load" not in failures["quitter"].message
    assert "sys.exit(None)" in failures["hook_quitter"].message
    assert [name for name, _ in plugins.get_plugin_manager().list_name_plugin()] == ["good"]
    with pytest.raises(UnknownNameError, match=r"'quitter' \(propgrad-quitter 0\.1\); run `propgrad plugins`"):
        propgrad.get_source("quitter_source")


def test_strict_mode_reports_a_plugin_calling_sys_exit_as_plugin_load_error(eps, monkeypatch):
    add(eps, "quitter", None)
    eps[-1]._loader = exiting(0)
    monkeypatch.setenv(plugins.STRICT_ENV, "1")
    with pytest.raises(PluginLoadError, match=r"sys\.exit\(0\)"):
        propgrad.list_sources()


def test_what_plugins_print_while_loading_goes_to_stderr(eps, capsys):
    def chatty_import():
        print("hello from chatty's import")
        return plugin_module("chatty", register_sources=chatty_hook)

    def chatty_hook(register):
        print("registering chatty sources")
        register(make_source("chatty_source"))

    add(eps, "chatty", None)
    eps[-1]._loader = chatty_import
    assert run_cli("--json") == 0
    out, err = capsys.readouterr()
    data = json.loads(out)  # stdout is only the JSON document
    assert [e["name"] for e in data["plugins"][0]["hooks"]["register_sources"]] == ["chatty_source"]
    assert "hello from chatty's import" in err and "registering chatty sources" in err
    print("after loading")
    assert capsys.readouterr().out == "after loading\n"  # stdout is restored once plugins are loaded


def cli_errors(capsys, *argv):
    """Run the real entry point; returns (exit code, stderr lines)."""
    from propgrad.cli import main

    code = main(list(argv))
    return code, capsys.readouterr().err.splitlines()


def test_cli_prints_a_broken_plugins_warning_and_errors_as_one_line_each(eps, capsys, tmp_path):
    add(eps, "fancy", None, dist="propgrad-fancy", version="0.3")
    eps[-1]._loader = broken_import
    code, lines = cli_errors(capsys, "benchmark", "--suite", "no_such_suite", "--out", str(tmp_path))
    assert code == 2
    (line,) = lines  # the answer first, with a pointer to the failure, and no warning before it
    assert line.startswith("propgrad benchmark: error: unknown suite 'no_such_suite'")
    assert line.endswith("plugin 'fancy' (propgrad-fancy 0.3); run `propgrad plugins` for why.")
    add(eps, "good", plugin_module("good", register_suites=registering(make_suite("toy"))))
    plugins.reset_plugins()
    code, lines = cli_errors(capsys, "benchmark", "--suite", "toy", "--baselines", "nosuch", "--out", str(tmp_path))
    assert code == 2 and len(lines) == 2, lines  # a lookup that works warns, once, as one line
    assert lines[0].startswith("propgrad: warning: 1 propgrad plugin(s) failed to load") and "gpu_lib" in lines[0]
    assert "PropgradPluginWarning" not in lines[0] and ".py:" not in lines[0]
    assert lines[1].startswith("propgrad benchmark: error: unknown baseline 'nosuch'")


def test_cli_strict_mode_failure_is_one_line_and_debug_shows_the_traceback(eps, capsys, monkeypatch, tmp_path):
    add(eps, "fancy", None, dist="propgrad-fancy", version="0.3")
    eps[-1]._loader = broken_import
    monkeypatch.setenv(plugins.STRICT_ENV, "1")
    code, lines = cli_errors(capsys, "benchmark", "--suite", "x", "--out", str(tmp_path))
    assert code == 2
    assert lines == [
        "propgrad benchmark: error: 1 propgrad plugin(s) failed to load (PROPGRAD_STRICT_PLUGINS is set): "
        "plugin 'fancy' (propgrad-fancy 0.3): ImportError: No module named 'gpu_lib'"
    ]
    plugins.reset_plugins()
    code, lines = cli_errors(capsys, "--debug", "benchmark", "--suite", "x", "--out", str(tmp_path))
    assert code == 2 and lines[0] == "Traceback (most recent call last):"
    assert "ImportError: No module named 'gpu_lib'" in lines and "in broken_import" in "\n".join(lines)
    assert lines[-1].startswith("propgrad benchmark: error: 1 propgrad plugin(s) failed to load")


def test_cli_debug_shows_warnings_in_full(eps, capsys, tmp_path):
    add(eps, "fancy", None, dist="propgrad-fancy", version="0.3")
    eps[-1]._loader = broken_import
    add(eps, "good", plugin_module("good", register_suites=registering(make_suite("toy"))))
    argv = ("benchmark", "--debug", "--suite", "toy", "--baselines", "x", "--out", str(tmp_path))
    with pytest.warns(PropgradPluginWarning, match="gpu_lib"):  # left to Python's (here: pytest's) warning display
        code, lines = cli_errors(capsys, *argv)
    text = "\n".join(lines)
    assert code == 2 and "propgrad: warning:" not in text
    assert "Traceback (most recent call last):" in text  # --debug after the command works too


# parameters: a plugin written against the earlier docs, and one that declares its parameters ------


class LegacyDarken(InterventionSource):
    """As the earlier docs taught: plain constructor keyword arguments and its own ``generate``."""

    name = "legacy_darken"
    description = "Fade the image to black"
    property_name = "darkness"
    unit = "fraction"

    def __init__(self, steps: int = 8, strength: float = 1.0) -> None:
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        self.steps, self.strength = steps, strength

    def generate(self, image, *, seed=0, show_progress=False):
        values = torch.linspace(0, self.strength, self.steps, dtype=image.dtype, device=image.device)
        images = torch.stack([image * (1 - v) for v in values])
        return InterventionSequence(images, values, self.property_name, self.unit)


@dataclass(frozen=True)
class FadeParams(Parameters):
    steps: int = parameter(8, "images in the sequence", bounds="[2, 64]")
    strength: float = parameter(1.0, "how dark the last image is", bounds="(0, 1]")
    towards: Literal["black", "white"] = parameter("black", "the colour the image fades to")


class DeclaredFade(InterventionSource):
    """Declares its parameters once; writes only ``_generate``."""

    name = "declared_fade"
    description = "Fade the image to black or white"
    property_name = "fade"
    unit = "fraction"
    Params = FadeParams

    def _generate(self, image, *, seed, show_progress):
        values = torch.linspace(0, self.strength, self.steps, dtype=image.dtype, device=image.device)
        target = 0.0 if self.towards == "black" else 1.0
        images = torch.stack([(1 - v) * image + v * target for v in values])
        return InterventionSequence(images, values, self.property_name, self.unit)


def explain_cli(capsys, *argv):
    from propgrad.cli import main

    base = ["explain", "--size", "16", "--permutations", "50", "--no-progress"]
    code = main([*base, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def test_register_sources_legacy_plain_kwargs_plugin_still_loads_and_runs(eps, capsys):
    from propgrad.example_model import colour_balance_net

    add(eps, "legacy", plugin_module("legacy_plugin", register_sources=registering(LegacyDarken)))
    explainer = propgrad.PropertyGradient(colour_balance_net())
    explanation = explainer.attribute(
        sample_image(16, 16), source="legacy_darken", source_params={"steps": 5}, n_permutations=50
    )
    assert explanation.values.tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    with pytest.raises(TypeError, match=r"source 'legacy_darken' has no parameter 'stepz'; its parameters: steps, str"):
        explainer.attribute(sample_image(16, 16), source="legacy_darken", source_params={"stepz": 5})
    code, out, err = explain_cli(capsys, "--source", "legacy_darken", "--param", "steps=4", "--param", "strength=0.5")
    assert code == 0, err
    assert "legacy_darken" in out and "p =" in out
    assert run_cli() == 0  # its parameters are listed from its signature
    assert "steps: int = 8" in capsys.readouterr().out


def test_a_legacy_source_gets_the_template_checks_naming_it():
    class Broken(LegacyDarken):
        name = "broken_darken"

        def generate(self, image, *, seed=0, show_progress=False):
            sequence = super().generate(image, seed=seed)
            sequence.images[2, 0, 0, 0] = float("nan")  # the source's bug, not the model's
            return sequence

    with pytest.raises(ValueError, match=r"source 'broken_darken' .* produced NaN or Inf pixels at step 2 of 8"):
        Broken().generate(sample_image())
    with pytest.raises(ValueError, match=r"image must have shape \(3, H, W\)"):
        LegacyDarken().generate(torch.zeros(1, 8, 8))


def test_register_sources_declared_parameters_give_cli_parsing_help_and_bounds(eps, capsys):
    add(eps, "fade", plugin_module("fade_plugin", register_sources=registering(DeclaredFade)))
    assert run_cli() == 0
    listing = capsys.readouterr().out
    assert "steps: int = 8, in [2, 64]; images in the sequence" in listing
    assert "strength: float = 1.0, in (0, 1]; how dark the last image is" in listing
    assert "towards: one of 'black', 'white' = 'black'" in listing
    assert run_cli("--json") == 0
    (entry,) = json.loads(capsys.readouterr().out)["plugins"][0]["hooks"]["register_sources"]
    assert entry["parameters"][0] == {
        "name": "steps",
        "type": "int",
        "default": 8,
        "required": False,
        "bounds": "[2, 64]",
        "choices": None,
        "help": "images in the sequence",
    }
    code, out, err = explain_cli(
        capsys, "--source", "declared_fade", "--param", "steps=5", "--param", "strength=.5", "--param", "towards=white"
    )
    assert code == 0, err
    assert "declared_fade" in out
    bad = {
        "steps=100": "--param steps=100: steps must be an integer in [2, 64], got 100",
        "steps=many": "--param steps=many: steps must be an integer in [2, 64], got 'many'",
        "strength=0": "--param strength=0: strength must be a number in (0, 1], got 0.0",
        "towards=grey": "--param towards=grey: towards must be one of 'black', 'white', got 'grey'",
        "stepz=3": "--param source 'declared_fade' has no parameter 'stepz'; its parameters: steps, strength, towards",
    }
    for pair, message in bad.items():
        code, out, err = explain_cli(capsys, "--source", "declared_fade", "--param", pair)
        assert (code, err) == (2, [f"propgrad explain: error: {message}"])


def test_declared_parameters_check_python_values_too():
    source = DeclaredFade(steps=np.int64(4), strength=np.float32(0.5))
    assert (source.params.steps, source.steps, type(source.strength)) == (4, 4, float)
    assert check_source(DeclaredFade, steps=3).values.tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\], got 2"):
        DeclaredFade(strength=2)
    with pytest.raises(TypeError, match=r"steps must be an integer in \[2, 64\], got '4' \(str\)"):
        DeclaredFade(steps="4")  # text only from the command line (or with Parameters.lenient)
    with pytest.raises(TypeError, match="has no parameter 'colour'; its parameters: steps, strength, towards"):
        DeclaredFade(colour="white")
