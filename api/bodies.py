"""Request bodies hold the keys their API declares, and nothing else.

BentoML builds each API's body model from the method's signature
(``IODescriptor.from_input``: one field per parameter, on a pydantic base
whose ``extra`` policy is pydantic's default, *ignore*): a key the signature
does not declare is dropped in silence. A typo such as ``"modle"`` then gives
the caller the default model instead of the one asked for. :func:`refuse_unknown_keys`
closes every API's body model, whatever its parameters: an undeclared key
answers 400 naming it (the one error body, through BentoML's validation error
and :mod:`api.middleware`), and the OpenAPI document shows
``additionalProperties: false``. A parameter added to a signature is a
declared key at once: nothing here lists them.
"""
from __future__ import annotations

import types
from typing import Any

from pydantic import BaseModel, ConfigDict


def closed(body: type[BaseModel]) -> type[BaseModel]:
    """``body``'s model with the same fields, refusing keys it does not declare (itself when it already does).

    A body taken whole by one positional-only parameter (BentoML's root input)
    is not a set of named keys, and is left as it is.
    """
    if body.model_config.get("extra") == "forbid" or getattr(body, "__root_input__", False):
        return body

    def namespace(ns: dict[str, Any]) -> None:
        ns.update(model_config=ConfigDict(extra="forbid"), __module__=body.__module__, __doc__=body.__doc__)
    return types.new_class(body.__name__, (body,), exec_body=namespace)


def refuse_unknown_keys(service: Any) -> None:
    """Close the body model of every API of ``service`` (a BentoML service class) to undeclared keys."""
    for api in service.apis.values():
        api.input_spec = closed(api.input_spec)
