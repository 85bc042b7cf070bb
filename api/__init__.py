"""The service's HTTP edge: keys, body limits, content type, the error table, response classes."""
