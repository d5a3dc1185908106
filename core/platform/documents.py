"""Typed state documents: the base of the approval request and flow models
(core.approvals.model, core.flows.documents), converted to and from the store here only.

Why pydantic (strict, frozen) rather than a frozen dataclass: a document read back from
the store is checked field by field for free (a bool where an int belongs, a text where a
time belongs, a key nobody writes), and pydantic records which fields a document
actually held (`model_fields_set`). That is what keeps the store format byte-identical: a
field a document never had (`executed_at` before the execution, `hold_placers` of a flow
written before placers existed) stays absent on the way back instead of becoming `null`,
so `from_document(d).to_document() == d` for every stored layout, and what is written,
hashed and audited does not change. A dataclass would need a hand-written check per field
and a sentinel for "absent".

Sequences are tuples inside the model (a frozen model whose lists could be appended to
would not be frozen) and lists again in the document, as the store keeps them. Nested
JSON the flows own (an approval's `payload`, an executor's `result`) stays a dict.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WrapSerializer

from core.base.errors import MalformedDocumentError
from core.platform.transitions import OUTBOX

ERRORS_NAMED_MAX = 5  # a refusal's message names at most this many of the broken fields
ID_SHOWN_MAX = 80  # characters of a document's id a refusal repeats
T = TypeVar("T")


def _tuple_of_list(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value  # anything else is refused by strict validation


def _list_of_tuple(value: object, handler: Any) -> object:
    dumped = handler(value)
    return list(dumped) if isinstance(dumped, tuple) else dumped


Items = Annotated[tuple[T, ...], BeforeValidator(_tuple_of_list), WrapSerializer(_list_of_tuple)]
"""A stored list, held as a tuple by the model and written back as a list."""

DOCUMENT_CONFIG = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)


class OutboxEvent(BaseModel):
    """An audit event waiting in a document's outbox (core.platform.transitions.event)."""

    model_config = DOCUMENT_CONFIG

    event_key: str
    type: str
    actor: str
    role: str
    target: str
    user: str | None
    before: Any
    after: Any
    data: Any


class StoredDocument(BaseModel):
    """A state document of one collection. Subclasses name their fields; fields that a
    document may lack get a default and are written back only when it had them."""

    model_config = DOCUMENT_CONFIG
    what: ClassVar[str] = "document"  # how a refusal names the kind of document

    id: str = Field(alias="_id", min_length=1)
    audit_outbox: Items[OutboxEvent] = ()  # events of changes not yet appended to the chain

    @classmethod
    def from_document(cls, document: object) -> Self:
        """The model of a document as the store holds it.

        Raises: MalformedDocumentError naming the fields that do not fit (missing, of the
            wrong type, or unknown) — a bug or a changed store, never user input."""
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            raise malformed(cls.what, document, error) from None

    def to_document(self) -> dict:
        """The document as the store holds it: the fields this one has, in declaration order
        (the outbox last, where transitions.change and the opening inserts put it)."""
        document = self.model_dump(by_alias=True, exclude_unset=True)
        if OUTBOX in document:
            document[OUTBOX] = document.pop(OUTBOX)
        return document


def malformed(what: str, document: object, error: ValidationError) -> MalformedDocumentError:
    """The named error for a document pydantic refused, naming its broken fields."""
    problems = [(".".join(str(part) for part in item["loc"]), item["msg"]) for item in error.errors()]
    document_id = repr(document.get("_id") if isinstance(document, dict) else None)[:ID_SHOWN_MAX]
    named = "; ".join(f"{field or 'document'}: {message}" for field, message in problems[:ERRORS_NAMED_MAX])
    return MalformedDocumentError(
        f"{what} {document_id} is malformed ({named})", kind=what, document_id=document_id,
        fields=[field for field, _ in problems],
    )

