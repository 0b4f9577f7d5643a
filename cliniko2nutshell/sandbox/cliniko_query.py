"""Cliniko list queries: `q[]` filters on each resource's whitelist, `sort`/`order`, `page`/`per_page`, as SQL.

The whitelists were extracted once from the `q[]` descriptions of OAS23 (Cliniko's official OpenAPI document,
shared/specs/cliniko-openapi.json) and are hard-coded: the spec is not shipped at run time. Operators per field
type follow reference §2. Every problem with a query raises `QueryError`, which the app answers with a 400.

Where a value lives (the schema of cliniko_db.py): `id` and the timestamps are columns, relation ids (`<rel>_id`)
are in `fk`, arrays are in `fk` (or the body), every other scalar is `json_extract(body, '$.field')`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# fmt: off
LIST_FILTERS: dict[str, dict[str, str]] = {
    "patients": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "updated_at": "date-time",
                 "date_of_birth": "date", "email": "string", "first_name": "string", "last_name": "string",
                 "old_reference_id": "string", "preferred_first_name": "string"},
    "practitioners": {"id": "int64", "created_at": "date-time", "updated_at": "date-time", "user_id": "int64",
                      "show_in_online_bookings": "boolean"},
    "users": {"id": "int64", "created_at": "date-time", "updated_at": "date-time"},
    "businesses": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                   "updated_at": "date-time", "appointment_type_ids": "array", "show_in_online_bookings": "boolean"},
    "appointment_types": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                          "updated_at": "date-time", "category": "string", "online_payments_mode": "string",
                          "show_in_online_bookings": "boolean", "appointment_confirmation_template_ids": "array",
                          "appointment_reminder_template_ids": "array"},
    "individual_appointments": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                                "deleted_at": "date-time", "updated_at": "date-time", "appointment_type_id": "int64",
                                "business_id": "int64", "cancelled_at": "date-time", "ends_at": "date-time",
                                "patient_id": "int64", "practitioner_id": "int64", "repeated_from_id": "int64",
                                "starts_at": "date-time"},
    "group_appointments": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                           "deleted_at": "date-time", "updated_at": "date-time", "appointment_type_id": "int64",
                           "business_id": "int64", "ends_at": "date-time", "patient_ids": "array",
                           "practitioner_id": "int64", "repeated_from_id": "int64", "starts_at": "date-time"},
    "attendees": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                  "updated_at": "date-time", "appointment_id": "int64", "booking_id": "int64",
                  "cancelled_at": "date-time", "patient_case_id": "int64", "patient_id": "int64"},
    "bookings": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                 "updated_at": "date-time", "appointment_type_id": "int64", "business_id": "int64",
                 "cancelled_at": "date-time", "did_not_arrive": "boolean", "ends_at": "date-time",
                 "patient_ids": "array", "practitioner_id": "int64", "repeated_from_id": "int64",
                 "starts_at": "date-time"},
    "invoices": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                 "updated_at": "date-time", "appointment_id": "int64", "business_id": "int64", "issue_date": "date",
                 "number": "integer", "patient_id": "int64", "practitioner_id": "int64", "status": "integer"},
    "invoice_items": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                      "updated_at": "date-time", "invoice_id": "int64"},
    "billable_items": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                       "updated_at": "date-time", "tax_id": "int64"},
    "products": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "updated_at": "date-time",
                 "name": "string", "tax_id": "int64"},
    "taxes": {"id": "int64", "created_at": "date-time", "updated_at": "date-time"},
    "contacts": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                 "updated_at": "date-time", "email": "string", "first_name": "string", "last_name": "string",
                 "type_code": "integer"},
    "concession_types": {"id": "int64", "created_at": "date-time", "updated_at": "date-time"},
    "referral_sources": {"id": "int64", "created_at": "date-time", "updated_at": "date-time"},
    "medical_alerts": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "deleted_at": "date-time",
                       "updated_at": "date-time", "patient_id": "int64"},
    "communications": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                       "updated_at": "date-time", "category_code": "integer", "patient_id": "int64"},
    "patient_attachments": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                            "updated_at": "date-time", "content_type": "string", "description": "string",
                            "filename": "string", "patient_id": "int64", "processed_at": "date-time",
                            "size": "integer", "user_id": "int64"},
    "treatment_notes": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                        "deleted_at": "date-time", "updated_at": "date-time", "attendee_id": "int64",
                        "booking_id": "int64", "draft": "boolean", "patient_id": "int64", "practitioner_id": "int64",
                        "treatment_note_template_id": "int64"},
    "treatment_note_templates": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                                 "deleted_at": "date-time", "updated_at": "date-time"},
    "patient_cases": {"id": "int64", "archived_at": "date-time", "created_at": "date-time", "updated_at": "date-time",
                      "expiry_date": "date", "patient_id": "int64"},
    "unavailable_blocks": {"id": "int64", "archived_at": "date-time", "created_at": "date-time",
                           "deleted_at": "date-time", "updated_at": "date-time", "business_id": "int64",
                           "ends_at": "date-time", "practitioner_id": "int64", "repeated_from_id": "int64",
                           "starts_at": "date-time"},
}
# fmt: on

# Columns that hide a record by default (reference §2). A resource is scoped by those of them it can filter on:
# in OAS23 the q[] of every GET /{resource}/{id} is exactly that subset of its list whitelist.
SCOPE_COLUMNS = ("archived_at", "cancelled_at", "deleted_at")
COLUMNS = frozenset({"id", "created_at", "updated_at", *SCOPE_COLUMNS})

# Operators per field type (reference §2, DOCS25). Longest first, so that `>=` is not read as `>`.
OPERATORS = ("!=", ">=", "<=", "~~", "!?", "=", ">", "<", "~", "?", "*")
TYPE_OPERATORS: dict[str, frozenset[str]] = {
    "date": frozenset({"=", ">=", ">", "<=", "<", "?", "!?"}),
    "date-time": frozenset({">=", ">", "<=", "<", "?", "!?", "*"}),
    "int64": frozenset({"=", "!=", ">=", ">", "<=", "<", "?", "!?"}),
    "integer": frozenset({"=", "!=", ">=", ">", "<=", "<", "?", "!?"}),
    "decimal": frozenset({"=", "!=", ">=", ">", "<=", "<", "?", "!?"}),
    "string": frozenset({"=", "!=", "~", "~~", "?", "!?"}),
    "boolean": frozenset({"=", "!="}),
    "array": frozenset({"~"}),
}
SQL_COMPARISON = {"=": "=", "!=": "!=", ">=": ">=", ">": ">", "<=": "<=", "<": "<"}

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100

_FILTER = re.compile(r"^(?P<field>[a-z_][a-z0-9_]*):(?P<rest>.*)$", re.DOTALL)
_DATE = re.compile(r"^[0-9*]{4}-[0-9*]{2}-[0-9*]{2}$")
_INT = re.compile(r"^-?[0-9]+$")
_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class QueryError(ValueError):
    """A query the API refuses: answered with 400 and `{"message": ..., "errors": {param: reason}}`."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    kind: str  # the field type of the whitelist
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Where:
    """SQL conditions (ANDed) and their parameters, plus the scope columns the filters lift."""

    conditions: tuple[str, ...]
    params: tuple[Any, ...]
    lifted: frozenset[str]


