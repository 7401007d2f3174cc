"""Stubs generated from proto/flowmesh/v1/flowmesh.proto and proto/ensync/ensync.proto by
python/tools/generate_proto.py.

Do not edit these files by hand; run the script instead.
"""
