"""Operations: structured logs with redaction, Prometheus metrics and OpenTelemetry traces."""
