"""Subject names of FluxLib services and nodes, and the status texts they publish.

The names are fluxmq's ``NatsTopic`` ones (compat/nats-fluxlib.md §3.3), optionally behind a prefix
the way ``StandardTopic(prefix)`` adds one (``prefix="flux"`` gives ``flux.service.<sid>.status``).
With the default empty prefix every subject is exactly ``NatsTopic``'s, so a Herald service and a
FluxLib/fluxmq one address each other.
"""

from __future__ import annotations

__all__ = ["Topics", "ServiceStatus", "NodeStatus", "topic_to_subject"]


def topic_to_subject(topic: str) -> str:
    """Map a node input/output topic to the NATS subject it uses: every ``/`` becomes ``.``.

    ``"out/x"`` → ``"out.x"``; a topic without slashes is unchanged. Node inputs and outputs both go
    through this mapping, so an output and an input configured with the same topic meet (see
    :mod:`herald.service.node`). Service-level ``publish`` / ``subscribe`` / ``request`` use subjects
    verbatim.
    """
    return topic.replace("/", ".")


class Topics:
    """Builds the subjects a service and its nodes use.

    Args:
        prefix: put in front of every subject, followed by a ``.`` (nothing when empty).
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def _s(self, subject: str) -> str:
        return f"{self.prefix}.{subject}" if self.prefix else subject

    # ---- service subjects ---------------------------------------------------------------------

    def status(self, service_id: str) -> str:
        """``service.<sid>.status``: the service publishes its status here (and listens: ``on_ready``)."""
        return self._s(f"service.{service_id}.status")

    def configuration(self, service_id: str) -> str:
        """``service.<sid>.set_config``: JSON configuration (``on_init`` + ``on_config``)."""
        return self._s(f"service.{service_id}.set_config")

    def configuration_request(self, service_id: str) -> str:
        """``service.<sid>.get_config``: published by ``request_config()``."""
        return self._s(f"service.{service_id}.get_config")

    def service_settings(self, service_id: str) -> str:
        """``service.<sid>.set_settings`` (``on_settings``)."""
        return self._s(f"service.{service_id}.set_settings")

    def start(self, service_id: str) -> str:
        """``service.<sid>.start`` (``on_start``); payload conventionally ``{"node_id": "*"}``."""
        return self._s(f"service.{service_id}.start")

    def stop(self, service_id: str) -> str:
        """``service.<sid>.stop`` (``on_stop``); same payload convention as :meth:`start`."""
        return self._s(f"service.{service_id}.stop")

    def error(self, service_id: str) -> str:
        """``service.<sid>.error`` (``on_error``)."""
        return self._s(f"service.{service_id}.error")

    def restart_node(self, service_id: str) -> str:
        """``service.<sid>.restart`` (``on_restart``). ``NatsTopic``'s form; ``StandardTopic`` would
        say ``node.<x>.restart``."""
        return self._s(f"service.{service_id}.restart")

    def ide_status(self) -> str:
        """``ide.status`` (``on_ide_status``), shared by every service."""
        return self._s("ide.status")

    def get_common_data(self, service_id: str) -> str:
        """``service.<sid>.get_common_data`` (``on_get_common_data``)."""
        return self._s(f"service.{service_id}.get_common_data")

    def set_common_data(self, service_id: str) -> str:
        """``service.<sid>.set_common_data``: published by ``send_common_data()``."""
        return self._s(f"service.{service_id}.set_common_data")

    def status_request(self, service_id: str) -> str:
        """``service.<sid>.request_status`` (defined by fluxmq, unused by the framework)."""
        return self._s(f"service.{service_id}.request_status")

    def set_service_state(self, service_id: str) -> str:
        """``service.<sid>.set_common_state`` (defined by fluxmq, unused by the framework)."""
        return self._s(f"service.{service_id}.set_common_state")

    def get_service_state(self, service_id: str) -> str:
        """``service.<sid>.get_common_state`` (defined by fluxmq, unused by the framework)."""
        return self._s(f"service.{service_id}.get_common_state")

    def dev_mode(self, service_id: str) -> str:
        """``service.development_mode.<sid>`` (defined by fluxmq, unused by the framework)."""
        return self._s(f"service.development_mode.{service_id}")

    def time(self) -> str:
        """``service.tick`` (defined by fluxmq; the service tick of this SDK is in-process)."""
        return self._s("service.tick")

    # ---- node subjects ------------------------------------------------------------------------

    def node_status(self, node_id: str) -> str:
        """``node.<nid>.status``: ``created`` / ``started`` / ``stopped`` (and ``set_status()``)."""
        return self._s(f"node.{node_id}.status")

    def node_settings(self, node_id: str) -> str:
        """``node.<nid>.set_settings``: a JSON object merged into the node's settings."""
        return self._s(f"node.{node_id}.set_settings")

    def node_created(self, node_id: str) -> str:
        """``node.<nid>.created`` (defined by fluxmq, unused by the framework)."""
        return self._s(f"node.{node_id}.created")

    def node_state_request(self, node_id: str) -> str:
        """``node.<nid>.state_request`` (``NatsTopic``'s form; defined, unused)."""
        return self._s(f"node.{node_id}.state_request")

    def __repr__(self) -> str:
        return f"Topics(prefix={self.prefix!r})"


class ServiceStatus:
    """Service status texts (fluxmq ``NatsStatus``), published as UTF-8 on ``service.<sid>.status``.

    The methods return the same strings, as FluxLib's status objects do (``status.connected()``).
    """

    STARTING = "STARTING"
    CONNECTED = "CONNECTED"
    READY = "READY"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ERROR = "ERROR"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"

    def starting(self) -> str:
        return self.STARTING

    def connected(self) -> str:
        return self.CONNECTED

    def ready(self) -> str:
        return self.READY

    def active(self) -> str:
        return self.ACTIVE

    def paused(self) -> str:
        return self.PAUSED

    def error(self) -> str:
        return self.ERROR

    def stopping(self) -> str:
        return self.STOPPING

    def stopped(self) -> str:
        return self.STOPPED


class NodeStatus:
    """Node status texts, published as UTF-8 on ``node.<nid>.status``."""

    CREATED = "created"
    STARTED = "started"
    STOPPED = "stopped"

    def created(self) -> str:
        return self.CREATED

    def started(self) -> str:
        return self.STARTED

    def stopped(self) -> str:
        return self.STOPPED