def scope_columns(resource: str) -> tuple[str, ...]:
    whitelist = LIST_FILTERS[resource]
    return tuple(c for c in SCOPE_COLUMNS if c in whitelist)


def id_filters(resource: str) -> dict[str, str]:
    """The q[] whitelist of GET /{resource}/{id}: the scope columns only (as in OAS23)."""
    return {c: LIST_FILTERS[resource][c] for c in scope_columns(resource)}


def parse_filters(raw: Iterable[str], whitelist: Mapping[str, str]) -> list[Filter]:
    filters = []
    for text in raw:
        m = _FILTER.match(text.strip())
        if m is None:
            raise QueryError("q[]", f"{text!r} is not of the form field:<operator><value>")
        name, rest = m["field"], m["rest"]
        kind = whitelist.get(name)
        if kind is None:
            allowed = ", ".join(sorted(whitelist)) or "none"
            raise QueryError("q[]", f"filtering on {name!r} is not allowed here (allowed: {allowed})")
        op = next((o for o in OPERATORS if rest.startswith(o)), None)
        if op is None:
            raise QueryError("q[]", f"{text!r} has no operator")
        if op not in TYPE_OPERATORS[kind]:
            ops = " ".join(sorted(TYPE_OPERATORS[kind]))
            raise QueryError("q[]", f"operator {op!r} is not allowed on {name!r} ({kind}; allowed: {ops})")
        value = rest[len(op) :]
        if op in ("?", "!?", "*"):
            if value.strip():
                raise QueryError("q[]", f"operator {op!r} on {name!r} takes no value")
            value = ""
        filters.append(Filter(name, kind, op, value))
    return filters


