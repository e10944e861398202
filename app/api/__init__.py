"""The JSON API for the operator's product: /api/v1/client, bearer API keys, camelCase JSON."""
