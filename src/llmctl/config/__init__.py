"""Typed configuration: the model, its loading, and the names derived from it."""

from llmctl.config.loader import DEFAULT_CONFIG_FILE, config_path, load_config
from llmctl.config.model import LlmctlConfig
from llmctl.config.names import Names

__all__ = ["DEFAULT_CONFIG_FILE", "LlmctlConfig", "Names", "config_path", "load_config"]