def build_where(resource: str, filters: Sequence[Filter]) -> Where:
    """Conditions for `filters` plus the default scope (archived, cancelled, deleted hidden) they do not lift."""
    conditions: list[str] = []
    params: list[Any] = []
    lifted = frozenset(f.field for f in filters if f.field in SCOPE_COLUMNS)
    for column in scope_columns(resource):
        if column not in lifted:
            conditions.append(f"{column} IS NULL")
    for f in filters:
        sql, values = _condition(resource, f)
        if sql:
            conditions.append(sql)
            params.extend(values)
    return Where(tuple(conditions), tuple(params), lifted)


def _expression(field: str, kind: str) -> str:
    if field in COLUMNS:
        return f"CAST({field} AS INTEGER)" if field == "id" else field
    if field.endswith("_id") and kind == "int64":
        return f"CAST(json_extract(fk, '$.{field}') AS INTEGER)"
    return f"json_extract(body, '$.{field}')"


def _condition(resource: str, f: Filter) -> tuple[str, list[Any]]:
    if f.op == "*":
        return "", []
    expr = _expression(f.field, f.kind)
    if f.op in ("?", "!?"):
        if f.kind == "string":
            # Unconfirmed: whether "" counts as null. We choose yes (Rails' present/blank): the API mixes both.
            if f.op == "?":
                return f"({expr} IS NOT NULL AND {expr} != '')", []
            return f"({expr} IS NULL OR {expr} = '')", []
        return f"{expr} {'IS NOT NULL' if f.op == '?' else 'IS NULL'}", []
    if f.kind == "array":
        return _array_contains(resource, f)
    if f.kind in ("int64", "integer", "decimal"):
        return _numeric(expr, f)
    if f.kind == "boolean":
        if f.value not in ("true", "false"):
            raise QueryError("q[]", f"{f.field!r} takes true or false, not {f.value!r}")
        return f"{expr} {SQL_COMPARISON[f.op]} ?", [1 if f.value == "true" else 0]
    if f.kind == "date":
        return _date(expr, f)
    if f.kind == "date-time":
        return _datetime(expr, f)
    # string
    if f.op == "~":
        return f"cliniko_contains({expr}, ?)", [f.value]
    if f.op == "~~":
        return f"cliniko_like({expr}, ?)", [f.value]
    return f"{expr} {SQL_COMPARISON[f.op]} ?", [f.value]


def _numeric(expr: str, f: Filter) -> tuple[str, list[Any]]:
    pattern = _DECIMAL if f.kind == "decimal" else _INT
    values = [v.strip() for v in f.value.split(",")] if f.op == "=" else [f.value.strip()]
    if not values or not all(pattern.match(v) for v in values):
        # The live wording (quoted for `status`, in issue 13). Unconfirmed: the rest of the 400's body, and whether
        # id and decimal filters say the same; we use it for every numeric filter.
        raise QueryError("q[]", f"Filter value for {f.field} must be a number")
    numbers = [float(v) if f.kind == "decimal" else int(v) for v in values]
    if f.kind == "decimal":
        expr = f"CAST({expr} AS REAL)"
    if f.op == "=" and len(numbers) > 1:
        return f"{expr} IN ({', '.join('?' * len(numbers))})", numbers
    return f"{expr} {SQL_COMPARISON[f.op]} ?", numbers


def _array_contains(resource: str, f: Filter) -> tuple[str, list[Any]]:
    ids = [v.strip() for v in f.value.split(",")]
    if not ids or not all(_INT.match(v) for v in ids):
        raise QueryError("q[]", f"{f.field!r} takes an id, not {f.value!r}")
    # Unconfirmed: what a comma list means for `~` on an array. We choose "contains every listed id".
    source = f"COALESCE(json_extract(fk, '$.{f.field}'), json_extract(body, '$.{f.field}'), '[]')"
    one = f"EXISTS (SELECT 1 FROM json_each({source}) WHERE CAST(json_each.value AS INTEGER) = ?)"
    if resource == "bookings" and f.field == "patient_ids":
        # Individual appointments carry one patient link, not patient_ids: a booking "contains" its patient.
        one = f"({one} OR CAST(json_extract(fk, '$.patient_id') AS INTEGER) = ?)"
        return " AND ".join([one] * len(ids)), [int(v) for v in ids for _ in (0, 1)]
    return " AND ".join([one] * len(ids)), [int(v) for v in ids]


