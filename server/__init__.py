"""The inference server the llmctl image ships: FastAPI + the vLLM engine in-process.

Stands alone: never imports llmctl. `python -m server` serves, `python -m server.download_model`
fetches the model from S3 first.
"""
