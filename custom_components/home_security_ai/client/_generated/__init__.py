"""gRPC stubs generated from protos/home_security_ai/v1 by scripts/gen_protos."""
