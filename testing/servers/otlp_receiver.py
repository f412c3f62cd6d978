"""An OTLP/HTTP trace receiver on 127.0.0.1, as an OpenTelemetry collector takes traces."""

from __future__ import annotations

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .threaded import ThreadedServer


class OtlpReceiver(ThreadedServer):
    """An OTLP/HTTP trace receiver: decodes each export and keeps its spans. Its `origin`
    is what OTEL_EXPORTER_OTLP_ENDPOINT names."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[Span] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self._traces)

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )
