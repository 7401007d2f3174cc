"""The committed stubs in src/herald/_generated/ are what tools/generate_proto.py produces now
(flowmesh_pb2* from proto/flowmesh/v1/flowmesh.proto, ensync_pb2* from proto/ensync/ensync.proto)."""

import importlib.util
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
GENERATED = PYTHON_DIR / "src" / "herald" / "_generated"


def load_tool():
    spec = importlib.util.spec_from_file_location("generate_proto", PYTHON_DIR / "tools" / "generate_proto.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_generated_stubs_are_current(tmp_path):
    grpc_tools = pytest.importorskip(
        "grpc_tools", reason="grpc_tools is not installed (pip install -e 'python[dev]'); cannot regenerate"
    )
    from importlib.metadata import version

    tool = load_tool()
    tool.generate(tmp_path)
    stale = []
    for name in ("__init__.py",) + tuple(tool.GENERATED_FILES):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (GENERATED / name).read_text(encoding="utf-8")
        if fresh != committed:
            stale.append(name)
    assert not stale, (
        f"{', '.join(stale)} in {GENERATED} differ from what grpcio-tools "
        f"{version('grpcio-tools')} ({grpc_tools.__name__}) generates from proto/; "
        "run `python python/tools/generate_proto.py` (with the grpcio-tools version pinned in pyproject.toml)"
    )


def test_generated_grpc_module_uses_a_relative_import():
    text = (GENERATED / "flowmesh_pb2_grpc.py").read_text(encoding="utf-8")
    assert "from . import flowmesh_pb2 as" in text
    assert "from flowmesh.v1 import" not in text


def test_the_tool_owns_the_ensync_stubs():
    tool = load_tool()
    assert {"ensync_pb2.py", "ensync_pb2.pyi", "ensync_pb2_grpc.py"} <= set(tool.GENERATED_FILES)


def test_generated_ensync_grpc_module_uses_a_relative_import():
    text = (GENERATED / "ensync_pb2_grpc.py").read_text(encoding="utf-8")
    assert "from . import ensync_pb2 as" in text
    assert "\nimport ensync_pb2" not in text


def test_ensync_stubs_register_as_ensync_proto():
    """The file name in the descriptor pool is ``ensync.proto``, the one ensync-sdk uses, so its
    stubs and ours (identical definitions) can be imported into one process."""
    from herald._generated import ensync_pb2

    assert ensync_pb2.DESCRIPTOR.name == "ensync.proto"
    assert ensync_pb2.DESCRIPTOR.package == "ensync"
    assert "EnSyncService" in ensync_pb2.DESCRIPTOR.services_by_name


def test_ensync_stubs_coexist_with_the_real_sdk():
    pytest.importorskip("ensync_sdk.ensync_pb2", reason="ensync-sdk is not installed (dev extra)")
    from ensync_sdk import ensync_pb2 as theirs

    from herald._generated import ensync_pb2 as ours

    assert ours.PublishMessageRequest.DESCRIPTOR is theirs.PublishMessageRequest.DESCRIPTOR
