"""`llmctl bench`: a load generator and metrics defined exactly as `vllm bench serve` defines them.

Modules: `client` (one streaming request -> one `RequestResult`, never raises), `load` (arrivals,
concurrency, warm-up, stop), `data` (prompts), `metrics` (pure statistics with vLLM's key names),
`sweep` (rate sweeps, SLO bisection, plots), `crosscheck` (server `/metrics` before/after),
`cost` (dollars per million output tokens).
"""
