"""`llmctl bench` says what its numbers cannot tell: a starved client, TPOT from one read, a reference
measured elsewhere, and an endpoint that is not there (driven as a user runs it)."""

from __future__ import annotations

import json
import re
import socket

from tests.bench.fakeserver import FakeServer, Script


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_a_dead_url_fails_at_once_in_one_line_without_a_table(llmctl):
    url = f"http://127.0.0.1:{_dead_port()}"
    done = llmctl("bench", "--url", url, "-n", "20", timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""  # no table of zeros
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot reach {url} (flag): connection refused; fix: check --url: is a server listening there?"]
    assert "Traceback" not in done.stderr


def test_client_ttft_far_above_the_servers_warns_that_the_client_is_starved(llmctl):
    with FakeServer(Script(tokens=4, ttft_s=0.25, server_ttft_s=0.02)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "4", "--warmup", "0",
                      "--output-json", "out.json", timeout=120)
    assert done.returncode == 0, done.stderr
    warning = " ".join(done.stderr.split())
    assert "the client is starved" in warning and "fewer concurrent requests (--concurrency)" in warning
    assert "separate machine" in warning
    check = json.loads((llmctl.cwd / "out.json").read_text())["llmctl"]["crosscheck"]
    assert check["ttft_disagrees"] is True and check["ttft_ratio"] > 5


def test_agreeing_ttft_gives_no_warning(llmctl):
    with FakeServer(Script(tokens=4, ttft_s=0.2, server_ttft_s=0.2)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "4", "--warmup", "0", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "starved" not in done.stderr and "Client vs server" in done.stdout


def test_tpot_only_from_requests_that_streamed_in_two_reads(llmctl):
    # Every token of a response in one write: what a starved client reads. TPOT would be ~0 ms.
    with FakeServer(Script(tokens=8, itl_s=0.01, one_write=True)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "8", "--warmup", "0",
                      "--output-json", "out.json", timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads((llmctl.cwd / "out.json").read_text())
    assert doc["completed"] == 4 and doc["tpot_requests"] == 0 and doc["per_request_tokens_per_s"] is None
    table = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in done.stdout.splitlines() if line.count("│") >= 3}
    assert table["Median TPOT"] == "-" and table["Tokens/s per request"] == "-"
    assert table["TPOT from (2+ reads)"] == "0 of 4 requests"
    # the cause, from what the client measured of itself: it waited for a CPU (starved), or it had one and the
    # stream came in one piece (here: the server wrote it at once)
    wait, starved = doc["llmctl"]["client_cpu_wait_s"], doc["llmctl"]["client_starved"]
    assert 0 <= wait <= doc["duration"] and starved is (wait >= 0.25 * doc["duration"])
    assert re.fullmatch(r"\d+\.\d\d s \(\d+% of the run\)", table["Client waiting for a CPU"])
    warning = " ".join(done.stderr.split())
    assert "cannot be measured: the bench client " in warning
    if starved:
        assert "for a CPU, so it read each stream late (its lateness, not the server's pace)" in warning
    else:
        assert "had its CPU (waited" in warning and "(a buffering proxy, or a server that writes it at once)" in warning

    with FakeServer(Script(tokens=8, itl_s=0.01)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "8", "--warmup", "0",
                      "--output-json", "out.json", timeout=120)
    doc = json.loads((llmctl.cwd / "out.json").read_text())
    assert doc["tpot_requests"] == 4 and doc["median_tpot_ms"] >= 9 and 0 < doc["per_request_tokens_per_s"] < 120
    assert "4 of 4 requests" in done.stdout


def test_the_reference_column_only_for_the_setup_it_was_measured_on(llmctl):
    with FakeServer(Script(tokens=3)) as srv:
        other = llmctl("bench", "--url", srv.url, "-n", "2", "--output-len", "3", "--warmup", "0",
                       "--instance-type", "g4dn.xlarge", "-o", "json", timeout=120)
        plain = llmctl("bench", "--url", srv.url, "-n", "2", "--output-len", "3", "--warmup", "0", timeout=120)
    assert "reference" not in plain.stdout.splitlines()[1] and "pass" not in plain.stdout
    assert ("Reference targets (Llama-2-7B on a T4) not shown: this endpoint serves fake-model on an unknown GPU"
            in " ".join(plain.stdout.split()))
    doc = json.loads(other.stdout)  # a T4, but not the model
    assert doc["llmctl"]["reference"] == {"setup": "Llama-2-7B on a T4", "model": "fake-model", "gpu": "T4", "applies": False}
    assert doc["llmctl"]["reference_checks"] == []

    with FakeServer(Script(tokens=3, model="llama-2-7b-chat-merged")) as srv:
        seed = llmctl("bench", "--url", srv.url, "-n", "2", "--output-len", "3", "--warmup", "0",
                      "--instance-type", "g4dn.xlarge", timeout=120)
    assert seed.returncode == 0, seed.stderr
    assert "reference (Llama-2-7B on a T4)" in seed.stdout and "100-200 ms" in seed.stdout


def test_the_warnings_name_the_cause_from_the_clients_own_wait_for_a_cpu(capsys):
    """A run's client CPU wait decides what its warnings say (the engine run starved on 2 loaded cores waited 98%)."""
    from llmctl.ui.bench import render_summary
    from llmctl.ui.console import Output

    def warnings(tpot_requests: int, wait: float | None, starved: bool | None) -> str:
        render_summary(Output(color=False), {"completed": 16, "duration": 0.87, "tpot_requests": tpot_requests,
                                             "llmctl": {"client_cpu_wait_s": wait, "client_starved": starved}})
        out, err = capsys.readouterr()
        return " ".join(out.split()), " ".join(err.split())

    table, said = warnings(0, 0.85, True)
    assert "Client waiting for a CPU │ 0.85 s (98% of the run)" in table
    assert said == ("warning: no request streamed its tokens in two or more reads, so TPOT and tokens/s per request "
                    "cannot be measured: the bench client waited 0.85 s (98% of the run) for a CPU, so it read each "
                    "stream late (its lateness, not the server's pace); send fewer concurrent requests (--concurrency) "
                    "or run the benchmark on a less loaded or separate machine")
    _, said = warnings(0, 0.02, False)
    assert said.endswith("cannot be measured: the bench client had its CPU (waited 0.02 s (2% of the run)), so "
                         "something between the engine and it delivers each response in one piece (a buffering proxy, "
                         "or a server that writes it at once)")
    table, said = warnings(0, None, None)
    assert "Client waiting for a CPU │ unknown (the kernel does not say)" in table
    assert said.endswith("cannot be measured: the client read each stream late (it is starved, or a proxy buffers)")
    _, said = warnings(16, 0.5, True)  # TPOT measured, but from a client that read late
    assert said.startswith("warning: the bench client waited 0.50 s (57% of the run) for a CPU: it read the streams "
                           "late, so its latencies overstate the server's")
    _, said = warnings(16, 0.02, False)
    assert said == ""
