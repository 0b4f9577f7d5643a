"""What the extraction reads: each Cliniko object, where it lives, how to see all of it, which ids to keep.

Hidden-by-default records (reference §2): lists leave out archived records, and the appointment lists cancelled
ones, unless a `q[]` filter on that column lifts the scope; `:*` ("any value") lifts it without filtering. Every
object therefore asks `<column>:*` for each of archived_at, cancelled_at and deleted_at that its OAS23 whitelist
lets it filter on (deleted_at is the pre-archive soft delete; the reference says to try it where filterable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cliniko2nutshell.cliniko.models import raw_link_url, record_id_from_raw, url_last_segment
from cliniko2nutshell.project.store import RecordRow

SCOPE_COLUMNS = ("archived_at", "cancelled_at", "deleted_at")


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """Store column `column` takes the id of the to-one link `link`; `collection` restricts it to links into that
    collection (a referral source's `referrer` may point at a patient or a contact)."""

    column: str
    link: str
    collection: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    object: str  # the store's `object` name and the JSON key of the records in a list page
    paths: tuple[str, ...]  # list endpoints whose union is the object (practitioners: active and inactive)
    scope: tuple[str, ...] = ()  # hiding columns this resource can filter on (subset of SCOPE_COLUMNS)
    foreign: tuple[ForeignKey, ...] = ()
    # Optional objects: a 404 on the list means this API (or sandbox) does not serve it; recorded, not fatal.
    optional: bool = False
    # Expected request cost; the costliest objects start first so that no long sequential page chain (or the
    # attachment downloads) is left running alone at the end.
    weight: int = 1
    archived_when_inactive: bool = False  # practitioners are never archived, only inactive

    @property
    def archivable(self) -> bool:
        return "archived_at" in self.scope

    @property
    def cancellable(self) -> bool:
        return "cancelled_at" in self.scope

    def lift_scope(self, except_column: str | None = None) -> list[str]:
        """`q[]` filters that make archived, cancelled and deleted records visible."""
        return [f"{c}:*" for c in self.scope if c != except_column]

    def row(self, raw: dict[str, Any]) -> RecordRow:
        """The store row of one raw record: id, timestamps, flags and the foreign-id columns."""
        record_id = record_id_from_raw(raw)
        if record_id is None:
            raise ValueError(f"a {self.object} record has neither an id nor links.self")
        foreign: dict[str, str | None] = {}
        for fk in self.foreign:
            url = raw_link_url(raw.get(fk.link))
            if url is not None and fk.collection is not None and f"/{fk.collection}/" not in url:
                url = None
            foreign[fk.column] = url_last_segment(url)
        archived = bool(raw.get("archived_at") or raw.get("deleted_at"))
        if self.archived_when_inactive and raw.get("active") is False:
            archived = True
        return RecordRow(
            object=self.object,
            id=record_id,
            raw=raw,
            created_at=_text(raw.get("created_at")),
            updated_at=_text(raw.get("updated_at")),
            archived=archived,
            cancelled=bool(raw.get("cancelled_at")),
            foreign=foreign,
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _fk(*pairs: str) -> tuple[ForeignKey, ...]:
    """`_fk("patient", "practitioner")`: column `<link>_id` from link `<link>`."""
    return tuple(ForeignKey(f"{p}_id", p) for p in pairs)


ARCHIVED = ("archived_at",)
ARCHIVED_DELETED = ("archived_at", "deleted_at")
ALL_SCOPES = ("archived_at", "cancelled_at", "deleted_at")

# Filterable scope columns per resource are those of OAS23's q[] whitelists (shared/specs/cliniko-openapi.json).
RESOURCES: tuple[ResourceSpec, ...] = (
    # First: every processed attachment costs one more request (its file), usually the largest share of all.
    ResourceSpec("patient_attachments", ("/patient_attachments",), ARCHIVED, _fk("patient", "user"), weight=10),
    ResourceSpec("communications", ("/communications",), ARCHIVED, _fk("patient", "booking", "invoice"), weight=9),
    ResourceSpec(
        "attendees",
        ("/attendees",),
        ALL_SCOPES,
        _fk("patient", "booking"),
        weight=8,
    ),
    ResourceSpec(
        "individual_appointments",
        ("/individual_appointments",),
        ALL_SCOPES,
        _fk("patient", "practitioner", "business", "appointment_type"),
        weight=8,
    ),
    ResourceSpec(
        "bookings",
        ("/bookings",),
        ALL_SCOPES,
        _fk("patient", "practitioner", "business", "appointment_type"),
        weight=8,
    ),
    ResourceSpec("invoice_items", ("/invoice_items",), ARCHIVED_DELETED, _fk("invoice"), weight=7),
    ResourceSpec(
        "invoices",
        ("/invoices",),
        ARCHIVED_DELETED,
        # `appointment` links into the legacy /appointments/{id}, whose id is the booking id (reference §6).
        (*_fk("patient", "practitioner", "business"), ForeignKey("booking_id", "appointment")),
        weight=7,
    ),
    ResourceSpec(
        "treatment_notes", ("/treatment_notes",), ARCHIVED_DELETED, _fk("patient", "practitioner", "booking"), weight=6
    ),
    ResourceSpec("patients", ("/patients",), ARCHIVED, (ForeignKey("contact_id", "referring_doctor"),), weight=5),
    ResourceSpec("medical_alerts", ("/medical_alerts",), ARCHIVED_DELETED, _fk("patient"), weight=4),
    ResourceSpec(
        "group_appointments",
        ("/group_appointments",),
        ARCHIVED_DELETED,
        _fk("practitioner", "business", "appointment_type"),
        weight=3,
    ),
    ResourceSpec("patient_cases", ("/patient_cases",), ARCHIVED, _fk("patient", "contact"), optional=True, weight=3),
    ResourceSpec(
        "referral_sources",
        ("/referral_sources",),
        (),
        (*_fk("patient"), ForeignKey("contact_id", "referrer", "contacts")),
        weight=3,
    ),
    ResourceSpec(
        "unavailable_blocks",
        ("/unavailable_blocks",),
        ARCHIVED_DELETED,
        _fk("practitioner", "business"),
        optional=True,
        weight=2,
    ),
    ResourceSpec("contacts", ("/contacts",), ARCHIVED_DELETED, weight=2),
    ResourceSpec(
        "practitioners",
        ("/practitioners", "/practitioners/inactive"),
        (),
        _fk("user"),
        archived_when_inactive=True,
    ),
    ResourceSpec("users", ("/users",)),
    ResourceSpec("businesses", ("/businesses",), ARCHIVED_DELETED),
    ResourceSpec("appointment_types", ("/appointment_types",), ARCHIVED),
    ResourceSpec("billable_items", ("/billable_items",), ARCHIVED),
    ResourceSpec("products", ("/products",), ARCHIVED),
    ResourceSpec("taxes", ("/taxes",), optional=True),
    ResourceSpec("concession_types", ("/concession_types",)),
    ResourceSpec("treatment_note_templates", ("/treatment_note_templates",), ARCHIVED_DELETED),
)

BY_OBJECT: dict[str, ResourceSpec] = {r.object: r for r in RESOURCES}

# GET /settings is one document, stored as object "settings" with id "settings".
SETTINGS_OBJECT = "settings"
SETTINGS_ID = "settings"
ATTACHMENTS_OBJECT = "patient_attachments"
