"""InferenceService: the Open Inference Protocol (KServe v2) over gRPC and REST."""
