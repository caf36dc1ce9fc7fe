"""The two paths the server answers, named once for the handler, the overflow and the printed address."""

PATH = "/v1/remove"
HEALTH = "/health"
