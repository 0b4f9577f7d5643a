"""The REST transport (https://app.nutshell.com/rest, the OpenAPI document in shared/specs): requests, error
bodies, JSON-Patch building and pagination. Typed results are the client's business (client.py)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    NutshellError,
    NutshellValidationError,
    PayloadTooLargeError,
    PermissionDenied,
    ProtocolError,
)
from cliniko2nutshell.nutshell.ids import NutshellId
from cliniko2nutshell.nutshell.sending import Safety, Sender, json_body

DEFAULT_REST_URL = "https://app.nutshell.com/rest"
AUTH_MESSAGE = "Nutshell refused the user e-mail / API key"
JSON_PATCH = "application/json-patch+json"

# Top-level fields whose value is a whole list replaced at once (the PATCH description names them).
_LIST_FIELDS = frozenset({"emails", "phones", "urls", "addresses"})


class RestTransport:
    def __init__(self, sender: Sender, base_url: str, auth: httpx.Auth) -> None:
        self.sender = sender
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self._origin = _origin(self.base_url)

    def url(self, path: str) -> str:
        """An absolute URL for `path`; a full URL (a `meta.next` link) must be on the REST host."""
        if path.startswith(("http://", "https://")):
            if _origin(path) != self._origin:
                raise ProtocolError(f"refusing to send the Nutshell credentials to another host ({_origin(path)})")
            return path
        return self.base_url + "/" + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        safety: Safety,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        """Send one REST request; the parsed JSON body (None for 204/empty)."""
        url = self.url(path)
        where = f"{method} {urlsplit(url).path}"
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = content_type or "application/json"

        def build() -> httpx.Request:
            return self.sender.http.build_request(method, url, params=_query(params), content=content, headers=headers)

        _, body = await self.sender.send(
            build, safety=safety, where=where, read_error=read_rest_error, auth=self.auth, parse=json_body
        )
        return body

    async def pages(
        self,
        path: str,
        key: str,
        *,
        params: Mapping[str, Any] | None = None,
        paging: Literal["page", "limit", "none"] = "page",
        limit: int = 100,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every element of a list endpoint, following `meta.next` whenever the answer gives one.

        `paging` is what the OpenAPI document declares for the path: "page" (`page[limit]`, `page[page]`
        0-based: contacts, accounts, notes), "limit" (activities declare only `limit`. Unconfirmed how they
        page; we add `page[page]`, and a server that ignores it is caught by the repeated-page check) or "none"
        (users, activity types).
        """
        query = dict(params or {})
        if paging == "page":
            query.setdefault("page[limit]", limit)
        elif paging == "limit":
            query.setdefault("limit", limit)
        page = 0
        next_url: str | None = None
        seen_links: set[str] = set()
        first_ids: set[str] = set()
        while True:
            if next_url is not None:
                body = await self.request("GET", next_url, safety=Safety.READ)
            elif paging != "none":
                body = await self.request("GET", path, safety=Safety.READ, params={**query, "page[page]": page})
            else:
                body = await self.request("GET", path, safety=Safety.READ, params=query)
            items = _items(body, key)
            if items:
                head = str(items[0].get("id"))
                if head in first_ids:
                    # A server that ignores our paging would serve page 0 forever: stop loudly, not silently.
                    raise ProtocolError(f"the {key} list repeats a page; paging is not understood", where=path)
                first_ids.add(head)
            for item in items:
                yield item
            link = _next_link(body)
            if link:
                absolute = urljoin(self.base_url + "/", link)
                if absolute in seen_links:
                    return  # a server that repeats its next link would loop forever
                seen_links.add(absolute)
                next_url = absolute
                continue
            if paging == "none" or len(items) < limit:
                return
            page += 1


def _items(body: Any, key: str) -> list[dict[str, Any]]:
    if body is None:
        return []
    if isinstance(body, list):
        return [i for i in body if isinstance(i, dict)]
    if not isinstance(body, dict):
        raise ProtocolError(f"expected a JSON object holding {key!r}")
    items = body.get(key, [])
    if not isinstance(items, list):
        raise ProtocolError(f"expected {key!r} to be a list")
    return [i for i in items if isinstance(i, dict)]


def first_entity(body: Any, key: str, where: str) -> dict[str, Any]:
    """The single entity of a REST answer: `{"<key>": [entity]}` or, for some creates, the bare entity."""
    if isinstance(body, dict):
        items = body.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            return items[0]
        if isinstance(items, dict):
            return items
        if "id" in body:
            return body
    raise ProtocolError(f"expected one entity under {key!r} in the answer", where=where)


