"""Drive a dynamic provider the way the Pulumi engine does: through the real provider host process.

The engine starts the Python dynamic provider host (``python -u -m pulumi.dynamic``) in the project
directory, reads the port it prints, and calls it over gRPC with properties serialized by the SDK:
unknowns as the ``rpc.UNKNOWN`` sentinel (deserialized by the host into
``pulumi.output.Unknown`` for Check and Diff), numbers as floats, the pickled provider under
``__provider``. In-process calls of ``check``/``diff`` skip all of that, which is how a provider can
pass its unit tests and still reject every first preview; these tests go through the wire.

Test tooling only: nothing under ``components/`` or ``protectedvm/`` imports this module.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROVIDER_KEY = "__provider"
#: Upper bound of any one call: a create against the emulator takes seconds; a hang fails the test.
CALL_TIMEOUT_SECONDS = 120.0


def serialize(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Properties as the SDK puts them on the wire (``rpc.serialize_properties``), on a private
    event loop as the host itself does: ``asyncio.run`` would unset the thread's loop, which the
    mock evaluator of later tests relies on."""
    loop = asyncio.new_event_loop()
    try:
        result: struct_pb2.Struct = loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()
    return result


def deserialize(struct: struct_pb2.Struct) -> dict[str, Any]:
    """What the engine would read back: unknowns stay the sentinel string, numbers are floats."""
    return dict(rpc.deserialize_properties(struct, keep_unknowns=True))


class ProviderHost:
    """One ``python -u -m pulumi.dynamic`` process, started from the project root (through
    ``testing.emulator_run``, which only installs the emulator's credential first).

    ``env`` is added to this process's environment (e.g. the emulator endpoint). What the host
    writes to stderr, which the engine forwards line by line as diagnostics, is kept in
    :attr:`stderr_text`.
    """

    def __init__(self, provider: ResourceProvider, env: Mapping[str, str] | None = None) -> None:
        self.provider_blob = serialize_provider(provider)
        self._env = {**os.environ, **(env or {})}
        self._stderr = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 -- closed in close()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self.stub: Any = None

    def __enter__(self) -> ProviderHost:
        self._process = subprocess.Popen(
            [sys.executable, "-u", "-m", "testing.emulator_run", "pulumi.dynamic"],
            cwd=PROJECT_ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"the provider host did not print its port (got {line!r}): {self.stderr_text}")
        self._channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(self._channel).result(timeout=30)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the host and drop what it wrote."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=30)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        self._stderr.close()

    @property
    def stderr_text(self) -> str:
        """Everything the host wrote to stderr so far (what the engine shows as diagnostics)."""
        # The host writes unbuffered (-u); give its last write a moment to land.
        time.sleep(0.05)
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    # --- the engine's calls ---------------------------------------------------------------------

    def _with_provider(self, props: Mapping[str, Any]) -> struct_pb2.Struct:
        return serialize({**props, PROVIDER_KEY: self.provider_blob})

    def get_plugin_info(self) -> plugin_pb2.PluginInfo:
        return self.stub.GetPluginInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT_SECONDS)

    def configure(self, config: Mapping[str, Any] | None = None) -> provider_pb2.ConfigureResponse:
        request = provider_pb2.ConfigureRequest(args=serialize(config or {}), acceptSecrets=True)
        return self.stub.Configure(request, timeout=CALL_TIMEOUT_SECONDS)

    def check(self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> provider_pb2.CheckResponse:
        request = provider_pb2.CheckRequest(
            urn=urn, olds=self._with_provider(olds) if olds else serialize({}), news=self._with_provider(news)
        )
        return self.stub.Check(request, timeout=CALL_TIMEOUT_SECONDS)

    def diff(self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> provider_pb2.DiffResponse:
        request = provider_pb2.DiffRequest(
            urn=urn, id=id_, olds=self._with_provider(olds), news=self._with_provider(news)
        )
        return self.stub.Diff(request, timeout=CALL_TIMEOUT_SECONDS)

    def create(self, urn: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        request = provider_pb2.CreateRequest(urn=urn, properties=self._with_provider(props))
        response = self.stub.Create(request, timeout=CALL_TIMEOUT_SECONDS)
        return response.id, deserialize(response.properties)

    def update(self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        request = provider_pb2.UpdateRequest(
            urn=urn, id=id_, olds=self._with_provider(olds), news=self._with_provider(news)
        )
        response = self.stub.Update(request, timeout=CALL_TIMEOUT_SECONDS)
        return deserialize(response.properties)

    def delete(self, urn: str, id_: str, props: Mapping[str, Any]) -> None:
        request = provider_pb2.DeleteRequest(urn=urn, id=id_, properties=self._with_provider(props))
        self.stub.Delete(request, timeout=CALL_TIMEOUT_SECONDS)
