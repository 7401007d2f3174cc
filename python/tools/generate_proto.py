#!/usr/bin/env python3
"""Regenerate the committed gRPC stubs in ``src/herald/_generated/``.

Two protos are compiled with ``grpc_tools.protoc`` (install the ``dev`` extra: it pins the
grpcio-tools version the committed files were produced with, so regenerating gives byte-identical
output):

* ``proto/flowmesh/v1/flowmesh.proto`` gives ``flowmesh_pb2*``. protoc writes the stubs as the
  package ``flowmesh.v1``; the gRPC module then imports ``from flowmesh.v1 import flowmesh_pb2``.
  That name would collide with the ``flowmesh`` compatibility package of this distribution, so the
  import is rewritten to a relative one and the files are placed inside ``herald._generated``.
* ``proto/ensync/ensync.proto`` gives ``ensync_pb2*`` (used by :mod:`herald.events`). It is
  compiled with ``proto/ensync`` as the include root, so the file registers in protobuf's default
  descriptor pool as ``ensync.proto`` -- the name the real ``ensync-sdk`` package uses for the same
  definitions. The serialized descriptors are then identical and both modules can be imported in
  one process (tests drive the real SDK and ``herald.events`` side by side); under any other file
  name protobuf refuses the second import with "duplicate symbol 'ensync.ConnectRequest'". The gRPC
  module's ``import ensync_pb2`` is rewritten to a relative import.

Usage::

    python tools/generate_proto.py            # rewrite src/herald/_generated/
    python tools/generate_proto.py --out DIR  # write the files to DIR instead (used by the tests)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, NamedTuple, Tuple

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PYTHON_DIR.parent
PROTO_ROOT = REPO_DIR / "proto"
DEFAULT_OUT = PYTHON_DIR / "src" / "herald" / "_generated"


class _Proto(NamedTuple):
    """One proto file to compile and what to do with protoc's output."""

    include: Path  # the -I root; the proto's path relative to it is its registered file name
    file: str  # the proto, relative to ``include``
    produced: str  # directory (relative to protoc's output dir) where protoc writes the stubs
    files: Tuple[str, str, str]  # the _pb2.py, _pb2.pyi and _pb2_grpc.py names
    absolute_import: str  # how protoc's gRPC module imports the messages...
    relative_import: str  # ...and what that line becomes


PROTOS = (
    _Proto(
        include=PROTO_ROOT,
        file="flowmesh/v1/flowmesh.proto",
        produced="flowmesh/v1",
        files=("flowmesh_pb2.py", "flowmesh_pb2.pyi", "flowmesh_pb2_grpc.py"),
        absolute_import="from flowmesh.v1 import flowmesh_pb2 as",
        relative_import="from . import flowmesh_pb2 as",
    ),
    _Proto(
        include=PROTO_ROOT / "ensync",
        file="ensync.proto",
        produced=".",
        files=("ensync_pb2.py", "ensync_pb2.pyi", "ensync_pb2_grpc.py"),
        absolute_import="import ensync_pb2 as",
        relative_import="from . import ensync_pb2 as",
    ),
)

# The files this script owns in the output directory. ``__init__.py`` is written too, so the
# directory is a complete package even when produced from scratch.
GENERATED_FILES = tuple(name for proto in PROTOS for name in proto.files)

_INIT = '''"""Stubs generated from proto/flowmesh/v1/flowmesh.proto and proto/ensync/ensync.proto by
python/tools/generate_proto.py.

Do not edit these files by hand; run the script instead.
"""
'''


def render() -> Dict[str, str]:
    """Compile the protos and return ``{file name: contents}`` for every generated file."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "grpc_tools is not installed; install the dev extra: pip install -e 'python[dev]'"
        ) from exc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    files: Dict[str, str] = {}
    for proto in PROTOS:
        with tempfile.TemporaryDirectory() as tmp:
            args = [
                "grpc_tools.protoc",
                f"-I{proto.include}",
                f"-I{well_known}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(proto.include / proto.file),
            ]
            status = protoc.main(args)
            if status != 0:
                raise SystemExit(f"protoc failed on {proto.file} with exit status {status}")
            produced = Path(tmp) / proto.produced
            for name in proto.files:
                files[name] = (produced / name).read_text(encoding="utf-8")

        grpc_name = proto.files[2]
        grpc_module = files[grpc_name]
        if proto.absolute_import not in grpc_module:
            raise SystemExit(
                f"unexpected protoc output: {proto.absolute_import!r} not found in {grpc_name}"
            )
        files[grpc_name] = grpc_module.replace(proto.absolute_import, proto.relative_import)
    files["__init__.py"] = _INIT
    return files


def generate(out_dir: Path) -> None:
    """Write the generated files into ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        with open(out_dir / name, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    generate(args.out)
    print(f"wrote __init__.py, {', '.join(GENERATED_FILES)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
