"""File contents: `POST /file/api/{id}` (multipart, part `file`) fills a file reserved through
`editActivity` / `newActivity` `logNote.files`; `GET /file/api/{id}` downloads it, with HTTP Range (reference §2.8).

Same Basic auth as the APIs. Errors use the JSON-RPC error object, since these URLs belong to the JSON-RPC side.
"""

from __future__ import annotations

import mimetypes
from email.message import Message
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cliniko2nutshell.sandbox import nutshell_rpc_shapes as shapes
from cliniko2nutshell.sandbox.nutshell_auth import Guard
from cliniko2nutshell.sandbox.nutshell_state import NutshellError, NutshellState, Record

# The body may exceed the file by the multipart framing; beyond this slack we stop keeping bytes (but keep reading,
# so the client gets the 413 rather than a reset connection).
FRAMING_SLACK = 64 * 1024


def _error(exc: NutshellError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message, "data": None}},
        status_code=exc.status,
        headers=exc.headers,
    )


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _header_params(name: str, value: str) -> Message:
    message = Message()
    message[name] = value
    return message


def parse_multipart(body: bytes, content_type: str, field: str) -> tuple[str | None, str | None, bytes] | None:
    """(filename, content type, bytes) of the part named `field`, or None. Exact bytes: nothing is decoded."""
    boundary = _header_params("content-type", content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        disposition = _header_params("content-disposition", headers.get("content-disposition", ""))
        if disposition.get_param("name", header="content-disposition") == field:
            return disposition.get_filename(), headers.get("content-type"), content
    return None


def _byte_range(header: str | None, total: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single `bytes=` range; None to send everything; NutshellError 416 if
    unsatisfiable. Several ranges get the whole file, which RFC 9110 allows."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_s, dash, last_s = header[6:].strip().partition("-")
    if not dash or not (first_s.isdigit() or last_s.isdigit()):
        return None
    if not first_s:  # suffix: the last N bytes
        length = int(last_s)
        if length == 0:
            raise NutshellError(
                416, "Range Not Satisfiable", "Empty suffix range", headers={"Content-Range": f"bytes */{total}"}
            )
        return max(0, total - length), total - 1
    first = int(first_s)
    last = min(int(last_s), total - 1) if last_s.isdigit() else total - 1
    if first >= total or first > last:
        raise NutshellError(
            416, "Range Not Satisfiable", f"The file has {total} bytes", headers={"Content-Range": f"bytes */{total}"}
        )
    return first, last


def file_routes(state: NutshellState, guard: Guard) -> list[Route]:
    def file_record(request: Request) -> Record:
        raw = request.path_params["file_id"]
        rec = state.records["files"].get(int(raw)) if raw.isdigit() else None
        if rec is None or not state.is_live(rec):
            raise NutshellError(404, "Not Found", f"File {raw} not found")
        return rec

    async def upload(request: Request) -> Response:
        try:
            principal = guard.check(request.headers.get("authorization"))
            rec = file_record(request)
            content_type = request.headers.get("content-type", "")
            if not content_type.lower().startswith("multipart/form-data"):
                raise NutshellError(400, "Bad Request", "Upload the file as multipart/form-data, part 'file'")
            limit = state.file_size_limit
            body = bytearray()
            too_big = False
            async for chunk in request.stream():
                if len(body) + len(chunk) <= limit + FRAMING_SLACK:
                    body += chunk
                else:
                    too_big = True
            part = None if too_big else parse_multipart(bytes(body), content_type, "file")
            if too_big or (part is not None and len(part[2]) > limit):
                size = _megabytes(len(part[2])) if part is not None else f"more than {_megabytes(limit)}"
                raise NutshellError(
                    413,
                    "Payload Too Large",
                    f"File too large: {size} is over the {_megabytes(limit)} limit for {rec.data['name']!r}",
                )
            if part is None:
                raise NutshellError(400, "Bad Request", "The multipart body has no part named 'file'")
            filename, part_type, content = part
            mime = part_type if part_type and part_type != "application/octet-stream" else None
            mime = mime or mimetypes.guess_type(filename or rec.data["name"])[0] or "application/octet-stream"
            with state.lock:
                state.store_upload(rec, content, mime.split(";")[0].strip(), principal.user_id)
                answer: dict[str, Any] = shapes.file(state, rec, str(request.base_url).rstrip("/"))
        except NutshellError as exc:
            return _error(exc)
        return JSONResponse(answer)

    async def download(request: Request) -> Response:
        try:
            guard.check(request.headers.get("authorization"))
            rec = file_record(request)
            content = state.blobs.get(rec.id)
            if content is None:
                raise NutshellError(404, "Not Found", f"File {rec.id} has not been uploaded yet")
            headers = {
                "Accept-Ranges": "bytes",
                "ETag": f'"{rec.data["sha256"]}"',
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(rec.data['name'])}",
            }
            span = _byte_range(request.headers.get("range"), len(content))
        except NutshellError as exc:
            return _error(exc)
        media = rec.data["mime"]
        if span is None:
            return Response(content, media_type=media, headers=headers)
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(content)}"
        return Response(content[first : last + 1], status_code=206, media_type=media, headers=headers)

    return [
        Route("/file/api/{file_id}", upload, methods=["POST"]),
        Route("/file/api/{file_id}", download, methods=["GET"]),
    ]