def _next_link(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for holder in (body.get("meta"), body.get("links")):
        if isinstance(holder, dict):
            link = holder.get("next")
            if isinstance(link, str) and link:
                return link
    return None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    if not params:
        return None
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            out.append((key, "true" if v is True else "false" if v is False else str(v)))
    return out


def read_rest_error(response: httpx.Response) -> NutshellError | None:
    """None for a 2xx/3xx; else the typed error carrying Nutshell's own message."""
    status = response.status_code
    if status < 400:
        return None
    where = f"{response.request.method} {response.request.url.path}"
    message, title = _rest_message(response)
    if status == 401:
        return AuthError(f"{AUTH_MESSAGE}: {message}" if message else AUTH_MESSAGE, status=status, where=where)
    cls: type[NutshellError] = {
        403: PermissionDenied,
        404: NotFoundError,
        409: ConflictError,
        413: PayloadTooLargeError,
    }.get(status, NutshellValidationError if status < 500 else NutshellError)
    return cls(message or f"Nutshell answered HTTP {status}", status=status, where=where, title=title)


def _rest_message(response: httpx.Response) -> tuple[str, str | None]:
    """(message, title): the `errors[].detail` texts (or titles), and the first title."""
    try:
        body = response.json()
    except ValueError:
        # HTML error pages happen on 404/500: keep their title, never the page.
        match = re.search(r"<title>(.*?)</title>", response.text, re.I | re.S)
        return (match.group(1).strip()[:200] if match else ""), None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            parts: list[str] = []
            title: str | None = None
            for e in errors:
                if isinstance(e, dict):
                    text = e.get("detail") or e.get("title")
                    if isinstance(text, str) and text:
                        parts.append(text)
                    if title is None and isinstance(e.get("title"), str):
                        title = e["title"]
            if parts:
                return "; ".join(parts), title
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"], None
        if isinstance(error, str):
            return error, None
        if isinstance(body.get("message"), str):
            return body["message"], None
    return "", None


def json_pointer_token(name: str) -> str:
    """Escape one JSON Pointer segment (RFC 6901): custom field names may hold "/" or "~"."""
    return name.replace("~", "~0").replace("/", "~1")


def build_patch(kind: str, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON-Patch for `PATCH /<kind>/{id}` from changed top-level fields in the create payload's shape.

    - `customFields: {name: value}` becomes one op per field at `/<kind>/0/<name>` (the documented path);
    - `links: {rel: id-or-ids}` becomes `/<kind>/0/links/<rel>` (a list replaces the whole relation);
    - lists of emails/phones/urls/addresses replace the whole list;
    - anything else replaces the field.
    Unconfirmed: whether `replace` works on a field that has no value yet; we use `replace` throughout, as
    the public examples do. A None value clears the field with `replace` to null.
    """
    if not changes:
        raise ValueError("nothing to update: `changes` is empty")
    ops: list[dict[str, Any]] = []
    base = f"/{kind}/0"
    for key, value in changes.items():
        if key == "customFields":
            if not isinstance(value, Mapping):
                raise ValueError("customFields must be an object of {field name: value}")
            for name, field_value in value.items():
                ops.append({"op": "replace", "path": f"{base}/{json_pointer_token(name)}", "value": field_value})
        elif key == "links":
            if not isinstance(value, Mapping):
                raise ValueError("links must be an object of {relation: id or ids}")
            for rel, ids in value.items():
                ops.append({"op": "replace", "path": f"{base}/links/{json_pointer_token(rel)}", "value": ids})
        elif key in _LIST_FIELDS and value is not None and not isinstance(value, list):
            raise ValueError(f"{key} must be the whole list of values")
        else:
            ops.append({"op": "replace", "path": f"{base}/{json_pointer_token(key)}", "value": value})
    return ops


def jsonable(value: Any, path: str = "payload") -> Any:
    """A copy of a payload ready for JSON: NutshellId becomes its REST form; anything else unknown is refused
    with the path of the offending value (e.g. an unresolved reference from the mapping layer)."""
    if isinstance(value, NutshellId):
        return value.rest
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path} has a non-text key {k!r}")
            out[k] = jsonable(v, f"{path}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise ValueError(
        f"{path} holds a {type(value).__name__}, which cannot be sent to Nutshell (resolve references to ids first)"
    )
