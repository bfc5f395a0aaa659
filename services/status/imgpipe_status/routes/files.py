"""`GET /files/{key}` whenever `/files` is not a plain static directory: with AUTH_MODE=required
(a signed link or the owner's API key opens a file), and with the S3 backend (a redirect to a
fresh link into the bucket).

Links handed out in CSVs, statuses and webhooks are capabilities: a local link carries a signed
`token` (whoever received it may download that one file until the token expires), an S3 link
is presigned by the store. Without a token, the caller's API key must belong to the tenant that
uploaded the request; any other caller learns nothing about whether the file exists (404).

With S3 this route answers 307 to a freshly signed link, so an old `/files/...` link keeps
working after a presigned one has expired. No request to S3 is made here: signing is local,
and a key that is not there answers 404 from the bucket itself.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

from imgpipe_runtime.files import LocalFileStore
from imgpipe_runtime.web import BearerKey, caller_tenant, unauthorized
from imgpipe_status.deps import FilesDep, RepositoryDep
from imgpipe_status.domain import output_id_of, request_id_of
from imgpipe_status.schemas import UNAUTHORIZED, ErrorOut

router = APIRouter()

_NO_SUCH_FILE = "no such file; take the link from GET /status/{request_id}"


@router.api_route(
    "/files/{key:path}",
    methods=["GET", "HEAD"],
    response_model=None,
    responses={
        200: {"content": {"image/jpeg": {}, "text/csv": {}}, "description": "The file."},
        307: {"description": "Where the file can be downloaded now (S3 backend)."},
        404: {"model": ErrorOut, "description": "No such file (or not the caller's)."},
        **UNAUTHORIZED,
    },
    summary="A processed image or an output CSV",
)
async def stored_file(
    key: str,
    request: Request,
    repository: RepositoryDep,
    files: FilesDep,
    credentials: BearerKey,
    token: str | None = None,
) -> FileResponse | RedirectResponse:
    if request.app.state.settings.auth_required:
        await _check_access(key, request, repository, credentials, token)
    if request_id_of(key) is None and output_id_of(key) is None:
        raise HTTPException(404, _NO_SUCH_FILE)
    if not isinstance(files, LocalFileStore):
        return RedirectResponse(await files.url_for(key), status_code=307)
    path = files.path_for(key)
    if not path.is_file():
        raise HTTPException(404, _NO_SUCH_FILE)
    return FileResponse(path)


async def _check_access(
    key: str,
    request: Request,
    repository: RepositoryDep,
    credentials: BearerKey,
    token: str | None,
) -> None:
    """A valid token for this key, or the API key of the request's owner (of one of the
    requests that share the output); else 401 or 404."""
    if token is None and credentials is None:
        raise unauthorized(
            "this link needs its token, or your API key as 'Authorization: Bearer <key>'"
        )
    request_id, output_id = request_id_of(key), output_id_of(key)
    if request_id is None and output_id is None:
        raise HTTPException(404, _NO_SUCH_FILE)
    signer = request.app.state.adapters.signer
    if token is not None and signer is not None and signer.is_valid(key, token):
        return
    if credentials is None:
        raise unauthorized(
            "the link's token is wrong or expired: take a fresh link from "
            "GET /status/{request_id}, or send your API key as 'Authorization: Bearer <key>'"
        )
    tenant = await caller_tenant(request, credentials)
    if request_id is not None:
        owned = await repository.get_request(request_id, tenant) is not None
    else:
        owned = await repository.output_owned_by(output_id or "", tenant)
    if not owned:
        raise HTTPException(404, _NO_SUCH_FILE)
