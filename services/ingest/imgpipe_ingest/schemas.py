"""HTTP request and response models (kept apart from the event contracts).

The `examples` only document the OpenAPI spec (they match the README); they change no behaviour.
FastAPI drops every `null` from the spec it serves, so no example has `null` in a required field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

_REQUEST_ID = "9c6c54e4a3f14dfb8bc8ba834d08b170"


class UploadAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": _REQUEST_ID,
                    "status_url": f"http://localhost:8010/status/{_REQUEST_ID}",
                }
            ]
        }
    )

    request_id: str
    status_url: str


class ProblemOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"line": 4, "message": "S. No. 2 is used again (first on line 3)"},
                {
                    "line": 3,
                    "message": "URL 'ftp://x/a.jpg' must start with http:// or https://",
                },
            ]
        }
    )

    line: int | None
    message: str


class UploadRejected(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "the upload was rejected (2 problems); fix it and upload again",
                    "problems": [
                        {
                            "line": 3,
                            "message": "URL 'ftp://x/a.jpg' must start with http:// or https://",
                        },
                        {"line": 4, "message": "S. No. 2 is used again (first on line 3)"},
                    ],
                    "truncated": False,
                },
                {
                    "detail": "the upload was rejected (1 problem); fix it and upload again",
                    "problems": [
                        {
                            "line": 2,
                            "message": "the file contains binary data (NUL bytes); "
                            "upload a CSV text file",
                        }
                    ],
                    "truncated": False,
                },
            ]
        }
    )

    detail: str
    problems: list[ProblemOut]
    truncated: bool = False


class ErrorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "the upload is larger than 52428800 bytes; split the file"},
                {
                    "detail": "the message broker did not accept the work: connection lost; "
                    "try again shortly"
                },
            ]
        }
    )

    detail: str
