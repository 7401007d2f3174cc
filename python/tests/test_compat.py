"""The ``flowmesh`` compatibility package re-exports the same objects under FlowMesh names."""

import herald
import herald.client
import herald.exceptions
import herald.types
import herald.utils


def test_top_level_names_used_by_the_flowmesh_readme():
    from flowmesh import Event, FlowMesh, FlowMeshError, FlowMeshNotFoundError

    assert FlowMesh is herald.Herald
    assert Event is herald.Event
    assert FlowMeshError is herald.HeraldError
    assert FlowMeshNotFoundError is herald.HeraldNotFoundError


def test_module_layout():
    from flowmesh.client import FlowMesh, KVClient, QueueClient, StreamClient
    from flowmesh.exceptions import (
        FlowMeshAuthError,
        FlowMeshConnectionError,
        FlowMeshError,
        FlowMeshNotFoundError,
        FlowMeshPermissionDeniedError,
        handle_grpc_error,
    )
    from flowmesh.types import ConsumerGroupState, Event, Job, Message, QueueStats, RetryPolicy
    from flowmesh.utils import build_resource_path, nanos_to_timestamp, timestamp_to_nanos

    assert FlowMesh is herald.client.Herald
    assert (StreamClient, QueueClient, KVClient) == (
        herald.client.StreamClient, herald.client.QueueClient, herald.client.KVClient,
    )
    assert FlowMeshError is herald.exceptions.HeraldError
    assert FlowMeshConnectionError is herald.exceptions.HeraldConnectionError
    assert FlowMeshAuthError is herald.exceptions.HeraldAuthError
    assert FlowMeshNotFoundError is herald.exceptions.HeraldNotFoundError
    assert FlowMeshPermissionDeniedError is herald.exceptions.HeraldPermissionDeniedError
    assert handle_grpc_error is herald.exceptions.handle_grpc_error
    assert (Event, Message, Job, QueueStats, RetryPolicy, ConsumerGroupState) == (
        herald.types.Event, herald.types.Message, herald.types.Job,
        herald.types.QueueStats, herald.types.RetryPolicy, herald.types.ConsumerGroupState,
    )
    assert build_resource_path is herald.utils.build_resource_path
    assert timestamp_to_nanos is herald.utils.timestamp_to_nanos
    assert nanos_to_timestamp is herald.utils.nanos_to_timestamp


def test_every_herald_export_is_available_from_flowmesh():
    import flowmesh

    for name in flowmesh.__all__:
        assert hasattr(flowmesh, name), name
    renamed = {n.replace("Herald", "FlowMesh") for n in herald.__all__}
    assert renamed <= set(flowmesh.__all__)


def test_except_flowmesh_error_catches_sdk_errors():
    from flowmesh import FlowMeshError

    try:
        raise herald.HeraldConnectionError("x failed")
    except FlowMeshError as err:
        assert str(err) == "x failed"


def test_generated_stubs_do_not_shadow_the_compat_package():
    import flowmesh
    from herald._generated import flowmesh_pb2, flowmesh_pb2_grpc

    assert flowmesh_pb2_grpc.flowmesh_dot_v1_dot_flowmesh__pb2 is flowmesh_pb2
    assert not hasattr(flowmesh, "v1")
    assert flowmesh_pb2.DESCRIPTOR.package == "flowmesh.v1"
