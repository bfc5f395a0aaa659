"""Write docs/asyncapi.yaml, the AsyncAPI 3.0 description of imgpipe's events, from the code.

    python -m imgpipe_dev.asyncapi           # (re)write the document
    python -m imgpipe_dev.asyncapi --check   # exit 1 if the committed document is out of date

Everything that can drift is taken from the code: the routing keys and payload schemas from
`imgpipe_contracts.events` (each model's serialization-mode JSON Schema plus the `event_type`
that `Event.to_json` adds), the exchange name, which routing keys imgpipe's own queues consume
and whether a publish is `mandatory` from `imgpipe_contracts.topology`, the header names from
the consumer module and the version from the installed `imgpipe-contracts` package. Only which
service publishes which event is stated by hand (`asyncapi_content`), with an example of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from imgpipe_contracts.events import EVENT_TYPES, Event
from imgpipe_contracts.topology import ALL_QUEUES, EVENTS_EXCHANGE, ROUTED_KEYS
from imgpipe_dev.asyncapi_content import DESCRIPTION, EXAMPLES, PUBLISHERS, SERVICES
from imgpipe_runtime.deadletters import REPLAYED_HEADER
from imgpipe_runtime.retry import ATTEMPT_HEADER, ERROR_HEADER
from imgpipe_runtime.tracing import TRACEPARENT

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"
AMQP_BINDING_VERSION = "0.3.0"
SCHEMAS = "#/components/schemas/"


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
            TRACEPARENT: {
                "type": "string",
                "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "Only while the publisher traces (OTEL_EXPORTER_OTLP_ENDPOINT "
                "set): the W3C trace context of the upload's trace, so a consumer's own "
                "tracing can join it (https://www.w3.org/TR/trace-context/).",
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
    lanes = [k for spec in ALL_QUEUES for k in spec.routing_keys if k.startswith(f"{routing_key}.")]
    queues = [
        spec.base
        for spec in ALL_QUEUES
        if routing_key in spec.routing_keys or set(lanes) & set(spec.routing_keys)
    ]
    if not queues:
        return "No imgpipe service consumes it; it is there for other subscribers."
    names = ", ".join(f"`{queue}`" for queue in queues)
    if not lanes:
        return f"Inside imgpipe it is consumed from the queue {names}."
    return (
        f"Each request's messages go to one lane, the least busy: routing key `{routing_key}` "
        f"or `{routing_key}.lane-<n>` (bind `{routing_key}.#` to see all). Inside imgpipe "
        f"they are consumed from the queues {names}."
    )


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
