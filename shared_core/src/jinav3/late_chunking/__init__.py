"""Late chunking: documents to character spans, spans to token windows, pooling per span."""
