"""The committed stubs in src/herald/_generated/ are what tools/generate_proto.py produces now."""

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
        f"{version('grpcio-tools')} ({grpc_tools.__name__}) generates from proto/flowmesh/v1/flowmesh.proto; "
        "run `python python/tools/generate_proto.py` (with the grpcio-tools version pinned in pyproject.toml)"
    )


def test_generated_grpc_module_uses_a_relative_import():
    text = (GENERATED / "flowmesh_pb2_grpc.py").read_text(encoding="utf-8")
    assert "from . import flowmesh_pb2 as" in text
    assert "from flowmesh.v1 import" not in text
