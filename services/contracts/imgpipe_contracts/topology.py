"""The whole broker topology, declared in one place.

Every service declares all of it at start (imgpipe_runtime.declare), so a queue exists
before anyone publishes to it: a message published to a topic exchange with no bound queue is
silently dropped (we also publish with `mandatory=True`, which turns that into an error).

Names derive from one base name per work queue (the dramatiq habit): `<service>.<event>` is the
work queue, `<base>.retry-<delay>` are the delay queues and `<base>.dlq` holds dead letters. The
delay is part of the retry queue's name because RabbitMQ refuses to redeclare a queue with other
arguments; a changed schedule declares new queues instead of failing at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENTS_EXCHANGE = "imgpipe.events"


@dataclass(frozen=True)
class QueueSpec:
    """A service's work queue and the routing keys it is bound to on `imgpipe.events`."""

    base: str
    routing_keys: tuple[str, ...]
    schedule: str = "work"  # which retry schedule applies: "work" or "webhook"


IMAGE_REQUESTED = "image.requested"
IMAGE_BATCH_REQUESTED = "image.requested.batch"


def _lane(n: int) -> QueueSpec:
    suffix = "" if n == 0 else f".lane-{n}"
    return QueueSpec(
        f"processor.image-requested{suffix}",
        (f"{IMAGE_REQUESTED}{suffix}", f"{IMAGE_BATCH_REQUESTED}{suffix}"),
    )


# Image jobs travel in lanes: each request's jobs go to the least busy lane, and a processor
# consumes every lane with its own prefetch. So a request queued behind another's 100,000
# jobs still gets its share of the processors at once (a single FIFO queue would make it wait
# for all of them; quorum queues on RabbitMQ 3.x have no priorities). The first lane is the
# original work queue; the others carry `image.requested[.batch].lane-<n>`. Ingest publishes
# batches; single jobs come back from the retry queues.
WORK_LANES = 4
PROCESSOR_LANES = tuple(_lane(n) for n in range(WORK_LANES))
PROCESSOR_IMAGE_REQUESTED = PROCESSOR_LANES[0]


def batch_routing_key(lane: QueueSpec) -> str:
    """The routing key that puts an `image.requested.batch` on `lane`."""
    return next(key for key in lane.routing_keys if key.startswith(IMAGE_BATCH_REQUESTED))


# The status service records the batches' rows as products, whichever lane they took.
STATUS_IMAGE_BATCH = QueueSpec(
    "status.image-batch-requested", tuple(batch_routing_key(lane) for lane in PROCESSOR_LANES)
)
STATUS_IMAGE_OUTCOME = QueueSpec("status.image-outcome", ("image.outcomes",))
STATUS_WEBHOOK_OUTCOME = QueueSpec(
    "status.webhook-outcome", ("webhook.delivered", "webhook.attempt_failed", "webhook.failed")
)
NOTIFIER_REQUEST_COMPLETED = QueueSpec(
    "notifier.request-completed", ("request.completed",), schedule="webhook"
)

ALL_QUEUES = (
    *PROCESSOR_LANES,
    STATUS_IMAGE_BATCH,
    STATUS_IMAGE_OUTCOME,
    STATUS_WEBHOOK_OUTCOME,
    NOTIFIER_REQUEST_COMPLETED,
)

# Routing keys some service's work queue is bound to; publishing them must reach a queue.
ROUTED_KEYS = frozenset(key for spec in ALL_QUEUES for key in spec.routing_keys)


def format_delay(seconds: float) -> str:
    """`1.5` -> `1500ms`, `30` -> `30s`: short, exact and safe in a queue name."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class Topology:
    """Concrete names for one deployment; `prefix` isolates test runs on a shared broker."""

    prefix: str = ""
    work_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    webhook_retry_delays: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    delivery_limit: int = 5

    @property
    def exchange(self) -> str:
        return self.prefix + EVENTS_EXCHANGE

    def queue(self, spec: QueueSpec) -> str:
        return self.prefix + spec.base

    def dlq(self, spec: QueueSpec) -> str:
        return self.queue(spec) + ".dlq"

    def retry_delays(self, spec: QueueSpec) -> tuple[float, ...]:
        return self.webhook_retry_delays if spec.schedule == "webhook" else self.work_retry_delays

    def retry_queue(self, spec: QueueSpec, delay: float) -> str:
        return f"{self.queue(spec)}.retry-{format_delay(delay)}"

    def max_attempts(self, spec: QueueSpec) -> int:
        return len(self.retry_delays(spec)) + 1


def _quorum_args(dead_letter_to: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if dead_letter_to is not None:
        # at-least-once dead-lettering keeps a message until the target queue confirms it;
        # RabbitMQ only allows it together with overflow=reject-publish.
        args |= {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_to,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return args


@dataclass(frozen=True)
class QueueDeclaration:
    """One durable queue: its name, its arguments and the routing keys bound to it."""

    name: str
    arguments: dict[str, Any]
    routing_keys: tuple[str, ...] = ()


def queue_declarations(topology: Topology) -> list[QueueDeclaration]:
    """Every queue of the deployment, in declaration order: for each work queue its
    dead-letter queue, its retry queues, then the work queue itself."""
    declarations = []
    for spec in ALL_QUEUES:
        main = topology.queue(spec)
        declarations.append(QueueDeclaration(topology.dlq(spec), _quorum_args(None)))
        for delay in topology.retry_delays(spec):
            # A fixed TTL per queue: RabbitMQ only expires messages at the head of a queue, so
            # mixed per-message TTLs would make short delays wait behind long ones.
            declarations.append(
                QueueDeclaration(
                    topology.retry_queue(spec, delay),
                    _quorum_args(main) | {"x-message-ttl": round(delay * 1000)},
                )
            )
        declarations.append(
            QueueDeclaration(
                main,
                _quorum_args(topology.dlq(spec)) | {"x-delivery-limit": topology.delivery_limit},
                spec.routing_keys,
            )
        )
    return declarations
