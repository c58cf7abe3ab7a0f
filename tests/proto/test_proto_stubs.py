"""The committed gRPC code is what ``sync.proto`` generates, and the RPC table matches it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import omega.proto
from omega.proto import RPCS, SERVICE, sync_pb2

PROTO_DIR = Path(omega.proto.__file__).resolve().parent
GENERATED = ("sync_pb2.py", "sync_pb2.pyi", "sync_pb2_grpc.py")


def test_the_committed_stubs_are_what_sync_proto_generates(tmp_path: Path) -> None:
    """Regenerated into a temporary tree, with the package root on the include path (as
    ``sync.proto`` says), byte for byte the committed files: edit the .proto, regenerate."""
    pytest.importorskip("grpc_tools")
    package = tmp_path / "omega" / "proto"
    package.mkdir(parents=True)
    shutil.copy(PROTO_DIR / "sync.proto", package / "sync.proto")
    command = [sys.executable, "-m", "grpc_tools.protoc", "-I."]
    command += ["--python_out=.", "--pyi_out=.", "--grpc_python_out=.", "omega/proto/sync.proto"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for name in GENERATED:
        fresh = (package / name).read_text()
        assert (PROTO_DIR / name).read_text() == fresh, (
            f"src/omega/proto/{name} is not current: regenerate it (see sync.proto's header)"
        )


def test_the_rpc_table_matches_the_service() -> None:
    """Every RPC of the service is routed once, with its message types and streaming."""
    service = sync_pb2.DESCRIPTOR.services_by_name["Sync"]
    assert service.full_name == SERVICE == "omega.sync.v1.Sync"
    declared = {m.name: m for m in service.methods}
    assert sorted(declared) == sorted(rpc.name for rpc in RPCS)
    for rpc in RPCS:
        method = declared[rpc.name]
        assert method.input_type is rpc.request.DESCRIPTOR
        assert method.output_type is rpc.response.DESCRIPTOR
        assert method.client_streaming == method.server_streaming == rpc.streaming
        field = "json" if rpc.document else "frame"
        assert field in rpc.response.DESCRIPTOR.fields_by_name
    assert len({(rpc.method, rpc.path) for rpc in RPCS}) == len(RPCS)
