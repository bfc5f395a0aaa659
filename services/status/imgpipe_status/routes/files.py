"""`GET /files/{key}` with the S3 backend: a redirect to a fresh link into the bucket.

Links in output CSVs and events are presigned and expire (S3_URL_EXPIRY); this one does not,
because every request signs a new link. No request to S3 is made here: signing is local, and
a key that is not there answers 404 from the bucket itself. (With the local backend, `/files`
is a static directory instead; see app.py.)
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse

from imgpipe_runtime.files import FOLDERS, InvalidKey, checked_key
from imgpipe_status.deps import FilesDep

router = APIRouter()


@router.api_route(
    "/files/{key:path}",
    methods=["GET", "HEAD"],
    status_code=307,
    response_class=RedirectResponse,
    responses={307: {"description": "Where the file can be downloaded now"}, 404: {}},
    summary="A processed image or output CSV (redirects to the object store)",
)
async def stored_file(key: str, files: FilesDep) -> RedirectResponse:
    try:
        checked_key(key)
    except InvalidKey:
        raise HTTPException(404, "no such file") from None
    if not key.startswith(FOLDERS):
        raise HTTPException(404, "no such file")
    return RedirectResponse(await files.url_for(key), status_code=307)
