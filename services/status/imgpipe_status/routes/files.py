"""`GET /files/{key}` when AUTH_MODE=required: a signed link, or the owner's API key.

Links handed out in CSVs, statuses and webhooks carry a signed `token` (a capability: whoever
received the link may download that one file until the token expires). Without a token, the
caller's API key must belong to the tenant that uploaded the request the file belongs to; any
other caller learns nothing about whether the file exists (404).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from imgpipe_runtime.files import LocalFileStore
from imgpipe_runtime.web import BearerKey, caller_tenant, unauthorized
from imgpipe_status.deps import RepositoryDep
from imgpipe_status.domain import request_id_of
from imgpipe_status.schemas import UNAUTHORIZED, ErrorOut

router = APIRouter()

_NO_SUCH_FILE = "no such file; take the link from GET /status/{request_id}"


@router.get(
    "/files/{key:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "text/csv": {}}, "description": "The file."},
        404: {"model": ErrorOut, "description": "No such file (or not the caller's)."},
        **UNAUTHORIZED,
    },
    summary="A processed image or an output CSV",
)
async def download_file(
    key: str,
    request: Request,
    repository: RepositoryDep,
    credentials: BearerKey,
    token: str | None = None,
) -> FileResponse:
    status = request.app.state.adapters
    if token is None and credentials is None:
        raise unauthorized(
            "this link needs its token, or your API key as 'Authorization: Bearer <key>'"
        )
    request_id = request_id_of(key)
    if request_id is None:
        raise HTTPException(404, _NO_SUCH_FILE)
    signed = token is not None and status.signer is not None and status.signer.is_valid(key, token)
    if not signed:
        if credentials is None:
            raise unauthorized(
                "the link's token is wrong or expired: take a fresh link from "
                "GET /status/{request_id}, or send your API key as 'Authorization: Bearer <key>'"
            )
        tenant = await caller_tenant(request, credentials)
        if await repository.get_request(request_id, tenant) is None:
            raise HTTPException(404, _NO_SUCH_FILE)
    files: LocalFileStore = status.files
    path = files.path_for(key)
    if not path.is_file():
        raise HTTPException(404, _NO_SUCH_FILE)
    return FileResponse(path)
