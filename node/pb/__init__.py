"""Generated protobuf and gRPC code for proto/uoc/v1 (regenerate: python -m node.proto_gen)."""
