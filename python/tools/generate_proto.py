#!/usr/bin/env python3
"""Regenerate the committed gRPC stubs in ``src/herald/_generated/``.

The stubs are compiled from ``proto/flowmesh/v1/flowmesh.proto`` at the top of the repository with
``grpc_tools.protoc`` (install the ``dev`` extra: it pins the grpcio-tools version the committed files
were produced with, so regenerating gives byte-identical output).

protoc writes the stubs as the package ``flowmesh.v1``; the gRPC module then imports
``from flowmesh.v1 import flowmesh_pb2``. That name would collide with the ``flowmesh`` compatibility
package of this distribution, so the import is rewritten to a relative one and the files are placed
inside ``herald._generated``.

Usage::

    python tools/generate_proto.py            # rewrite src/herald/_generated/
    python tools/generate_proto.py --out DIR  # write the files to DIR instead (used by the tests)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PYTHON_DIR.parent
PROTO_ROOT = REPO_DIR / "proto"
PROTO_FILE = "flowmesh/v1/flowmesh.proto"
DEFAULT_OUT = PYTHON_DIR / "src" / "herald" / "_generated"

# The files this script owns in the output directory. ``__init__.py`` is written too, so the
# directory is a complete package even when produced from scratch.
GENERATED_FILES = ("flowmesh_pb2.py", "flowmesh_pb2.pyi", "flowmesh_pb2_grpc.py")

_ABSOLUTE_IMPORT = "from flowmesh.v1 import flowmesh_pb2 as"
_RELATIVE_IMPORT = "from . import flowmesh_pb2 as"

_INIT = '''"""Stubs generated from proto/flowmesh/v1/flowmesh.proto by python/tools/generate_proto.py.

Do not edit these files by hand; run the script instead.
"""
'''


def render() -> Dict[str, str]:
    """Compile the proto and return ``{file name: contents}`` for every generated file."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "grpc_tools is not installed; install the dev extra: pip install -e 'python[dev]'"
        ) from exc
    import grpc_tools

    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        status = protoc.main(args)
        if status != 0:
            raise SystemExit(f"protoc failed with exit status {status}")
        produced = Path(tmp) / "flowmesh" / "v1"
        files = {name: (produced / name).read_text(encoding="utf-8") for name in GENERATED_FILES}

    grpc_module = files["flowmesh_pb2_grpc.py"]
    if _ABSOLUTE_IMPORT not in grpc_module:
        raise SystemExit(f"unexpected protoc output: {_ABSOLUTE_IMPORT!r} not found in the gRPC module")
    files["flowmesh_pb2_grpc.py"] = grpc_module.replace(_ABSOLUTE_IMPORT, _RELATIVE_IMPORT)
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
