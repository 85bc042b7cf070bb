"""Build, smoke-test and deploy the service as a Hugging Face Docker Space (never imported by the service)."""
