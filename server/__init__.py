"""The inference server the llmctl image ships: vLLM's own OpenAI-compatible server (its app and
engine, in one process) with llmctl's production contract around it; see docs/server.md.

Stands alone: never imports llmctl. `python -m server` serves, `python -m server.download_model`
fetches the model from S3 first.
"""
