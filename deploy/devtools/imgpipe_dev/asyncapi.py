"""Write docs/asyncapi.yaml, the AsyncAPI 3.0 description of imgpipe's events, from the code.

    python -m imgpipe_dev.asyncapi           # (re)write the document
    python -m imgpipe_dev.asyncapi --check   # exit 1 if the committed document is out of date

Everything that can drift is taken from the code: the routing keys and payload schemas from
`imgpipe_contracts.events` (each model's serialization-mode JSON Schema plus the `event_type`
that `Event.to_json` adds), the exchange name, which routing keys imgpipe's own queues consume
and whether a publish is `mandatory` from `imgpipe_contracts.topology`, the header names from
the consumer module and the version from the installed `imgpipe-contracts` package. Only which
service publishes which event is stated here (`PUBLISHERS`), with an example of each event.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from imgpipe_contracts.consumer import ATTEMPT_HEADER, ERROR_HEADER
from imgpipe_contracts.deadletters import REPLAYED_HEADER
from imgpipe_contracts.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Event,
    ImageFailed,
    ImageProcessed,
    ImageRequested,
    RequestAccepted,
    RequestCompleted,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_contracts.topology import ALL_QUEUES, EVENTS_EXCHANGE, ROUTED_KEYS

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"
AMQP_BINDING_VERSION = "0.3.0"
SCHEMAS = "#/components/schemas/"

# Which service publishes each routing key (one `send` operation each).
PUBLISHERS: dict[str, str] = {
    "request.accepted": "ingest",
    "image.requested": "ingest",
    "image.processed": "processor",
    "image.failed": "processor",
    "request.completed": "status",
    "webhook.delivered": "notifier",
    "webhook.attempt_failed": "notifier",
    "webhook.failed": "notifier",
}

SERVICES: dict[str, str] = {
    "ingest": "Validates uploaded CSVs and queues one job per image.",
    "processor": "Downloads, recompresses and stores images.",
    "status": "Aggregates image outcomes, writes the output CSV, detects completion.",
    "notifier": "Delivers the signed completion webhook.",
}

_REQUEST = "9c6c54e4a3f14dfb8bc8ba834d08b170"
_COMPLETION = "4be0a9d1c2f34e5b8a7c6d5e4f3a2b1c"
_STATUS = "http://localhost:8010"
_HOOK = "https://example.com/hooks/imgpipe"


def _at(seconds: float) -> datetime:
    """A fixed moment `seconds` after the example upload (kept stable for a reproducible doc)."""
    return datetime(2026, 11, 30, 0, 46, 12, 700000, tzinfo=UTC) + timedelta(seconds=seconds)


# One realistic event per routing key (the README's example request); fixed ids and times keep
# the document reproducible. The tests validate their `to_json` bodies against the document.
EXAMPLES: dict[str, Event] = {
    "request.accepted": RequestAccepted(
        event_id="0f8e2a4c6b1d4e3f9a7b5c3d1e2f4a6b",
        occurred_at=_at(0),
        request_id=_REQUEST,
        rows=2,
        images=3,
        webhook_url=_HOOK,
        status_url=f"{_STATUS}/status/{_REQUEST}",
    ),
    "image.requested": ImageRequested(
        event_id="1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6",
        occurred_at=_at(0),
        request_id=_REQUEST,
        row_index=0,
        position=1,
        serial_number=1,
        product_name="SKU1",
        url="https://shop.example/cat-side.jpg",
    ),
    "image.processed": ImageProcessed(
        event_id="2b3c4d5e6f7a48b9c0d1e2f3a4b5c6d7",
        occurred_at=_at(0.21),
        request_id=_REQUEST,
        row_index=0,
        position=1,
        input_url="https://shop.example/cat-side.jpg",
        output_key=f"images/{_REQUEST}/000001-02-cat-side.jpg",
        output_url=f"{_STATUS}/files/images/{_REQUEST}/000001-02-cat-side.jpg",
        width=1200,
        height=800,
        source_format="PNG",
        bytes_in=402113,
        bytes_out=98304,
    ),
    "image.failed": ImageFailed(
        event_id="3c4d5e6f7a8b49c0d1e2f3a4b5c6d7e8",
        occurred_at=_at(0.25),
        request_id=_REQUEST,
        row_index=1,
        position=0,
        input_url="https://shop.example/fox.jpg",
        reason="http_404",
        detail="the server answered 404 Not Found",
        attempts=1,
    ),
    "request.completed": RequestCompleted(
        event_id=_COMPLETION,
        occurred_at=_at(0.377),
        request_id=_REQUEST,
        status="Completed",
        total=3,
        processed=2,
        failed=1,
        output_csv_path=f"outputs/output_{_REQUEST}.csv",
        output_csv_url=f"{_STATUS}/files/outputs/output_{_REQUEST}.csv",
        webhook_url=_HOOK,
    ),
    "webhook.delivered": WebhookDelivered(
        event_id="5e6f7a8b9c0d41e2f3a4b5c6d7e8f9a0",
        occurred_at=_at(5.401),
        request_id=_REQUEST,
        webhook_id=_COMPLETION,
        url=_HOOK,
        attempts=2,
        status_code=200,
    ),
    "webhook.attempt_failed": WebhookAttemptFailed(
        event_id="4d5e6f7a8b9c40d1e2f3a4b5c6d7e8f9",
        occurred_at=_at(0.39),
        request_id=_REQUEST,
        webhook_id=_COMPLETION,
        url=_HOOK,
        attempt=1,
        status_code=503,
        reason="http_503",
    ),
    "webhook.failed": WebhookFailed(
        event_id="6f7a8b9c0d1e42f3a4b5c6d7e8f9a0b1",
        occurred_at=_at(63305.39),
        request_id=_REQUEST,
        webhook_id=_COMPLETION,
        url=_HOOK,
        attempts=7,
        status_code=None,
        reason="timeout",
    ),
}

DESCRIPTION = f"""\
Domain events of imgpipe. Every event is published to the durable topic exchange
`{EVENTS_EXCHANGE}` with its routing key (the channel address) as a persistent JSON message.
To subscribe, bind a queue of your own to the exchange with the routing keys you want
(`#` for all). `BROKER_PREFIX` prefixes the exchange name in a deployment that sets it.

