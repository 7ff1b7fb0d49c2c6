"""llmctl: take a fine-tuned LLM from S3 to a vLLM endpoint on EKS GPU nodes, and back down."""

__version__ = "0.1.0"
