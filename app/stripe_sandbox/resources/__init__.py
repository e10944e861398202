"""The Stripe v1 resources the sandbox serves, one module per area of the API."""
