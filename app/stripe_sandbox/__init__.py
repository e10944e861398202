"""An offline Stripe: the v1 API, hosted pages, a clock and signed webhooks, for dev and tests.

It imports nothing from the rest of the application; the app wires it in when no Stripe key is
configured.
"""

from .http_client import SandboxHTTPClient
from .sandbox import Sandbox, SenderBusy
from .web import create_blueprint

__all__ = ["Sandbox", "SandboxHTTPClient", "SenderBusy", "create_blueprint"]
