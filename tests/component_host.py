"""Stand in for the Pulumi engine when a component provider is driven over gRPC.

A Construct call makes the provider a Pulumi program of its own: it registers the component's
children with the resource monitor named in the request and logs to the engine it was started
with. This serves both over gRPC, answering as Pulumi's mock monitor does (``pulumi.runtime.mocks``
``MockMonitor``) for a :class:`testing.mock_preview.RecordingMocks`, which records every
registration. Test tooling only.
"""

from __future__ import annotations

from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, resource_pb2, resource_pb2_grpc

from testing.mock_preview import RecordingMocks


class _Monitor(MockMonitor):
    """Pulumi's mock monitor with this project's and stack's URNs (the mock one reads them from
    the settings of a running program, which this process is not)."""

    def __init__(self, mocks: RecordingMocks, project: str, stack: str) -> None:
        super().__init__(mocks)
        self.project, self.stack = project, stack

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            type_ = parent.split("::")[2].split("$").pop() + "$" + type_
        return "urn:pulumi:" + "::".join([self.stack, self.project, type_, name])


class _MonitorServicer(resource_pb2_grpc.ResourceMonitorServicer):
    def __init__(self, monitor: _Monitor) -> None:
        self.monitor = monitor

    def SupportsFeature(self, request: Any, context: Any) -> resource_pb2.SupportsFeatureResponse:
        # As the mock monitor: Outputs are not sent as output values, so the mocks see plain inputs.
        return resource_pb2.SupportsFeatureResponse(hasSupport=request.id != "outputValues")

    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:
        return self.monitor.GetDeploymentInfo(request)

    def Invoke(self, request: Any, context: Any) -> Any:
        return self.monitor.Invoke(request)

    def RegisterResource(self, request: Any, context: Any) -> Any:
        return self.monitor.RegisterResource(request)

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:
        return self.monitor.RegisterResourceOutputs(request)

    def RegisterPackage(self, request: Any, context: Any) -> Any:
        return self.monitor.RegisterPackage(request)

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:
        return self.monitor.SignalAndWaitForShutdown(request)


class _EngineServicer(engine_pb2_grpc.EngineServicer):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.messages.append(request.message)
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> engine_pb2.GetRootResourceResponse:
        return engine_pb2.GetRootResourceResponse(urn="")

    def SetRootResource(self, request: Any, context: Any) -> engine_pb2.SetRootResourceResponse:
        return engine_pb2.SetRootResourceResponse()


class FakeEngine:
    """An engine and a resource monitor on one local port: ``address`` is what a provider is started
    with and what a ConstructRequest names as ``monitorEndpoint``; ``mocks.resources`` is what the
    provider registered, ``log`` what it logged."""

    def __init__(self, project: str, stack: str) -> None:
        self.mocks = RecordingMocks()
        self._engine = _EngineServicer()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        resource_pb2_grpc.add_ResourceMonitorServicer_to_server(
            _MonitorServicer(_Monitor(self.mocks, project, stack)), self._server
        )
        engine_pb2_grpc.add_EngineServicer_to_server(self._engine, self._server)
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"

    @property
    def log(self) -> list[str]:
        return list(self._engine.messages)

    def __enter__(self) -> FakeEngine:
        self._server.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop(grace=None)
