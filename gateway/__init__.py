"""HTTP concerns shared by every route: error bodies, API keys, body limits, request metrics."""
