"""The gRPC edge: the service, its handlers, auth, and every protobuf <-> domain conversion.

Nothing below this package imports the generated stubs or gRPC status codes.
"""