Delivery guarantees:

- **At least once.** Publishers wait for the broker's confirm and retry across reconnects, and
  consumers ack only after their side effects are durable, so an event can arrive more than
  once. **Consumers must be idempotent**: deduplicate by `event_id` (also the AMQP
  `message_id`) or make the effect naturally repeatable.
- **No global order.** Events of one request can arrive in any order relative to each other
  (retries reorder them); use `occurred_at` and the event's own facts, not arrival order.
- **Ignore unknown fields.** Producers may add fields without notice; removing or changing one
  needs a new `schema_version` (now {SCHEMA_VERSION}).

Every body has `event_type` (the routing key), `event_id` (hex), `occurred_at` (ISO 8601, UTC),
`schema_version` and `request_id`. The AMQP properties are `message_id` = `event_id`,
`type` = the routing key, `content_type` = `application/json` and `delivery_mode` = 2
(persistent); the header `{ATTEMPT_HEADER}` is 1 on every published message.

This document is generated from the code by `python -m imgpipe_dev.asyncapi`; do not edit it.
"""


def _lower_camel(name: str) -> str:
    return name[0].lower() + name[1:]


def _payload_schema(routing_key: str, model: type[Event], defs: dict[str, Any]) -> dict[str, Any]:
    """The body `model.to_json()` writes: the serialization schema plus `event_type`.

    `to_json` dumps every field (nothing is excluded), so every property is required.
    Nested models, if any, become `components.schemas` entries of their own (collected in `defs`).
    """
    schema = model.model_json_schema(mode="serialization", ref_template=SCHEMAS + "{model}")
    for name, sub in schema.pop("$defs", {}).items():
        if defs.setdefault(name, sub) != sub:
            raise ValueError(f"two different nested models are both called {name!r}")
    schema["properties"] = {
        "event_type": {
            "const": routing_key,
            "title": "Event Type",
            "description": "The routing key, repeated in the body.",
            "type": "string",
        }
    } | schema["properties"]
    schema["required"] = list(schema["properties"])
    return schema


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "AMQP application headers.",
        "properties": {
            ATTEMPT_HEADER: {
                "type": "integer",
                "minimum": 1,
                "description": "Delivery attempt: 1 when published. imgpipe's own consumers "
                "count it up on the copies they move through their retry queues, which never "
                "pass the exchange again.",
            },
            ERROR_HEADER: {
                "type": "string",
                "description": "Only on copies in imgpipe's own retry and dead-letter queues: "
                "why the last attempt failed (at most 500 characters).",
            },
            REPLAYED_HEADER: {
                "type": "integer",
                "minimum": 1,
                "description": "Only on dead letters sent back by `imgpipe dlq replay`: how "
                "many times they were replayed.",
            },
        },
        "required": [ATTEMPT_HEADER],
    }


def _consumers(routing_key: str) -> str:
    queues = [spec.base for spec in ALL_QUEUES if routing_key in spec.routing_keys]
    if not queues:
        return "No imgpipe service consumes it; it is there for other subscribers."
    names = ", ".join(f"`{queue}`" for queue in queues)
    return f"Inside imgpipe it is consumed from the queue {names}."


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as plain data, in a stable order."""
    missing = set(EVENT_TYPES) ^ set(PUBLISHERS)
    if missing or set(EVENT_TYPES) ^ set(EXAMPLES):
        raise ValueError(
            f"PUBLISHERS and EXAMPLES must name exactly the routing keys of EVENT_TYPES "
            f"(mismatched: {sorted(missing | (set(EVENT_TYPES) ^ set(EXAMPLES)))})"
        )
    exchange = {
        "name": EVENTS_EXCHANGE,
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    payloads: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for routing_key, model in EVENT_TYPES.items():
        name = model.__name__
        channel_id = _lower_camel(name)
        service = PUBLISHERS[routing_key]
        payloads[name] = _payload_schema(routing_key, model, defs)
        messages[name] = {
            "name": name,
            "title": routing_key,
            "summary": (model.__doc__ or "").strip(),
            "contentType": "application/json",
            "headers": {"$ref": SCHEMAS + "AmqpHeaders"},
            "payload": {"$ref": SCHEMAS + name},
            "correlationId": {
                "description": "Every event of one upload carries its `request_id`.",
                "location": "$message.payload#/request_id",
            },
            "bindings": {
                "amqp": {"messageType": routing_key, "bindingVersion": AMQP_BINDING_VERSION}
            },
            "examples": [
                {
                    "name": channel_id,
                    "headers": {ATTEMPT_HEADER: 1},
                    "payload": json.loads(EXAMPLES[routing_key].to_json()),
                }
            ],
            "x-amqp-properties": {
                "message_id": "the payload's event_id",
                "type": routing_key,
                "content_type": "application/json",
                "delivery_mode": 2,
            },
        }
        channels[channel_id] = {
            "address": routing_key,
            "title": routing_key,
            "description": f"Messages published to `{EVENTS_EXCHANGE}` with routing key "
            f"`{routing_key}`. {_consumers(routing_key)}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": exchange,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        mandatory = routing_key in ROUTED_KEYS
        operations[f"publish{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"{service} publishes {routing_key}",
            "summary": f"The {service} service publishes `{routing_key}`.",
            "description": "Published with publisher confirms"
            + (
                " and `mandatory`: an imgpipe queue must be bound to this routing key."
                if mandatory
                else "; not `mandatory`, since no imgpipe queue is bound to this routing key."
            ),
            "tags": [{"name": service}],
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": mandatory,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
    schemas = {"AmqpHeaders": _headers_schema()} | payloads
    for name, sub in defs.items():
        if name in schemas:
            raise ValueError(f"a nested model is called {name!r} like a component schema")
        schemas[name] = sub
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "imgpipe events",
            "version": version("imgpipe-contracts"),
            "description": DESCRIPTION,
            "tags": [{"name": service, "description": text} for service, text in SERVICES.items()],
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The RabbitMQ broker at `RABBITMQ_URL` "
                "(default `amqp://guest:guest@127.0.0.1:5672/`, vhost `/`).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
    # A JSON round trip: plain JSON data only, and no shared sub-objects (which YAML would write
    # as anchors and aliases).
    plain: dict[str, Any] = json.loads(json.dumps(document))
    return plain


# A SafeDumper of our own (yaml has no type hints, hence `type`) that writes multi-line strings
# as literal blocks (`|`), so the Markdown descriptions stay readable.
_Dumper: Any = type("_Dumper", (yaml.SafeDumper,), {})


def _represent_str(dumper: yaml.SafeDumper, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def render(document: Mapping[str, Any] | None = None) -> str:
    """The document as YAML text, exactly as it is committed."""
    text: str = yaml.dump(
        build_document() if document is None else document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return "# Generated by `python -m imgpipe_dev.asyncapi` from the code; do not edit.\n" + text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgpipe_dev.asyncapi", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only verify that the document is current"
    )
    parser.add_argument("--output", type=Path, default=DOCUMENT, help="default: %(default)s")
    args = parser.parse_args(argv)
    path: Path = args.output
    text = render()
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if args.check:
        if current != text:
            print(f"{path} is out of date; run `python -m imgpipe_dev.asyncapi`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    else:
        print(f"{path} is already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
