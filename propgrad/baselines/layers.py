"""Model surgery for the gradient baselines: finding layers and removing in-place ReLUs.

Captum's guided backpropagation and DeepLIFT hook ``nn.ReLU`` modules; an in-place ReLU
(``nn.ReLU(inplace=True)``, as in torchvision's ResNets) can break those hooks ("a view ... is
being modified inplace") or silently change what they see. :func:`relu_safe_model` returns a
version of the model without in-place ReLU *modules*. In-place or functional ReLUs inside a
``forward`` (``F.relu(x, inplace=True)``, ``x.relu_()``) cannot be replaced from outside; Captum
does not hook functional ReLUs at all, so such models get plain gradients there.
"""

from __future__ import annotations

import copy
import weakref

from torch import nn

from propgrad.errors import InvalidParameterError

_SAFE_COPIES: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def has_inplace_relu(model: nn.Module) -> bool:
    """Whether any submodule of ``model`` is an ``nn.ReLU`` with ``inplace=True``."""
    return any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())


def _copy_without_inplace_relu(model: nn.Module) -> nn.Module:
    """Deep copy sharing parameters and buffers, with every in-place ReLU made out-of-place.

    Sharing the tensors (through the deepcopy memo) means no memory is duplicated and later
    in-place updates of the original's weights (training, ``load_state_dict``) are seen.
    """
    memo: dict[int, object] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    safe = copy.deepcopy(model, memo)
    for module in safe.modules():
        if isinstance(module, nn.ReLU) and module.inplace:
            module.inplace = False
    return safe


def relu_safe_model(model: nn.Module) -> nn.Module:
    """``model`` itself if it has no in-place ReLU module, else a cached ReLU-safe copy.

    The copy is cached per model object (weakly, so it goes away with the model), shares the
    original's parameters and buffers, and mirrors each submodule's ``training`` flag on every
    call. The original model is never modified.

    Args:
        model: The model to explain.

    Returns:
        A module computing the same function without in-place ReLU modules.
    """
    if not has_inplace_relu(model):
        return model
    safe = _SAFE_COPIES.get(model)
    originals = list(model.modules())
    if safe is None or len(list(safe.modules())) != len(originals):
        safe = _copy_without_inplace_relu(model)
        _SAFE_COPIES[model] = safe
    for original, duplicate in zip(originals, safe.modules()):
        duplicate.training = original.training
    return safe


def last_conv_name(model: nn.Module) -> str:
    """Dotted name of the last ``nn.Conv2d`` in ``model.modules()`` order.

    Raises:
        ValueError: If the model has no ``nn.Conv2d`` module.
    """
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not names:
        raise InvalidParameterError(
            f"guided_gradcam needs a convolutional layer, but the model "
            f"({type(model).__name__}) has no nn.Conv2d module; pass layer='dotted.module.name' "
            "to choose another layer"
        )
    return names[-1]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` (dotted path) of ``model``, with a clear error if it is missing.

    Raises:
        ValueError: If no submodule has that name.
    """
    try:
        return model.get_submodule(name)
    except AttributeError:
        available = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
        raise InvalidParameterError(
            f"layer must name a submodule of the model, got {name!r}; available: {shown}"
        ) from None
