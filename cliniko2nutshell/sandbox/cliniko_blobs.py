"""The sandbox's stand-in for S3: short-lived presigned-looking URLs for attachment contents, and their answers.

`GET /v1/patient_attachments/{id}/content` answers 303 to `<blob base>/blobs/<token>?X-Amz-Expires=<ttl>`. The
token is stateless: the attachment id and an expiry signed with a per-app secret, so nothing grows in memory.
Unconfirmed: the real URL lifetime. We choose 300 s (a typical presign lifetime). Like S3, the blob endpoint
wants no Authorization header (400 "only one auth mechanism") and refuses expired URLs (403), in XML.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

DEFAULT_TTL = 300.0

ONE_AUTH_ONLY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism '
    b"allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization "
    b"header should be specified</Message></Error>"
)
EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired'
    b"</Message></Error>"
)
BAD_TOKEN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request '
    b"signature we calculated does not match the signature you provided.</Message></Error>"
)


@dataclass
class BlobSigner:
    ttl: float = DEFAULT_TTL
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def token(self, attachment_id: str, now: float | None = None) -> str:
        expires_ms = int(((time.time() if now is None else now) + self.ttl) * 1000)
        payload = f"{attachment_id}.{expires_ms}"
        return f"{payload}.{self._sign(payload)}"

    def url(self, blob_base: str, attachment_id: str) -> str:
        return f"{blob_base}/blobs/{self.token(attachment_id)}?X-Amz-Expires={int(self.ttl)}"

    def check(self, token: str, now: float | None = None) -> tuple[str | None, bytes | None]:
        """(attachment id, None) for a good token, else (None, the S3-like XML error to answer with 403)."""
        attachment_id, _, rest = token.partition(".")
        expires, _, signature = rest.partition(".")
        payload = f"{attachment_id}.{expires}"
        if not attachment_id or not expires.isdigit() or not hmac.compare_digest(signature, self._sign(payload)):
            return None, BAD_TOKEN
        if (time.time() if now is None else now) * 1000 >= int(expires):
            return None, EXPIRED
        return attachment_id, None

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()[:32]
