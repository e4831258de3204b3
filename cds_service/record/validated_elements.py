"""Concepts and references validated once per distinct content, and handed to the R4B models already validated.

Validating a resource with the fhir.resources R4B models builds every element of it through several Python
validators (~20 us an element, whatever its size), and most elements the rules read are concepts and references
that recur: the same CodeableConcept for every "active" clinicalStatus or every serum phosphate result, the same
subject Reference in every resource of a record. So the CodeableConcepts, Codings and References at the top level of
a resource's read part are validated with their own R4B model once per distinct content and remembered (bounded),
and the resource's model is given the validated instances in their place.

This changes no verdict. Validating a resource validates each element by calling its model's `model_validate` on the
element's value (fhir_core's FhirBase validator); here the same call on the same value is made once and its result
reused, and the resource's model accepts an instance of the element's own model as it is. Everything else (the
resource's own checks: required elements, choices, unknown elements, primitives, nulls in lists) runs on every
call. A resource with an invalid element is validated again the plain way by the caller (resources.validate), so its
report reads as before. tests/test_validated_elements.py compares both ways on every fixture and the Synthea records.

Values (quantities, periods, dosages) are not remembered: they are the record's own and rarely repeat.
"""

from __future__ import annotations

import threading
import typing
from functools import lru_cache
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.reference import Reference

from .json_text import canonical_json

SHARED_TYPES: frozenset[type] = frozenset({CodeableConcept, Coding, Reference})
# Distinct elements remembered; past it the memory starts afresh (a population's concepts are a few thousand).
MEMO_SIZE = 8192


def _element_model(annotation: Any) -> tuple[type | None, bool]:
    """(the element model class of a field's type, whether the field is a list), or (None, _) when the type is not
    exactly one FHIR element model."""
    is_list = False
    models = []
    pending = [annotation]
    while pending:
        item = pending.pop()
        if typing.get_origin(item) in (list, typing.List):
            is_list = True
        loader = getattr(item, "get_model_klass", None)
        if callable(loader):
            models.append(loader())
            continue
        pending.extend(typing.get_args(item))
    return (models[0], is_list) if len(models) == 1 else (None, is_list)


@lru_cache(maxsize=None)
def shared_fields(resource_class: type) -> dict[str, tuple[type, bool]]:
    """element name -> (element model, is a list), for each top-level field of a resource model of a shared type."""
    fields = {}
    for name, field_info in resource_class.model_fields.items():
        model, is_list = _element_model(field_info.annotation)
        if model in SHARED_TYPES:
            fields[field_info.alias or name] = (model, is_list)
    return fields


class ElementMemo:
    """Validated instances of shared-type elements, by model and canonical JSON of their value (bounded)."""

    def __init__(self, size: int = MEMO_SIZE):
        self._size = size
        self._instances: dict[tuple[type, bytes], Any] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._instances)

    def instance(self, model: type, value: dict) -> Any:
        """The validated instance of `model` for `value`; raises pydantic's ValidationError as validation does."""
        key = (model, canonical_json(value))
        found = self._instances.get(key)
        if found is None:
            found = model.model_validate(value)
            with self._lock:
                if len(self._instances) >= self._size:
                    self._instances.clear()
                self._instances[key] = found
        return found

    def with_validated_elements(self, resource_class: type, part: dict) -> dict:
        """A shallow copy of `part` in which each shared-type element (a dict, or the dicts of a list) is its
        validated instance; anything else (a null, a value of the wrong shape) is left for the model to judge."""
        fields = shared_fields(resource_class)
        shell = dict(part)
        for name, value in part.items():
            spec = fields.get(name)
            if spec is None or value is None:
                continue
            model, is_list = spec
            if is_list:
                if type(value) is list:
                    shell[name] = [self.instance(model, item) if type(item) is dict else item for item in value]
            elif type(value) is dict:
                shell[name] = self.instance(model, value)
        return shell


MEMO = ElementMemo()