def _date(expr: str, f: Filter) -> tuple[str, list[Any]]:
    if not _DATE.match(f.value):
        raise QueryError("q[]", f"{f.field!r} takes a date YYYY-MM-DD (with * wildcards for =), not {f.value!r}")
    if "*" in f.value:
        if f.op != "=":
            raise QueryError("q[]", f"date wildcards only work with = (got {f.op!r} on {f.field!r})")
        # Each * stands for one digit, as in `****-05-**`.
        return f"{expr} GLOB ?", [f.value.replace("*", "[0-9]")]
    try:
        datetime.strptime(f.value, "%Y-%m-%d")
    except ValueError:
        raise QueryError("q[]", f"{f.value!r} is not a valid date") from None
    return f"{expr} {SQL_COMPARISON[f.op]} ?", [f.value]


def _datetime(expr: str, f: Filter) -> tuple[str, list[Any]]:
    moment = parse_timestamp(f.value)
    if moment is None:
        raise QueryError("q[]", f"{f.field!r} takes a UTC timestamp like 2024-01-31T09:00:00Z, not {f.value!r}")
    text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    op = f.op
    if moment.microsecond:
        # Stored times have whole seconds: t > 10.5 and t >= 10.5 both mean t > 10; t < 10.5 means t <= 10.
        op = ">" if op in (">", ">=") else "<="
    return f"{expr} {SQL_COMPARISON[op]} ?", [text]


def parse_timestamp(value: str) -> datetime | None:
    """An ISO-8601 timestamp with a zone (Z or an offset), in UTC. None when it is not one."""
    text = value.strip()
    if "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        # The API expects UTC `Z` values (reference §1); a naive one is more likely a client bug than intended.
        return None
    return moment.astimezone(UTC)


def parse_sort(sort: str | None, order: str | None, whitelist: Mapping[str, str]) -> str:
    """ORDER BY for `sort=col[:asc|desc],...` and the deprecated `order=asc|desc`; ties broken by insertion."""
    if order is not None and order not in ("asc", "desc"):
        raise QueryError("order", f"must be asc or desc, not {order!r}")
    default_dir = (order or "asc").upper()
    terms: list[str] = []
    for part in (sort or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, direction = part.partition(":")
        direction = direction.lower() or default_dir.lower()
        if direction not in ("asc", "desc"):
            raise QueryError("sort", f"direction must be asc or desc, not {direction!r}")
        kind = whitelist.get(name)
        # Unconfirmed: which columns can be sorted on. We choose the filterable scalar fields (and the timestamps).
        if kind is None or kind == "array":
            raise QueryError("sort", f"cannot sort on {name!r}")
        terms.append(f"{_expression(name, kind)} {direction.upper()}")
    if not terms:
        terms.append(f"created_at {default_dir}")
    first_dir = terms[0].rsplit(" ", 1)[1]
    terms.append(f"seq {first_dir}")
    return ", ".join(terms)


def parse_page(page: str | None, per_page: str | None) -> tuple[int, int]:
    """(page, per_page). Unconfirmed: what per_page > 100 does. We answer 400 (a client notices, unlike a clamp)."""
    number = _positive_int("page", page, 1)
    size = _positive_int("per_page", per_page, DEFAULT_PER_PAGE)
    if size > MAX_PER_PAGE:
        raise QueryError("per_page", f"must be between 1 and {MAX_PER_PAGE}, not {size}")
    return number, size


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not _INT.match(value.strip()) or int(value) < 1:
        raise QueryError(name, f"must be a whole number of at least 1, not {value!r}")
    return int(value)


def contains(haystack: object, needle: str | None) -> bool:
    """`~`: contains, case-insensitively (Cliniko runs on PostgreSQL, where `~` is an ILIKE '%v%')."""
    if haystack is None or needle is None:
        return False
    return needle.casefold() in str(haystack).casefold()


_LIKE_CACHE: dict[str, re.Pattern[str]] = {}


def like(haystack: object, pattern: str | None) -> bool:
    """`~~`: a whole-value match where `%` is any run of characters and `_` any one, case-insensitively."""
    if haystack is None or pattern is None:
        return False
    compiled = _LIKE_CACHE.get(pattern)
    if compiled is None:
        parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
        compiled = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
        if len(_LIKE_CACHE) < 1024:
            _LIKE_CACHE[pattern] = compiled
    return compiled.fullmatch(str(haystack)) is not None
