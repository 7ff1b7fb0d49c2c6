"""Pure parts of the server: settings validation, backpressure, the error shape."""

from __future__ import annotations

import asyncio

import pytest
from server.admission import Admission
from server.errors import ApiError, error_body, status_label
from server.settings import SettingsError, load_settings


def test_settings_defaults_and_names(tiny_model_dir):
    s = load_settings({"MODEL_PATH": str(tiny_model_dir)})
    assert s.port == 8000 and s.served_model_name == "tiny-llama" and s.api_key is None
    assert s.max_model_len is None and s.dtype == "auto" and s.load_format == "auto"
    s = load_settings({"MODEL_PATH": "s3://b/p", "LOAD_FORMAT": "runai_streamer", "ENFORCE_EAGER": "yes",
                       "MAX_MODEL_LEN": "512", "SERVED_MODEL_NAME": "m"})
    assert (s.model_path, s.enforce_eager, s.max_model_len, s.served_model_name) == ("s3://b/p", True, 512, "m")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MODEL_PATH is not set"),
        ({"TENSOR_PARALLEL_SIZE": "0"}, "TENSOR_PARALLEL_SIZE=0 must be between 1 and 64"),
        ({"MAX_QUEUED_REQUESTS": "-1"}, "MAX_QUEUED_REQUESTS=-1 must be >= 0"),
        ({"PORT": "70000"}, "PORT=70000 must be between 1 and 65535"),
        ({"LOAD_FORMAT": "magic"}, "LOAD_FORMAT='magic' must be one of"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD' must be one of"),
    ],
)
def test_settings_errors_name_the_variable(tiny_model_dir, env, message):
    env = {"MODEL_PATH": str(tiny_model_dir), **env} if env else env
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_admission_queues_then_rejects_with_retry_after():
    async def scenario():
        admission = Admission(max_concurrent=1, max_queued=1, retry_after_s=3)
        release = await admission.acquire()
        queued = asyncio.ensure_future(admission.acquire())
        await asyncio.sleep(0)
        assert (admission.active, admission.waiting) == (1, 1)
        with pytest.raises(ApiError) as rejected:
            await admission.acquire()
        assert rejected.value.status == 429 and rejected.value.headers == {"Retry-After": "3"}
        release()
        release()  # idempotent
        second = await queued
        assert (admission.active, admission.waiting) == (1, 0)
        second()
        assert await admission.wait_idle(0.1)

    asyncio.run(scenario())


def test_error_shape_and_outcome_labels():
    assert error_body("m", "t") == {"error": {"message": "m", "type": "t", "param": None}}
    assert [status_label(s) for s in (200, 400, 401, 413, 429, 499, 500, 503)] == [
        "success", "invalid", "unauthorized", "invalid", "rejected", "aborted", "error", "unavailable"]
