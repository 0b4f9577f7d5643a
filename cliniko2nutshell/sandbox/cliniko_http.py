"""HTTP shapes of the Cliniko sandbox: JSON bodies with links made absolute, list envelopes, error bodies.

Error bodies (undocumented by Cliniko except 422; our choice, one shape for all JSON errors):
    {"message": "<reason phrase>", "errors": {"<param or field>": "<what is wrong>"}}
`errors` is left out when there is nothing more to say (404, 429). 401 and the missing User-Agent are plain
text (see cliniko_gate.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from cliniko2nutshell.sandbox.cliniko_db import BASE

JSON = "application/json; charset=utf-8"


def api_base(request: Request) -> str:
    """`<scheme>://<host>/v1` of the request: what `{{base}}` in stored bodies becomes."""
    return f"{request.url.scheme}://{request.url.netloc}/v1"


def absolute(body: str, base: str) -> str:
    return body.replace(BASE, base)


def json_text(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(text.encode(), status_code=status, media_type=JSON, headers=dict(headers or {}))


def json_value(value: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return json_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")), status, headers)


def error(status: int, message: str, errors: Mapping[str, str] | None = None) -> Response:
    body: dict[str, object] = {"message": message}
    if errors:
        body["errors"] = dict(errors)
    return json_value(body, status)


def not_found() -> Response:
    return error(404, "Not Found")


def validation_failed(errors: Mapping[str, str]) -> Response:
    """The documented 422 (OAS23 components.responses.ValidationError)."""
    return error(422, "Validation Failed", errors)


def page_links(request: Request, page: int, per_page: int, total: int) -> dict[str, str]:
    """self, and previous/next only where they exist, as absolute URLs keeping the request's query string."""
    links = {"self": str(request.url)}
    if page > 1:
        links["previous"] = _with_page(request, page - 1)
    if page * per_page < total:
        links["next"] = _with_page(request, page + 1)
    return links


def _with_page(request: Request, page: int) -> str:
    items = list(request.query_params.multi_items())
    if any(k == "page" for k, _ in items):
        items = [(k, str(page) if k == "page" else v) for k, v in items]
    else:
        items.append(("page", str(page)))
    return str(request.url.replace(query=urlencode(items)))


def envelope(plural: str, bodies: Sequence[str], total: int, links: Mapping[str, str]) -> str:
    """`{"<plural>": [...], "total_entries": n, "links": {...}}` assembled as text: bodies are already JSON."""
    return (
        f'{{"{plural}":[{",".join(bodies)}],"total_entries":{total},'
        f'"links":{json.dumps(dict(links), separators=(",", ":"))}}}'
    )
