"""What produced the cells of a store: plugin versions and settings, and model weights.

Every suite, baseline and model of a run has an *identity* bound in the cell store before any of
its cells are used (see :meth:`propgrad.harness.store.CellStore.bind_identity`):

- a suite or baseline: its class, the distribution and version that provides it (from the plugin
  registry; for a class passed in directly, its top-level package's distribution, if any), its
  parameters' defaults (declared, or read from the constructor), and its settings (a suite's
  ``settings()``, a baseline's keyword arguments);
- a model: the content hash of its weights (``state_dict``).

The policy, when a resumed run finds an identity that differs from the stored one:

- **other settings are refused** (:class:`SettingsMismatchError`), like other run settings: the
  folder holds results of a different request; pass another ``--out``, or ``--fresh``;
- **another version, class, defaults or weights recompute**: the cells that plugin or model
  produced are dropped and computed again, and the run says which plugin changed and how.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any, Mapping

import torch
from torch import nn

from propgrad.harness.cells import CellKey
from propgrad.harness.store import CellStore, SettingsMismatchError, changed_keys
from propgrad.plugins.parameters import defaults

#: Positions in a stored key (``CellKey.as_json()`` lists the key's fields in order).
KIND_POSITION, SUITE_POSITION, MODEL_POSITION, BASELINE_POSITION = (
    CellKey._fields.index(field) for field in ("kind", "suite", "model", "baseline")
)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _registered_origin(kind: str, cls: type) -> tuple[str | None, str | None] | None:
    """(distribution, version) of the plugin that registered ``cls`` as a ``kind``, if any."""
    try:
        from propgrad.plugins import KINDS, describe_plugins

        hook = KINDS[kind][0]
        path = f"{cls.__module__}.{cls.__qualname__}"
        for plugin in describe_plugins():
            if any(entry.get("class") == path for entry in plugin.get("hooks", {}).get(hook, [])):
                return plugin.get("distribution"), plugin.get("version")
    except Exception:  # noqa: BLE001 - a broken registry falls back to the package's metadata
        return None
    return None


def _package_origin(cls: type) -> tuple[str | None, str | None]:
    """(distribution, version) of the installed distribution providing ``cls``'s top-level package."""
    top = cls.__module__.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top, [])
        if dists:
            return dists[0], metadata.version(dists[0])
    except Exception:  # noqa: BLE001 - broken metadata of one package
        pass
    return None, None


def plugin_identity(kind: str, cls: type) -> dict[str, Any]:
    """Class path, distribution, version and parameter defaults of a suite or baseline class.

    The defaults come from the class's declared parameters, or its constructor's signature
    (:func:`propgrad.plugins.parameters.defaults`).

    Args:
        kind: ``"suites"`` or ``"baselines"`` (the registry's kind).
        cls: The class.
    """
    origin = _registered_origin(kind, cls) or _package_origin(cls)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "distribution": origin[0],
        "version": origin[1],
        "defaults": defaults(cls),
    }


def weights_hash(model: nn.Module) -> str:
    """A content hash of a model's ``state_dict`` (names, dtypes, shapes and bytes of every tensor)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        if not isinstance(value, torch.Tensor):
            digest.update(f"{name}={value!r};".encode())
            continue
        t = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{t.dtype}:{tuple(value.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:24]


def _describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = []
    old_plugin, new_plugin = old.get("plugin", {}), new.get("plugin", {})
    for field in changed_keys(old_plugin, new_plugin):
        parts.append(f"{field} {old_plugin.get(field)!r} -> {new_plugin.get(field)!r}")
    if old.get("weights") != new.get("weights"):
        parts.append(f"weights hash {old.get('weights')} -> {new.get('weights')}")
    return "; ".join(parts) or "identity changed"


def _bind(store: CellStore, key: list[Any], identity: dict[str, Any], match: list[list[Any]], what: str) -> str | None:
    """Bind one identity; raises on other settings, returns a message if cells were dropped."""
    identity = _jsonable(identity)
    old = store.identity(key)
    if old is not None and old.get("settings") != identity.get("settings"):
        before, after = old.get("settings") or {}, identity.get("settings") or {}
        diffs = changed_keys(before, after) if isinstance(before, dict) and isinstance(after, dict) else []
        raise SettingsMismatchError(
            f"{store.path.parent} holds results of {what} built with other settings "
            f"(changed: {', '.join(diffs[:6]) or 'settings'}). Pass another --out, or --fresh to discard them."
        )
    if old is None or old == identity:
        store.bind_identity(key, identity, match)
        return None
    dropped = store.bind_identity(key, identity, match)
    change = _describe_change(old, identity)
    return f"{what} changed since its cells were computed ({change}): recomputing its {dropped} stored cells"


def bind_baselines(
    store: CellStore, baselines: Mapping[str, Any], baseline_kwargs: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Bind every baseline's identity; returns one message per baseline whose cells are recomputed."""
    messages = []
    for name, baseline in baselines.items():
        kwargs = dict(baseline_kwargs.get(name, {}))
        identity = {"plugin": plugin_identity("baselines", type(baseline)), "settings": kwargs}
        match = [[KIND_POSITION, "baseline"], [BASELINE_POSITION, name]]
        message = _bind(store, ["identity", "baseline", name], identity, match, f"baseline {name!r}")
        if message:
            messages.append(message)
    return messages


def bind_suite(store: CellStore, name: str, suite: Any) -> tuple[dict[str, Any], str | None]:
    """Bind a suite's identity (class, version, settings); returns its settings and a message if recomputed."""
    settings = _jsonable(suite.settings())
    identity = {"plugin": plugin_identity("suites", type(suite)), "settings": settings}
    message = _bind(store, ["identity", "suite", name], identity, [[SUITE_POSITION, name]], f"suite {name!r}")
    return settings, message


def bind_models(store: CellStore, suite_name: str, models: Mapping[str, nn.Module]) -> list[str]:
    """Bind the weights hash of every model of a suite; returns a message per model recomputed."""
    messages = []
    for model_name, model in models.items():
        match = [[SUITE_POSITION, suite_name], [MODEL_POSITION, model_name]]
        what = f"model {model_name!r} of suite {suite_name!r}"
        identity = {"weights": weights_hash(model)}
        message = _bind(store, ["identity", "model", suite_name, model_name], identity, match, what)
        if message:
            messages.append(message)
    return messages
